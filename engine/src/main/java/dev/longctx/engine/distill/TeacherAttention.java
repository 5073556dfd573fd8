package dev.longctx.engine.distill;

import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * The distillation targets of ALGORITHMS.md §5.3: the frozen model runs a window of tokens (at
 * positions 0..n−1) with dense causal attention, and every layer gives its normalized attention
 * input x_t and its attention distribution p_{t,s} = (1/H_q) Σ_h A_{h,t,s} (the softmax of the
 * rotated query-key logits, summed over all query heads of every GQA group).
 */
public final class TeacherAttention {

  private TeacherAttention() {}

  /**
   * One {@link IndexerObjective.Window} per layer for {@code tokens[off, off + n)}, the model's
   * forward pass run in float32 as the engine runs it (its own attention in float64 sums).
   */
  public static IndexerObjective.Window[] windows(
      TransformerLayers layers, int[] tokens, int off, int n) {
    return windows(layers, tokens, off, n, null);
  }

  /**
   * {@link #windows(TransformerLayers, int[], int, int)}, and the last row's logits into {@code
   * logits} when not null.
   */
  static IndexerObjective.Window[] windows(
      TransformerLayers layers, int[] tokens, int off, int n, float[] logits) {
    LlamaConfig c = layers.config();
    if (n < 1 || n > c.contextLength()) {
      throw new IllegalArgumentException(
          "a distillation window must hold 1 to "
              + c.contextLength()
              + " tokens (the model's trained context), got "
              + n);
    }
    TransformerLayers.Activations a = layers.newActivations(n);
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      positions[t] = t;
    }
    layers.embed(tokens, off, n, a);
    IndexerObjective.Window[] out = new IndexerObjective.Window[c.layers()];
    float[] att = new float[n * c.queryDim()];
    for (int l = 0; l < c.layers(); l++) {
      layers.project(l, a, n);
      layers.rotate(a, n, positions);
      float[] p = new float[n * n];
      attend(c, a.queries(), a.keys(), a.values(), n, p, att);
      out[l] = new IndexerObjective.Window(Arrays.copyOf(a.normedInput(), n * c.dim()), p, n);
      layers.finish(l, att, a, n);
    }
    if (logits != null) {
      layers.logits(a, new int[] {n - 1}, logits);
    }
    return out;
  }

  /**
   * Dense causal attention of rows [0, n): the output into {@code att} and the head-mean
   * probabilities into {@code p} (row t, columns s ≤ t).
   */
  private static void attend(
      LlamaConfig c, float[] q, float[] k, float[] v, int n, float[] p, float[] att) {
    int heads = c.heads(), hd = c.headDim(), kvDim = c.kvDim(), qDim = c.queryDim();
    int group = c.groupSize();
    double scale = 1.0 / Math.sqrt(hd);
    Parallel.forChunks(
        n,
        Math.max(1, n / (8 * Parallel.threads())),
        (from, to) -> {
          double[] z = new double[n];
          double[] mean = new double[n];
          double[] o = new double[hd];
          for (int t = from; t < to; t++) {
            Arrays.fill(mean, 0, t + 1, 0);
            for (int h = 0; h < heads; h++) {
              int qo = t * qDim + h * hd, ko = (h / group) * hd;
              double max = Double.NEGATIVE_INFINITY;
              for (int s = 0; s <= t; s++) {
                double dot = 0;
                for (int i = 0; i < hd; i++) {
                  dot += (double) q[qo + i] * k[s * kvDim + ko + i];
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
            for (int s = 0; s <= t; s++) {
              p[t * n + s] = (float) (mean[s] / heads);
            }
          }
        });
  }
}
