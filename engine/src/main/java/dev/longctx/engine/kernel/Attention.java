package dev.longctx.engine.kernel;

/**
 * Attention of one query head over a run of cached keys and values. Key {@code s}, element {@code
 * d} lives at {@code keys[base + s * stride + d]} (values likewise), so one head of a {@code
 * [positions][kvHeads][headDim]} cache is addressed with {@code base = kvHead * headDim} and {@code
 * stride = kvHeads * headDim}.
 */
public final class Attention {

  private Attention() {}

  /**
   * {@code out = Σ_s softmax_s(scale · q·k_s) · v_s} over keys {@code s < len}; returns the
   * log-sum-exp {@code ln Σ_s exp(scale · q·k_s)} so partial results over disjoint key sets can be
   * merged exactly (ALGORITHMS.md §4.2).
   */
  public static float attend(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int len,
      int headDim,
      float scale,
      float[] out,
      int outOffset) {
    float max = Float.NEGATIVE_INFINITY;
    float sum = 0;
    float[] acc = new float[headDim];
    for (int s = 0; s < len; s++) {
      int k = base + s * stride;
      float score = 0;
      for (int d = 0; d < headDim; d++) {
        score += q[qOffset + d] * keys[k + d];
      }
      score *= scale;
      float newMax = Math.max(max, score);
      float correction = (float) Math.exp(max - newMax);
      float p = (float) Math.exp(score - newMax);
      sum = sum * correction + p;
      for (int d = 0; d < headDim; d++) {
        acc[d] = acc[d] * correction + p * values[k + d];
      }
      max = newMax;
    }
    for (int d = 0; d < headDim; d++) {
      out[outOffset + d] = acc[d] / sum;
    }
    return max + (float) Math.log(sum);
  }
}
