package dev.longctx.engine.distill;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.gguf.GgufWriter;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.model.LlamaConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * A whole distillation (ALGORITHMS.md §5.3) of a lightning indexer for a model that has none: the
 * text's tokens are cut into windows of the model's context (each starting with BOS where the
 * tokenizer has one), the last few held out; the frozen model gives every layer's targets; {@link
 * IndexerDistiller} trains; the result is scored by attention-mass recall on the held-out windows
 * and written as an indexer file ({@link IndexerSource.IndexerFile}).
 */
public final class IndexerDistillation {

  /**
   * @param training the trainer's settings
   * @param windowTokens tokens per window, BOS included (at most the model's trained context, or
   *     SelfExtend's maximum with {@code selfExtend})
   * @param heldOutWindows windows kept out of training to measure the loss and the recall
   * @param maxWindows training windows at most (≤ 0: as many as the text gives)
   * @param bos BOS id to start each window with, or −1
   * @param recallK the k of the recall report
   * @param selfExtend the teacher's SelfExtend (the attention the indexer will select for at long
   *     contexts), or null for dense attention
   * @param queryRows query rows of the loss per window, drawn at random (≥ windowTokens: every row)
   */
  public record Options(
      IndexerDistiller.Options training,
      int windowTokens,
      int heldOutWindows,
      int maxWindows,
      int bos,
      int[] recallK,
      AttentionPolicy.SelfExtend selfExtend,
      int queryRows) {

    /** Dense teacher attention, every row a query. */
    public Options(
        IndexerDistiller.Options training,
        int windowTokens,
        int heldOutWindows,
        int maxWindows,
        int bos,
        int[] recallK) {
      this(training, windowTokens, heldOutWindows, maxWindows, bos, recallK, null, windowTokens);
    }
  }

  /**
   * Held-out attention-mass recall at k: the distilled indexer's and the oracle's (best possible).
   */
  public record Recall(int k, double before, double after, double oracle) {}

  /** What a distillation produced. */
  public record Report(
      LightningIndexer indexer,
      int trainWindows,
      int heldOutWindows,
      long trainTokens,
      double initialLoss,
      double finalLoss,
      List<Recall> recall) {}

  private IndexerDistillation() {}

  /** Distills an indexer for {@code layers}' model from {@code tokens} (the text, without BOS). */
  public static Report run(
      TransformerLayers layers,
      int[] tokens,
      Options o,
      Consumer<IndexerDistiller.Progress> progress,
      Consumer<String> log) {
    LlamaConfig c = layers.config();
    // The indexer's shape first: a bad one fails before the teacher's passes.
    IndexerObjective objective =
        new IndexerObjective(
            new IndexerObjective.Shape(o.training().heads(), o.training().headDim(), c.dim()),
            c.ropeTheta());
    int text = o.windowTokens() - (o.bos() >= 0 ? 1 : 0);
    if (text < 2) {
      throw new IllegalArgumentException(
          "windows of " + o.windowTokens() + " tokens leave no room for text");
    }
    int available = tokens.length / text;
    if (available < o.heldOutWindows() + 1) {
      throw new IllegalArgumentException(
          "the text gives "
              + available
              + " windows of "
              + text
              + " tokens; distillation needs at least "
              + (o.heldOutWindows() + 1)
              + " ("
              + o.heldOutWindows()
              + " held out)");
    }
    int trainCount = available - o.heldOutWindows();
    if (o.maxWindows() > 0) {
      trainCount = Math.min(trainCount, o.maxWindows());
    }
    List<IndexerObjective.Window[]> train = new ArrayList<>();
    List<IndexerObjective.Window[]> heldOut = new ArrayList<>();
    SplittableRandom rowChoice = new SplittableRandom(o.training().seed() ^ 0x5DEECE66DL);
    for (int i = 0; i < trainCount + o.heldOutWindows(); i++) {
      // Held-out windows come from the end of the text, training windows from its start.
      int start = i < trainCount ? i * text : (available - (i - trainCount) - 1) * text;
      int[] window = new int[o.windowTokens()];
      int off = 0;
      if (o.bos() >= 0) {
        window[off++] = o.bos();
      }
      System.arraycopy(tokens, start, window, off, text);
      int[] rows = queryRows(window.length, o.queryRows(), rowChoice);
      (i < trainCount ? train : heldOut)
          .add(TeacherAttention.windows(layers, window, o.selfExtend(), rows, null));
      if ((i + 1) % 8 == 0 || i + 1 == trainCount + o.heldOutWindows()) {
        log.accept(
            "teacher attention: " + (i + 1) + "/" + (trainCount + o.heldOutWindows()) + " windows");
      }
    }
    IndexerDistiller.Options t = o.training();
    IndexerDistiller.Result result =
        IndexerDistiller.train(objective, train, heldOut, t, Math.max(1, t.steps() / 10), progress);
    List<Recall> recall = new ArrayList<>();
    if (!heldOut.isEmpty()) {
      int[] ks = o.recallK();
      double[] before = meanRecall(objective, result.initialParameters(), heldOut, ks);
      double[] after = meanRecall(objective, result.parameters(), heldOut, ks);
      double[] oracle = meanRecall(objective, null, heldOut, ks);
      for (int i = 0; i < ks.length; i++) {
        recall.add(new Recall(ks[i], before[i], after[i], oracle[i]));
      }
    }
    return new Report(
        result.indexer(c.ropeTheta()),
        train.size(),
        heldOut.size(),
        (long) train.size() * o.windowTokens(),
        result.initialLoss(),
        result.finalLoss(),
        recall);
  }

