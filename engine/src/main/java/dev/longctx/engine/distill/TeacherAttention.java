package dev.longctx.engine.distill;

import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * The distillation targets of ALGORITHMS.md §5.3: the frozen model runs a window of tokens (at
 * positions 0..n−1) with its attention, and every layer gives its normalized attention input x_t
 * and its attention distribution p_{t,s} = (1/H_q) Σ_h A_{h,t,s} (the softmax of the rotated
 * query-key logits, summed over all query heads of every GQA group).
 *
 * <p>The attention is dense causal attention, or, for windows past the model's trained context,
 * SelfExtend's (§2.3: one softmax over the neighbor logits of keys closer than w and the grouped
 * logits of the others): the distribution an indexer must find the keys of when it serves long
 * prompts under SelfExtend.
 */
public final class TeacherAttention {

  private TeacherAttention() {}

  /**
   * One {@link IndexerObjective.Window} per layer for {@code tokens} (n of them, at positions
   * 0..n−1) with the distributions of query rows {@code rows} (ascending), under SelfExtend {@code
   * se} or, when null, dense attention; the last row's logits into {@code logits} when not null.
   * The forward pass runs in float32 as the engine runs it, its attention sums in float64.
   */
  public static IndexerObjective.Window[] windows(
      TransformerLayers layers, int[] tokens, SelfExtend se, int[] rows, float[] logits) {
    LlamaConfig c = layers.config();
    int n = tokens.length;
    int max = se == null ? c.contextLength() : se.maxContext(c.contextLength());
    if (n < 1 || n > max) {
      throw new IllegalArgumentException(
          "a distillation window must hold 1 to "
              + max
              + " tokens ("
              + (se == null ? "the model's trained context" : "SelfExtend's maximum context")
              + "), got "
              + n);
    }
    TransformerLayers.Activations a = layers.newActivations(n);
    int[] positions = allRows(n);
    layers.embed(tokens, 0, n, a);
    IndexerObjective.Window[] out = new IndexerObjective.Window[c.layers()];
    float[] att = new float[n * c.queryDim()];
    for (int l = 0; l < c.layers(); l++) {
      layers.project(l, a, n);
      if (se != null) {
        layers.rotateSelfExtend(a, n, positions, se);
      } else {
        layers.rotate(a, n, positions);
      }
      float[] p = new float[rows.length * n];
      attend(c, a, se, n, rows, p, att);
      out[l] = new IndexerObjective.Window(Arrays.copyOf(a.normedInput(), n * c.dim()), rows, p, n);
      layers.finish(l, att, a, n);
    }
    if (logits != null) {
      layers.logits(a, new int[] {n - 1}, logits);
    }
    return out;
  }

  /** 0, 1, …, n − 1. */
  public static int[] allRows(int n) {
    int[] rows = new int[n];
    for (int t = 0; t < n; t++) {
      rows[t] = t;
    }
    return rows;
  }

  /**
   * Causal attention of rows [0, n) (SelfExtend's merged logits when {@code se} is not null): the
   * output into {@code att}, and the head-mean probabilities of the rows listed in {@code rows}
   * into {@code p} (entry r, columns s ≤ rows[r]).
   */
  private static void attend(
      LlamaConfig c,
      TransformerLayers.Activations a,
      SelfExtend se,
      int n,
      int[] rows,
      float[] p,
      float[] att) {
    int heads = c.heads(), hd = c.headDim(), kvDim = c.kvDim(), qDim = c.queryDim();
    int group = c.groupSize();
    double scale = 1.0 / Math.sqrt(hd);
    float[] q = a.queries(), k = a.keys(), v = a.values();
    float[] qg = a.groupQueries(), kg = a.groupKeys();
    int[] rowOf = new int[n]; // t → its entry in rows, or −1
    Arrays.fill(rowOf, -1);
    for (int r = 0; r < rows.length; r++) {
      rowOf[rows[r]] = r;
    }
    Parallel.forChunks(
        n,
        Math.max(1, n / (8 * Parallel.threads())),
        (from, to) -> {
          double[] z = new double[n];
          double[] mean = new double[n];
          double[] o = new double[hd];
          for (int t = from; t < to; t++) {
            Arrays.fill(mean, 0, t + 1, 0);
            // SelfExtend: keys from `near` on are neighbors (own positions), older ones grouped.
            int near = se == null ? 0 : se.neighborStart(t);
            for (int h = 0; h < heads; h++) {
              int qo = t * qDim + h * hd, ko = (h / group) * hd;
              double max = Double.NEGATIVE_INFINITY;
              for (int s = 0; s <= t; s++) {
                float[] qs = s >= near ? q : qg, ks = s >= near ? k : kg;
                double dot = 0;
                for (int i = 0; i < hd; i++) {
                  dot += (double) qs[qo + i] * ks[s * kvDim + ko + i];
                }
                z[s] = dot * scale;
                max = Math.max(max, z[s]);
              }
              double sum = 0;
              for (int s = 0; s <= t; s++) {
                z[s] = Math.exp(z[s] - max);
                sum += z[s];
              }
              Arrays.fill(o, 0);
              for (int s = 0; s <= t; s++) {
                double prob = z[s] / sum;
                mean[s] += prob;
                for (int i = 0; i < hd; i++) {
                  o[i] += prob * v[s * kvDim + ko + i];
                }
              }
              for (int i = 0; i < hd; i++) {
                att[qo + i] = (float) o[i];
              }
            }
            int r = rowOf[t];
            if (r >= 0) {
              for (int s = 0; s <= t; s++) {
                p[r * n + s] = (float) (mean[s] / heads);
              }
            }
          }
        });
  }
}
