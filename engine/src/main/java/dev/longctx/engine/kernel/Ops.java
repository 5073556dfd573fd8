package dev.longctx.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Element-wise and normalization kernels of the transformer forward pass, vectorized with the
 * Vector API ({@link FloatVector#SPECIES_PREFERRED}) and finished by a scalar loop over the ragged
 * tail.
 *
 * <p>Lane sums and exponentials go through {@link Lanes}, whose fixed operation order makes every
 * result independent of JIT warm-up (the Vector API's {@code reduceLanes(ADD)} and {@code EXP}
 * round differently in the interpreter and in C2).
 */
public final class Ops {

  static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

  /** Partial sums of the softmax are carried in float for this many elements, then in double. */
  private static final int SUM_BLOCK = 1024;

  private Ops() {}

  /** {@code out[i] = x[i] / sqrt(mean(x²) + eps) · weight[i]} over n elements. */
  public static void rmsnorm(
      float[] out, int outOffset, float[] x, int xOffset, float[] weight, int n, float eps) {
    float ss = sumOfSquares(x, xOffset, n);
    float scale = (float) (1.0 / Math.sqrt((double) ss / n + eps));
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector.fromArray(F, x, xOffset + i)
          .mul(scale)
          .mul(FloatVector.fromArray(F, weight, i))
          .intoArray(out, outOffset + i);
    }
    for (; i < n; i++) {
      out[outOffset + i] = x[xOffset + i] * scale * weight[i];
    }
  }

  /** {@code Σ x[offset + i]²} over n elements, in two float vector accumulators. */
  public static float sumOfSquares(float[] x, int offset, int n) {
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    int step = F.length();
    int i = 0;
    for (int bound = n - 2 * step; i <= bound; i += 2 * step) {
      FloatVector a = FloatVector.fromArray(F, x, offset + i);
      FloatVector b = FloatVector.fromArray(F, x, offset + i + step);
      acc0 = a.fma(a, acc0);
      acc1 = b.fma(b, acc1);
    }
    float sum = Lanes.sum(acc0.add(acc1));
    for (; i < n; i++) {
      sum += x[offset + i] * x[offset + i];
    }
    return sum;
  }

  /** {@code Σ a[aOffset + i] · b[bOffset + i]} over n elements. */
  public static float dot(float[] a, int aOffset, float[] b, int bOffset, int n) {
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    int step = F.length();
    int i = 0;
    for (int bound = n - 2 * step; i <= bound; i += 2 * step) {
      acc0 =
          FloatVector.fromArray(F, a, aOffset + i)
              .fma(FloatVector.fromArray(F, b, bOffset + i), acc0);
      acc1 =
          FloatVector.fromArray(F, a, aOffset + i + step)
              .fma(FloatVector.fromArray(F, b, bOffset + i + step), acc1);
    }
    if (i + step <= n) {
      acc0 =
          FloatVector.fromArray(F, a, aOffset + i)
              .fma(FloatVector.fromArray(F, b, bOffset + i), acc0);
      i += step;
    }
    float sum = Lanes.sum(acc0.add(acc1));
    for (; i < n; i++) {
      sum += a[aOffset + i] * b[bOffset + i];
    }
    return sum;
  }

  /** The largest of {@code x[offset .. offset + n)}; −∞ when n = 0. NaNs are ignored. */
  public static float max(float[] x, int offset, int n) {
    FloatVector acc = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector v = FloatVector.fromArray(F, x, offset + i);
      // A NaN lane would poison MAX; mask it out.
      acc = acc.lanewise(VectorOperators.MAX, v, v.eq(v));
    }
    float max = acc.reduceLanes(VectorOperators.MAX);
    for (; i < n; i++) {
      float v = x[offset + i];
      if (v > max) {
        max = v;
      }
    }
    return max;
  }

  /**
   * Index (relative to {@code offset}) of the largest of {@code x[offset .. offset + n)}, the
   * lowest such index on ties; NaNs are ignored. Returns −1 when n = 0 or every element is NaN.
   */
  public static int argmax(float[] x, int offset, int n) {
    float max = max(x, offset, n);
    for (int i = 0; i < n; i++) {
      if (x[offset + i] == max) {
        return i;
      }
    }
    return -1;
  }

  /**
   * In-place softmax over {@code x[offset .. offset + n)}: the maximum is subtracted before the
   * exponential, and the normalizer is summed in float over blocks of 1024 and in double across
   * blocks, so its relative error stays near float epsilon even for a 150K vocabulary. An all −∞
   * input has no distribution and is left as it is.
   */
  public static void softmax(float[] x, int offset, int n) {
    float max = max(x, offset, n);
    if (max == Float.NEGATIVE_INFINITY) {
      return;
    }
    double sum = expSub(x, offset, n, max);
    scale(x, offset, n, (float) (1.0 / sum));
  }

  /** {@code ln Σ exp(x_i)} over {@code x[offset .. offset + n)}, without modifying x. */
  public static float logSumExp(float[] x, int offset, int n) {
    float max = max(x, offset, n);
    if (max == Float.NEGATIVE_INFINITY) {
      return max;
    }
    double sum = 0;
    for (int start = 0; start < n; start += SUM_BLOCK) {
      int end = Math.min(n, start + SUM_BLOCK);
      FloatVector acc = FloatVector.zero(F);
      int i = start;
      for (int bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
        acc = acc.add(Lanes.exp(FloatVector.fromArray(F, x, offset + i).sub(max)));
      }
      float block = Lanes.sum(acc);
      for (; i < end; i++) {
        block += (float) Math.exp(x[offset + i] - max);
      }
      sum += block;
    }
    return (float) (max + Math.log(sum));
  }

  /**
   * {@code x[i] = exp(x[i] − shift)} in place over {@code x[offset .. offset + n)}; returns {@code
   * Σ exp(x[i] − shift)}, summed in float per block of 1024 and in double across blocks.
   */
  public static double expSub(float[] x, int offset, int n, float shift) {
    double sum = 0;
    for (int start = 0; start < n; start += SUM_BLOCK) {
      int end = Math.min(n, start + SUM_BLOCK);
      FloatVector acc = FloatVector.zero(F);
      int i = start;
      for (int bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
        FloatVector e = Lanes.exp(FloatVector.fromArray(F, x, offset + i).sub(shift));
        e.intoArray(x, offset + i);
        acc = acc.add(e);
      }
      float block = Lanes.sum(acc);
      for (; i < end; i++) {
        float e = (float) Math.exp(x[offset + i] - shift);
        x[offset + i] = e;
        block += e;
      }
      sum += block;
    }
    return sum;
  }

  /** SwiGLU gate: {@code gate[i] = silu(gate[i]) · up[i]} for {@code i < n}. */
  public static void swiglu(float[] gate, float[] up, int n) {
    swiglu(gate, 0, up, 0, n);
  }

  /**
   * SwiGLU gate over offsets: {@code gate[g + i] = silu(gate[g + i]) · up[u + i]}, where {@code
   * silu(x) = x / (1 + exp(−x))}.
   */
  public static void swiglu(float[] gate, int gateOffset, float[] up, int upOffset, int n) {
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector g = FloatVector.fromArray(F, gate, gateOffset + i);
      FloatVector silu = g.div(Lanes.exp(g.neg()).add(1f));
      silu.mul(FloatVector.fromArray(F, up, upOffset + i)).intoArray(gate, gateOffset + i);
    }
    for (; i < n; i++) {
      float g = gate[gateOffset + i];
      gate[gateOffset + i] = g / (1f + (float) Math.exp(-g)) * up[upOffset + i];
    }
  }

  /** {@code dst[i] += src[i]} for {@code i < n}. */
  public static void add(float[] dst, float[] src, int n) {
    add(dst, 0, src, 0, n);
  }

  /** {@code dst[d + i] += src[s + i]} for {@code i < n}. */
  public static void add(float[] dst, int dstOffset, float[] src, int srcOffset, int n) {
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector.fromArray(F, dst, dstOffset + i)
          .add(FloatVector.fromArray(F, src, srcOffset + i))
          .intoArray(dst, dstOffset + i);
    }
    for (; i < n; i++) {
      dst[dstOffset + i] += src[srcOffset + i];
    }
  }

  /** {@code dst[i] *= src[i]} for {@code i < n}. */
  public static void mul(float[] dst, float[] src, int n) {
    mul(dst, 0, src, 0, n);
  }

  /** {@code dst[d + i] *= src[s + i]} for {@code i < n}. */
  public static void mul(float[] dst, int dstOffset, float[] src, int srcOffset, int n) {
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector.fromArray(F, dst, dstOffset + i)
          .mul(FloatVector.fromArray(F, src, srcOffset + i))
          .intoArray(dst, dstOffset + i);
    }
    for (; i < n; i++) {
      dst[dstOffset + i] *= src[srcOffset + i];
    }
  }

  /** {@code x[offset + i] *= factor} for {@code i < n}. */
  public static void scale(float[] x, int offset, int n, float factor) {
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector.fromArray(F, x, offset + i).mul(factor).intoArray(x, offset + i);
    }
    for (; i < n; i++) {
      x[offset + i] *= factor;
    }
  }

  /**
   * {@code dst[d + i] += factor · src[s + i]} for {@code i < n} (axpy; weighted sums of expert or
   * attention outputs).
   */
  public static void addScaled(
      float[] dst, int dstOffset, float[] src, int srcOffset, int n, float factor) {
    int i = 0;
    for (int bound = F.loopBound(n); i < bound; i += F.length()) {
      FloatVector.fromArray(F, src, srcOffset + i)
          .fma(FloatVector.broadcast(F, factor), FloatVector.fromArray(F, dst, dstOffset + i))
          .intoArray(dst, dstOffset + i);
    }
    for (; i < n; i++) {
      dst[dstOffset + i] = Math.fma(factor, src[srcOffset + i], dst[dstOffset + i]);
    }
  }
}