  /** {@code count} distinct rows of [0, n) at random, ascending (all of them when count ≥ n). */
  static int[] queryRows(int n, int count, SplittableRandom random) {
    if (count >= n) {
      return TeacherAttention.allRows(n);
    }
    int[] all = TeacherAttention.allRows(n);
    for (int i = 0; i < count; i++) { // a partial Fisher–Yates shuffle
      int j = i + random.nextInt(n - i);
      int swap = all[i];
      all[i] = all[j];
      all[j] = swap;
    }
    int[] rows = Arrays.copyOf(all, count);
    Arrays.sort(rows);
    return rows;
  }

  /**
   * Recall at each of {@code ks} averaged over every window and layer: of the indexers {@code
   * theta}, or the oracle's where it is null. Each window's scores are computed once for all k.
   */
  static double[] meanRecall(
      IndexerObjective objective,
      double[][] theta,
      List<IndexerObjective.Window[]> windows,
      int[] ks) {
    double[] sum = new double[ks.length];
    int count = 0;
    for (IndexerObjective.Window[] w : windows) {
      for (int l = 0; l < w.length; l++) {
        double[] scores =
            theta == null ? null : objective.scores(theta[l], w[l].x(), w[l].n(), w[l].rows());
        for (int i = 0; i < ks.length; i++) {
          sum[i] += IndexerDistiller.recall(w[l], scores, ks[i]);
        }
        count++;
      }
    }
    for (int i = 0; i < ks.length; i++) {
      sum[i] /= count;
    }
    return sum;
  }

  /**
   * Writes {@code indexer} as an indexer file for a model of config {@code c}, with {@code
   * provenance} (string metadata under {@code lightning-indexer.distill.*}).
   */
  public static void write(
      Path out, LightningIndexer indexer, LlamaConfig c, java.util.Map<String, String> provenance) {
    GgufWriter w = new GgufWriter();
    w.putString("general.architecture", IndexerSource.IndexerFile.ARCHITECTURE);
    w.putString("general.name", "lightning indexer distilled by longctx (ALGORITHMS.md §5.3)");
    w.putUInt32(IndexerSource.IndexerFile.LAYERS, c.layers());
    w.putUInt32(IndexerSource.IndexerFile.INPUT_WIDTH, c.dim());
    w.putFloat32(IndexerSource.IndexerFile.ROPE_BASE, c.ropeTheta());
    w.putString(IndexerSource.IndexerFile.ID, java.util.UUID.randomUUID().toString());
    w.putUInt32(IndexerSource.IndexerFile.ARCHITECTURE + ".head_count", indexer.heads());
    w.putUInt32(IndexerSource.IndexerFile.ARCHITECTURE + ".key_length", indexer.headDim());
    provenance.forEach(
        (k, v) -> w.putString(IndexerSource.IndexerFile.ARCHITECTURE + ".distill." + k, v));
    indexer.addTensors(w);
    try {
      w.write(out);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + out, e);
    }
  }
}
