package dev.longctx.engine.distill;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.inference.Perplexity;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The distillation of ALGORITHMS.md §5.3 on a real model (stories260K): the teacher is the model,
 * the distilled indexer learns its attention (held-out loss and recall), and the indexer file it
 * writes runs in the engine like a model file's indexer (§5.5 test 5: k ≥ L equals dense).
 */
class IndexerDistillationTest {

  private static LoadedModel model;
  private static int[] tokens;

  @BeforeAll
  static void load() throws Exception {
    model = TestModels.stories260K();
    tokens =
        model
            .tokenizer()
            .encode(Files.readString(TestData.file("text/tinystories_train_excerpt.txt")));
  }

  /** The teacher's forward pass is the model's: its last logits are the engine's. */
  @Test
  void theTeacherRunsTheModelsForwardPassAndItsDistributionsSumToOne() {
    Transformer tr = model.transformer();
    int n = 96;
    int[] window = Arrays.copyOf(tokens, n);
    float[] logits = new float[model.config().vocabSize()];
    IndexerObjective.Window[] w =
        TeacherAttention.windows(tr.layers(), window, null, TeacherAttention.allRows(n), logits);
    float[] expected = tr.prefill(tr.newSequence(n), window);
    for (int i = 0; i < logits.length; i++) {
      assertEquals(expected[i], logits[i], 2e-4 * (1 + Math.abs(expected[i])), "logit " + i);
    }
    assertEquals(model.config().layers(), w.length);
    for (IndexerObjective.Window layer : w) {
      for (int t = 0; t < n; t++) {
        double sum = 0;
        for (int s = 0; s <= t; s++) {
          assertTrue(layer.p()[t * n + s] >= 0);
          sum += layer.p()[t * n + s];
        }
        assertEquals(1, sum, 1e-5, "row " + t);
      }
    }
  }

  /**
   * Past the trained context the teacher is SelfExtend (§2.3's merged logits): its last logits are
   * the engine's under the same SelfExtend, and the sampled rows' distributions sum to one.
   */
  @Test
  void theSelfExtendTeacherRunsTheEnginesSelfExtendAttention() {
    AttentionPolicy.SelfExtend se = new AttentionPolicy.SelfExtend(4, 128);
    Transformer tr = model.transformer().withAttention(se);
    int n = 700; // past stories260K's 512
    int[] window = Arrays.copyOf(tokens, n);
    int[] rows = IndexerDistillation.queryRows(n, 40, new java.util.SplittableRandom(3));
    float[] logits = new float[model.config().vocabSize()];
    IndexerObjective.Window[] w = TeacherAttention.windows(tr.layers(), window, se, rows, logits);
    float[] expected = tr.prefill(tr.newSequence(n), window);
    for (int i = 0; i < logits.length; i++) {
      assertEquals(expected[i], logits[i], 2e-4 * (1 + Math.abs(expected[i])), "logit " + i);
    }
    assertEquals(40, w[0].rows().length);
    for (int r = 0; r < rows.length; r++) {
      double sum = 0;
      for (int s = 0; s <= rows[r]; s++) {
        sum += w[2].p()[r * n + s];
      }
      assertEquals(1, sum, 1e-5, "row " + rows[r]);
    }
    // Dense attention's logits differ there: the check above can fail.
    float[] dense = model.transformer().prefill(model.transformer().newSequence(n), window);
    assertTrue(maxDifference(dense, expected) > 1e-2, "SelfExtend changes the logits past 512");
  }

  private static double maxDifference(float[] a, float[] b) {
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
    return max;
  }

  @Test
  void aDistilledIndexerLearnsTheModelsAttentionAndRunsFromItsFile(@TempDir Path dir) {
    LlamaConfig c = model.config();
    IndexerDistillation.Options o =
        new IndexerDistillation.Options(
            new IndexerDistiller.Options(4, 16, 80, 3e-3, 2, 1),
            128,
            2,
            8,
            model.tokenizer().bosId(),
            new int[] {16, 32});
    IndexerDistillation.Report report =
        IndexerDistillation.run(model.transformer().layers(), tokens, o, p -> {}, s -> {});
    assertEquals(8, report.trainWindows());
    assertTrue(
        report.finalLoss() < 0.8 * report.initialLoss(),
        "held-out loss " + report.initialLoss() + " → " + report.finalLoss());
    for (IndexerDistillation.Recall r : report.recall()) {
      assertTrue(r.after() > r.before() + 0.02, "recall at " + r.k() + ": " + r);
      assertTrue(r.oracle() >= r.after(), "the oracle bounds every selector: " + r);
    }

    Path file = dir.resolve("ix.gguf");
    IndexerDistillation.write(file, report.indexer(), c, Map.of("steps", "80"));
    IndexerSource.IndexerFile read =
        IndexerSource.IndexerFile.read(file, c.layers(), c.dim(), c.ropeTheta());
    assertSameScores(report.indexer(), read.indexer(), c);
    // every written file gets its own identity (what shards compare with the coordinator's)
    Path again = dir.resolve("ix2.gguf");
    IndexerDistillation.write(again, report.indexer(), c, Map.of());
    String otherId = IndexerSource.IndexerFile.read(again, c.layers(), c.dim(), c.ropeTheta()).id();
    assertTrue(read.id().matches("[0-9a-f-]{36}") && !read.id().equals(otherId), read.id());

    // §5.5.5: with k ≥ L the selection is every key, so the perplexity is dense attention's.
    Transformer dense = model.transformer();
    Transformer sparse = dense.withAttention(new AttentionPolicy.IndexerTopK(256, 0, read, null));
    int[] text = Arrays.copyOf(tokens, 600);
    double pplDense =
        Perplexity.evaluate(dense, text, 256, model.tokenizer().bosId(), 2, n -> {}).perplexity();
    double pplAll =
        Perplexity.evaluate(sparse, text, 256, model.tokenizer().bosId(), 2, n -> {}).perplexity();
    assertEquals(pplDense, pplAll, 1e-9 * pplDense);
    // With k < L it selects: a different, finite perplexity.
    Transformer selective = dense.withAttention(new AttentionPolicy.IndexerTopK(16, 0, read, null));
    double ppl16 =
        Perplexity.evaluate(selective, text, 256, model.tokenizer().bosId(), 2, n -> {})
            .perplexity();
    assertTrue(Double.isFinite(ppl16) && ppl16 != pplDense, "k = 16: " + ppl16);
  }

