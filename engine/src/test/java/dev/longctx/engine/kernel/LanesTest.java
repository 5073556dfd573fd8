package dev.longctx.engine.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Arrays;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/**
 * {@link Lanes}: the exponential against float64 over its whole range and at its special values,
 * the lane sum against its fixed order, and the kernels built on them bit-identical from the
 * interpreter to C2.
 */
class LanesTest {

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

  private static float[] exp(float[] x) {
    float[] out = new float[x.length];
    for (int i = 0; i < x.length; i += F.length()) {
      Lanes.exp(FloatVector.fromArray(F, x, i)).intoArray(out, i);
    }
    return out;
  }

  /** Distance in units of the last place of the float nearest to {@code exact}. */
  private static double ulps(float got, double exact) {
    return Math.abs(got - exact) / Math.ulp((float) exact);
  }

  @Test
  void expIsWithinTwoUlpOfFloat64WhereTheResultIsNormal() {
    Random r = new Random(7);
    int n = 1 << 20;
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      // A uniform sweep of the normal-result range plus small arguments, where rounding of r shows.
      x[i] = i % 2 == 0 ? -87.3f + 176f * r.nextFloat() : (float) r.nextGaussian();
    }
    float[] e = exp(x);
    double worst = 0;
    for (int i = 0; i < n; i++) {
      double exact = Math.exp(x[i]);
      if (exact >= Float.MIN_NORMAL && exact <= Float.MAX_VALUE) {
        worst = Math.max(worst, ulps(e[i], exact));
      }
    }
    assertThat(worst).isLessThanOrEqualTo(2.0);
  }

  @Test
  void expHandlesZeroInfinitiesNaNAndTheFloatRangesEnds() {
    float[] x = new float[F.length()];
    float[] special = {
      0f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, 89.5f, -120f, 88.7f, -100f,
    };
    System.arraycopy(special, 0, x, 0, special.length);
    float[] e = exp(x);
    assertThat(e[0]).isEqualTo(1f);
    assertThat(e[1]).isEqualTo(0f);
    assertThat(e[2]).isEqualTo(Float.POSITIVE_INFINITY);
    assertThat(e[3]).isNaN();
    assertThat(e[4]).isEqualTo(Float.POSITIVE_INFINITY);
    assertThat(e[5]).isEqualTo(0f);
    assertThat(ulps(e[6], Math.exp(x[6]))).isLessThanOrEqualTo(2.0); // near Float.MAX_VALUE
    // Subnormal results keep their magnitude (the scale is applied in two exact steps), to within
    // one subnormal step.
    assertThat((double) e[7]).isCloseTo(Math.exp(x[7]), within((double) Float.MIN_VALUE));
  }

  @Test
  void sumAddsTheLanesInItsFixedTreeOrder() {
    Random r = new Random(3);
    for (VectorSpecies<Float> species : java.util.List.of(FloatVector.SPECIES_256, F)) {
      int lanes = species.length();
      for (int trial = 0; trial < 1000; trial++) {
        float[] v = new float[lanes];
        for (int i = 0; i < lanes; i++) {
          // Magnitudes spread over 2^±20 so that every order of the additions rounds differently.
          v[i] = (float) (r.nextGaussian() * Math.pow(2, r.nextInt(41) - 20));
        }
        float[] s = v.clone();
        for (int by = lanes / 2; by >= 1; by /= 2) {
          float[] next = new float[lanes];
          for (int i = 0; i < lanes; i++) {
            next[i] = s[i] + s[(i + by) % lanes];
          }
          s = next;
        }
        assertThat(Float.floatToRawIntBits(Lanes.sum(FloatVector.fromArray(species, v, 0))))
            .isEqualTo(Float.floatToRawIntBits(s[0]));
        // The stored form kernels use after a loop: same bits, at an offset, scratch overwritten.
        float[] stored = new float[lanes + 3];
        System.arraycopy(v, 0, stored, 3, lanes);
        assertThat(Float.floatToRawIntBits(Lanes.sum(stored, 3, lanes)))
            .isEqualTo(Float.floatToRawIntBits(s[0]));
      }
    }
  }

  /**
   * The same inputs through the kernels from the first call (interpreted) to the last (compiled by
   * C2): every result bit-identical. {@code reduceLanes(ADD)} and {@code lanewise(EXP)} fail this.
   */
  @Test
  void kernelResultsDoNotDependOnJitWarmUp() {
    Random r = new Random(11);
    int n = 4 * F.length() + 5;
    float[] logits = OpsTest.gaussian(r, n, 4, 0);
    float[] a = OpsTest.gaussian(r, n, 1, 0);
    float[] b = OpsTest.gaussian(r, n, 1, 0);
    float[] first = null;
    for (int round = 0; round < 30_000; round++) {
      float[] soft = logits.clone();
      Ops.softmax(soft, 0, n);
      float[] gate = a.clone();
      Ops.swiglu(gate, b, n);
      float[] result = Arrays.copyOf(soft, 2 * n + 3);
      System.arraycopy(gate, 0, result, n, n);
      result[2 * n] = Ops.dot(a, 0, b, 0, n);
      result[2 * n + 1] = Ops.logSumExp(logits, 0, n);
      result[2 * n + 2] = Ops.sumOfSquares(a, 0, n);
      if (first == null) {
        first = result;
      } else if (!Arrays.equals(first, result)) {
        throw new AssertionError("round " + round + " differs from the first run");
      }
    }
  }
}
