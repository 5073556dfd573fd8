package dev.longctx.engine.model;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** The real models of {@code ../shared/data}, opened for tests (skipped where absent). */
public final class TestModels {

  private TestModels() {}

  /** karpathy's stories260K (llama2.c format) with its tok512 tokenizer. */
  public static LoadedModel stories260K() {
    return LoadedModel.load(
        TestData.file("models/stories260K/stories260K.bin"),
        TestData.file("models/stories260K/tok512.bin"));
  }

  /** TinyStories-656K as a Hugging Face directory (safetensors, tied embeddings). */
  public static LoadedModel tinyStories656K() {
    return LoadedModel.load(TestData.file("models/tinystories-656k"), null);
  }

  /**
   * A lightning indexer with random weights for {@code c}'s shape (2 heads of 8, ALGORITHMS.md
   * §1.2): the real models carry none.
   */
  public static LightningIndexer randomIndexer(LlamaConfig c, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    int heads = 2;
    int d = 8;
    List<LightningIndexer.Layer> layers = new ArrayList<>();
    for (int l = 0; l < c.layers(); l++) {
      float[] gamma = new float[d];
      float[] beta = new float[d];
      for (int i = 0; i < d; i++) {
        gamma[i] = (float) (1 + 0.2 * r.nextDouble(-1, 1));
        beta[i] = (float) (0.3 * r.nextDouble(-1, 1));
      }
      layers.add(
          new LightningIndexer.Layer(
              matrix(r, heads * d, c.dim()),
              matrix(r, d, c.dim()),
              gamma,
              beta,
              matrix(r, heads, c.dim())));
    }
    return new LightningIndexer(layers, c.ropeTheta());
  }

  private static FloatTensor matrix(SplittableRandom r, int rows, int cols) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) r.nextDouble(-0.5, 0.5);
    }
    return FloatTensor.ofFloats(v, rows, cols);
  }
}
