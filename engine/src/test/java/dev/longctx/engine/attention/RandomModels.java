package dev.longctx.engine.attention;

import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Small random-weight Llama models built in memory, for attention-policy tests. */
final class RandomModels {

  private RandomModels() {}

  /** 2 layers, 4 query heads over 2 KV heads of 8 dims, trained context {@code trained}. */
  static LlamaConfig config(int trained) {
    return new LlamaConfig(
        "llama", 32, 48, 2, 4, 2, 8, 97, trained, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);
  }

  static Transformer transformer(LlamaConfig c, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    List<LlamaWeights.Layer> layers = new ArrayList<>();
    for (int l = 0; l < c.layers(); l++) {
      layers.add(
          new LlamaWeights.Layer(
              ones(c.dim()),
              matrix(r, c.queryDim(), c.dim(), 0.6),
              matrix(r, c.kvDim(), c.dim(), 0.6),
              matrix(r, c.kvDim(), c.dim(), 0.3),
              matrix(r, c.dim(), c.queryDim(), 0.3),
              null,
              null,
              null,
              ones(c.dim()),
              matrix(r, c.hiddenDim(), c.dim(), 0.3),
              matrix(r, c.hiddenDim(), c.dim(), 0.3),
              matrix(r, c.dim(), c.hiddenDim(), 0.3)));
    }
    FloatTensor embedding = matrix(r, c.vocabSize(), c.dim(), 1.0);
    return new Transformer(c, new LlamaWeights(embedding, layers, ones(c.dim()), embedding, null));
  }

  /** The same model as multi-head attention: every KV head repeated for its query heads. */
  static Transformer repeatKvHeads(Transformer tr) {
    LlamaConfig c = tr.config();
    LlamaConfig m =
        new LlamaConfig(
            c.architecture(),
            c.dim(),
            c.hiddenDim(),
            c.layers(),
            c.heads(),
            c.heads(),
            c.headDim(),
            c.vocabSize(),
            c.contextLength(),
            c.rmsEps(),
            c.ropeTheta(),
            c.ropeLayout(),
            c.ropeScaling());
    List<LlamaWeights.Layer> layers = new ArrayList<>();
    for (LlamaWeights.Layer y : tr.weights().layers()) {
      layers.add(
          new LlamaWeights.Layer(
              y.attnNorm(),
              y.wq(),
              repeatHeads(y.wk(), c),
              repeatHeads(y.wv(), c),
              y.wo(),
              null,
              null,
              null,
              y.ffnNorm(),
              y.wGate(),
              y.wUp(),
              y.wDown()));
    }
    LlamaWeights w = tr.weights();
    return new Transformer(
        m, new LlamaWeights(w.tokenEmbedding(), layers, w.outputNorm(), w.output(), null));
  }

  private static FloatTensor repeatHeads(FloatTensor t, LlamaConfig c) {
    int d = c.headDim();
    float[] out = new float[c.heads() * d * t.cols()];
    for (int h = 0; h < c.heads(); h++) {
      for (int e = 0; e < d; e++) {
        t.dequantizeRow((h / c.groupSize()) * d + e, out, (h * d + e) * t.cols());
      }
    }
    return FloatTensor.ofFloats(out, c.heads() * d, t.cols());
  }

  static FloatTensor matrix(SplittableRandom r, int rows, int cols, double scale) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (gaussian(r) * scale);
    }
    return FloatTensor.ofFloats(v, rows, cols);
  }

  static double gaussian(SplittableRandom r) {
    return Math.sqrt(-2 * Math.log(1 - r.nextDouble())) * Math.cos(2 * Math.PI * r.nextDouble());
  }

  static float[] ones(int n) {
    float[] v = new float[n];
    java.util.Arrays.fill(v, 1f);
    return v;
  }

  static int[] tokens(int n, int vocab, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    int[] t = new int[n];
    for (int i = 0; i < n; i++) {
      t[i] = r.nextInt(vocab);
    }
    return t;
  }

  /** Logits of every position when {@code tokens} are fed under {@code policy}. */
  static float[][] allLogits(Transformer tr, AttentionPolicy policy, int[] tokens, int chunk) {
    int vocab = tr.config().vocabSize();
    float[][] out = new float[tokens.length][];
    var seq = tr.newSequence(tokens.length, policy);
    tr.forwardAll(
        seq,
        tokens,
        0,
        tokens.length,
        chunk,
        (first, rows, logits) -> {
          for (int r = 0; r < rows; r++) {
            out[first + r] = java.util.Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab);
          }
        });
    return out;
  }

  /** Max |a − b| over all positions relative to max(1, max |b|). */
  static double maxRelativeDifference(float[][] a, float[][] b) {
    double scale = 1;
    double diff = 0;
    for (int t = 0; t < a.length; t++) {
      for (int i = 0; i < a[t].length; i++) {
        scale = Math.max(scale, Math.abs(b[t][i]));
        diff = Math.max(diff, Math.abs(a[t][i] - b[t][i]));
      }
    }
    return diff / scale;
  }
}
