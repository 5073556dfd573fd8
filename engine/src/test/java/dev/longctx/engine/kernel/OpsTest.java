package dev.longctx.engine.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every vectorized kernel against a scalar float64 reference on random inputs, ragged tails
 * included.
 */
class OpsTest {

  /** Sizes around the vector width (8 or 16 lanes) and a long ragged one. */
  static final int[] SIZES = {1, 7, 31, 64, 100, 4096 + 3};

  static float[] gaussian(Random r, int n, double sigma, double mean) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (mean + sigma * r.nextGaussian());
    }
    return x;
  }

  static double maxAbs(double[] x) {
    double m = 0;
    for (double v : x) {
      m = Math.max(m, Math.abs(v));
    }
    return m;
  }

  @Test
  void rmsnormMatchesFloat64ReferenceAtAllSizesAndOffsets() {
    Random r = new Random(1);
    for (int n : SIZES) {
      float[] x = gaussian(r, n + 3, 2, 0.5);
      float[] w = gaussian(r, n, 0.2, 1);
      float[] out = new float[n + 5];
      Ops.rmsnorm(out, 5, x, 3, w, n, 1e-5f);
      double ss = 0;
      for (int i = 0; i < n; i++) {
        ss += (double) x[3 + i] * x[3 + i];
      }
      double inv = 1 / Math.sqrt(ss / n + 1e-5f);
      for (int i = 0; i < n; i++) {
        double ref = x[3 + i] * inv * w[i];
        assertThat((double) out[5 + i])
            .as("n=%d i=%d", n, i)
            .isCloseTo(ref, within(2e-6 * (1 + Math.abs(ref))));
      }
      assertThat(out[0]).isZero(); // nothing written before outOffset
    }
  }

  @ParameterizedTest
  @ValueSource(doubles = {0, 1e4, -1e4, 80})
  void softmaxMatchesFloat64ReferenceIncludingLargeMagnitudes(double mean) {
    Random r = new Random(2);
    for (int n : SIZES) {
      // sigma 30 spreads the exponents over ~1e±80: underflow of most terms is exercised too.
      for (double sigma : new double[] {1, 30}) {
        float[] x = gaussian(r, n + 2, sigma, mean);
        double[] ref = referenceSoftmax(x, 2, n);
        float[] y = x.clone();
        Ops.softmax(y, 2, n);
        float max = Ops.max(x, 2, n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
          sum += y[2 + i];
          // x − max is rounded to float (half an ulp of |x − max|, ~6e-8 relative), which exp
          // turns into a relative error of |x − max| · 6e-8; a few ulps more for exp and scaling.
          double rel = 1e-6 + 6e-8 * Math.abs(x[2 + i] - max);
          assertThat((double) y[2 + i])
              .as("n=%d sigma=%s i=%d", n, sigma, i)
              .isCloseTo(ref[i], within(rel * ref[i] + 1e-37));
        }
        assertThat(sum).isCloseTo(1.0, within(1e-5));
        assertThat(y[0]).isEqualTo(x[0]);
        double lse = referenceLogSumExp(x, 2, n);
        assertThat((double) Ops.logSumExp(x, 2, n))
            .isCloseTo(lse, within(1e-6 * (1 + Math.abs(lse))));
      }
    }
  }

  static double[] referenceSoftmax(float[] x, int offset, int n) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      max = Math.max(max, x[offset + i]);
    }
    double[] p = new double[n];
    double sum = 0;
    for (int i = 0; i < n; i++) {
      p[i] = Math.exp(x[offset + i] - max);
      sum += p[i];
    }
    for (int i = 0; i < n; i++) {
      p[i] /= sum;
    }
    return p;
  }

  static double referenceLogSumExp(float[] x, int offset, int n) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      max = Math.max(max, x[offset + i]);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += Math.exp(x[offset + i] - max);
    }
    return max + Math.log(sum);
  }

  @Test
  void softmaxOfAllNegativeInfinityIsLeftAlone() {
    float[] x = {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY};
    Ops.softmax(x, 0, 2);
    assertThat(x).containsExactly(Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY);
    assertThat(Ops.logSumExp(x, 0, 2)).isEqualTo(Float.NEGATIVE_INFINITY);
  }

  @Test
  void swigluMatchesFloat64Reference() {
    Random r = new Random(3);
    for (int n : SIZES) {
      float[] gate = gaussian(r, n, 4, 0);
      gate[0] = -100; // exp(100) overflows float: silu must still be −0, not NaN
      float[] up = gaussian(r, n, 1, 0.1);
      float[] g = gate.clone();
      Ops.swiglu(g, up, n);
      for (int i = 0; i < n; i++) {
        double ref = gate[i] / (1 + Math.exp(-(double) gate[i])) * up[i];
        assertThat((double) g[i])
            .as("n=%d i=%d", n, i)
            .isCloseTo(ref, within(2e-6 * (1 + Math.abs(ref))));
      }
      float[] g2 = new float[n + 4];
      float[] up2 = new float[n + 1];
      System.arraycopy(gate, 0, g2, 4, n);
      System.arraycopy(up, 0, up2, 1, n);
      Ops.swiglu(g2, 4, up2, 1, n);
      for (int i = 0; i < n; i++) {
        assertThat(g2[4 + i]).isEqualTo(g[i]);
      }
    }
  }

  @Test
  void elementwiseHelpersMatchFloat64Reference() {
    Random r = new Random(4);
    for (int n : SIZES) {
      float[] a = gaussian(r, n + 1, 1, 0.3);
      float[] b = gaussian(r, n + 2, 1, -0.2);
      float[] sum = a.clone();
      Ops.add(sum, 1, b, 2, n);
      float[] prod = a.clone();
      Ops.mul(prod, 1, b, 2, n);
      float[] scaled = a.clone();
      Ops.scale(scaled, 1, n, 0.37f);
      float[] axpy = a.clone();
      Ops.addScaled(axpy, 1, b, 2, n, -1.7f);
      double dot = 0;
      double ss = 0;
      for (int i = 0; i < n; i++) {
        double x = a[1 + i];
        double y = b[2 + i];
        assertThat((double) sum[1 + i]).isCloseTo(x + y, within(1e-6 * (1 + Math.abs(x + y))));
        assertThat((double) prod[1 + i]).isCloseTo(x * y, within(1e-6 * (1 + Math.abs(x * y))));
        assertThat((double) scaled[1 + i]).isCloseTo(0.37f * x, within(1e-6));
        assertThat((double) axpy[1 + i]).isCloseTo(x - 1.7f * y, within(2e-6 * (1 + Math.abs(x))));
        dot += x * y;
        ss += x * x;
      }
      assertThat(sum[0]).isEqualTo(a[0]);
      assertThat((double) Ops.dot(a, 1, b, 2, n)).isCloseTo(dot, within(1e-5 * Math.sqrt(n)));
      assertThat((double) Ops.sumOfSquares(a, 1, n)).isCloseTo(ss, within(1e-6 * ss));
      float[] a0 = a.clone();
      Ops.add(a0, b, n);
      assertThat(a0[0]).isEqualTo(a[0] + b[0]);
      Ops.mul(a0, b, n);
      assertThat(a0[n - 1]).isEqualTo((a[n - 1] + b[n - 1]) * b[n - 1]);
    }
  }

  @Test
  void argmaxReturnsLowestIndexOfTheMaximumAndIgnoresNaN() {
    Random r = new Random(5);
    for (int n : SIZES) {
      float[] x = gaussian(r, n + 1, 1, 0);
      int expected = 0;
      for (int i = 1; i < n; i++) {
        if (x[1 + i] > x[1 + expected]) {
          expected = i;
        }
      }
      assertThat(Ops.argmax(x, 1, n)).isEqualTo(expected);
      assertThat(Ops.max(x, 1, n)).isEqualTo(x[1 + expected]);
    }
    float[] ties = new float[100];
    java.util.Arrays.fill(ties, -1f);
    ties[97] = 3f;
    ties[41] = 3f;
    ties[77] = 3f;
    ties[3] = Float.NaN;
    assertThat(Ops.argmax(ties, 0, 100)).isEqualTo(41);
    assertThat(Ops.argmax(ties, 42, 58)).isEqualTo(77 - 42);
    assertThat(Ops.argmax(new float[] {Float.NaN, Float.NaN}, 0, 2)).isEqualTo(-1);
    assertThat(Ops.argmax(ties, 0, 0)).isEqualTo(-1);
  }
}