  /**
   * Past the trained context: 768-token windows under a SelfExtend teacher, 64 sampled query rows
   * each; the held-out loss and the recall of those rows improve as with every row.
   */
  @Test
  void aSelfExtendTeacherOnSampledRowsTeachesPastTheTrainedContext() {
    IndexerDistillation.Options o =
        new IndexerDistillation.Options(
            new IndexerDistiller.Options(4, 16, 40, 3e-3, 2, 2),
            768,
            1,
            4,
            model.tokenizer().bosId(),
            new int[] {32},
            new AttentionPolicy.SelfExtend(4, 128),
            64);
    IndexerDistillation.Report report =
        IndexerDistillation.run(model.transformer().layers(), tokens, o, p -> {}, s -> {});
    assertTrue(
        report.finalLoss() < 0.8 * report.initialLoss(),
        "held-out loss " + report.initialLoss() + " → " + report.finalLoss());
    IndexerDistillation.Recall r = report.recall().getFirst();
    assertTrue(r.after() > r.before() + 0.02 && r.oracle() >= r.after(), r.toString());
  }

  @Test
  void filesForAnotherModelOrNotIndexerFilesAreRefusedNamingTheFile(@TempDir Path dir) {
    LlamaConfig c = model.config();
    LightningIndexer random = TestModels.randomIndexer(c, 4);
    Path file = dir.resolve("ix.gguf");
    IndexerDistillation.write(file, random, c, Map.of());
    IllegalArgumentException layers =
        assertThrows(
            IllegalArgumentException.class,
            () -> IndexerSource.IndexerFile.read(file, c.layers() + 1, c.dim(), c.ropeTheta()));
    assertTrue(layers.getMessage().contains(file.toString()), layers.getMessage());
    assertTrue(layers.getMessage().contains(c.layers() + " layers"), layers.getMessage());
    IllegalArgumentException rope =
        assertThrows(
            IllegalArgumentException.class,
            () -> IndexerSource.IndexerFile.read(file, c.layers(), c.dim(), 500000f));
    assertTrue(rope.getMessage().contains("RoPE base"), rope.getMessage());
    IllegalArgumentException notIndexer =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                IndexerSource.IndexerFile.read(
                    writeModelLikeFile(dir), c.layers(), c.dim(), c.ropeTheta()));
    assertTrue(notIndexer.getMessage().contains("is not an indexer file"), notIndexer.getMessage());
  }

  private static Path writeModelLikeFile(Path dir) {
    Path p = dir.resolve("model.gguf");
    try {
      new dev.longctx.engine.gguf.GgufWriter()
          .putString("general.architecture", "llama")
          .addTensor("token_embd.weight", new long[] {4, 2}, new float[8])
          .write(p);
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return p;
  }

  private static void assertSameScores(LightningIndexer a, LightningIndexer b, LlamaConfig c) {
    int n = 40;
    float[] x = new float[n * c.dim()];
    java.util.SplittableRandom r = new java.util.SplittableRandom(9);
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) r.nextDouble(-1, 1);
    }
    for (int l = 0; l < c.layers(); l++) {
      float[][] scores = new float[2][];
      int i = 0;
      for (LightningIndexer ix : new LightningIndexer[] {a, b}) {
        float[] keys = new float[n * ix.headDim()];
        float[] q = new float[n * ix.heads() * ix.headDim()];
        float[] w = new float[n * ix.heads()];
        ix.keys(l, x, n, 0, keys);
        ix.queries(l, x, n, 0, q, w);
        scores[i] = new float[n];
        ix.score(
            q, (n - 1) * ix.heads() * ix.headDim(), w, (n - 1) * ix.heads(), keys, n, scores[i]);
        i++;
      }
      assertArrayEquals(scores[0], scores[1], "layer " + l);
    }
  }
}
