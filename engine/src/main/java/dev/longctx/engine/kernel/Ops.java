package dev.longctx.engine.kernel;

/** Element-wise and normalization kernels of the transformer forward pass. */
public final class Ops {

  private Ops() {}

  /** {@code out[i] = x[i] / sqrt(mean(x²) + eps) · weight[i]} over n elements. */
  public static void rmsnorm(
      float[] out, int outOffset, float[] x, int xOffset, float[] weight, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) {
      ss += x[xOffset + i] * x[xOffset + i];
    }
    float scale = (float) (1.0 / Math.sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) {
      out[outOffset + i] = x[xOffset + i] * scale * weight[i];
    }
  }

  /** In-place softmax over {@code x[offset .. offset + n)}. */
  public static void softmax(float[] x, int offset, int n) {
    float max = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      max = Math.max(max, x[offset + i]);
    }
    float sum = 0;
    for (int i = 0; i < n; i++) {
      x[offset + i] = (float) Math.exp(x[offset + i] - max);
      sum += x[offset + i];
    }
    for (int i = 0; i < n; i++) {
      x[offset + i] /= sum;
    }
  }

  /** SwiGLU gate: {@code gate[i] = silu(gate[i]) · up[i]} for {@code i < n}. */
  public static void swiglu(float[] gate, float[] up, int n) {
    for (int i = 0; i < n; i++) {
      float g = gate[i];
      gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
    }
  }

  /** {@code dst[i] += src[i]} for {@code i < n}. */
  public static void add(float[] dst, float[] src, int n) {
    for (int i = 0; i < n; i++) {
      dst[i] += src[i];
    }
  }
}
