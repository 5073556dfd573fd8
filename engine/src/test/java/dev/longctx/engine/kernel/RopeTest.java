package dev.longctx.engine.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.kernel.Rope.Layout;
import dev.longctx.engine.kernel.Rope.Llama3Scaling;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * RoPE against a float64 reference: frequencies, angles and the rotation all in double. Float
 * output can be off by a few float ulps of the inputs; an angle formed in float would be off by
 * ~0.03 rad at position 10⁶ and fail these checks by orders of magnitude.
 */
class RopeTest {

  static final int[] POSITIONS = {0, 1, 1000, 131071, 1_000_000};
  static final Llama3Scaling LLAMA31 = new Llama3Scaling(8f, 1f, 4f, 8192);
  static final double TOL = 2e-6;

  /** The Llama-3.1 reference {@code apply_scaling}, restated independently in double. */
  static double referenceFrequency(int i, int headDim, double theta, Llama3Scaling s) {
    double freq = Math.pow(theta, -2.0 * i / headDim);
    if (s == null) {
      return freq;
    }
    double wavelen = 2 * Math.PI / freq;
    double low = s.originalMaxPositions() / (double) s.lowFreqFactor();
    double high = s.originalMaxPositions() / (double) s.highFreqFactor();
    if (wavelen < high) {
      return freq;
    } else if (wavelen > low) {
      return freq / s.factor();
    }
    double smooth =
        (s.originalMaxPositions() / wavelen - s.lowFreqFactor())
            / (s.highFreqFactor() - s.lowFreqFactor());
    return (1 - smooth) * freq / s.factor() + smooth * freq;
  }

  static double[] reference(
      float[] x,
      int offset,
      int nHeads,
      int headDim,
      double theta,
      Layout layout,
      Llama3Scaling s,
      int pos) {
    double[] y = new double[nHeads * headDim];
    int half = headDim / 2;
    for (int h = 0; h < nHeads; h++) {
      int b = offset + h * headDim;
      for (int i = 0; i < half; i++) {
        double angle = pos * referenceFrequency(i, headDim, theta, s);
        int a0 = layout == Layout.INTERLEAVED ? 2 * i : i;
        int a1 = layout == Layout.INTERLEAVED ? 2 * i + 1 : i + half;
        double x0 = x[b + a0];
        double x1 = x[b + a1];
        y[h * headDim + a0] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
        y[h * headDim + a1] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
      }
    }
    return y;
  }

  static void assertRotated(float[] got, int offset, double[] ref, String what) {
    for (int j = 0; j < ref.length; j++) {
      assertThat((double) got[offset + j])
          .as("%s element %d", what, j)
          .isCloseTo(ref[j], within(TOL));
    }
  }

  @ParameterizedTest
  @EnumSource(Layout.class)
  void matchesFloat64ReferenceUpToPositionOneMillion(Layout layout) {
    Random r = new Random(11);
    for (Llama3Scaling scaling : new Llama3Scaling[] {null, LLAMA31}) {
      for (int headDim : new int[] {2, 6, 36, 64, 128}) {
        double theta = headDim == 128 ? 500000 : 10000;
        Rope rope = new Rope(headDim, (float) theta, layout, scaling);
        for (int pos : POSITIONS) {
          int nHeads = 3;
          float[] x = OpsTest.gaussian(r, 5 + nHeads * headDim, 1, 0);
          double[] ref = reference(x, 5, nHeads, headDim, theta, layout, scaling, pos);
          float[] y = x.clone();
          rope.apply(y, 5, nHeads, pos);
          assertRotated(y, 5, ref, layout + " d=" + headDim + " pos=" + pos + " " + scaling);
          assertThat(y[0]).isEqualTo(x[0]);
        }
      }
    }
  }

  @ParameterizedTest
  @EnumSource(Layout.class)
  void consecutivePositionsViaRecurrenceStayExactNearOneMillion(Layout layout) {
    Random r = new Random(12);
    int headDim = 128;
    Rope rope = new Rope(headDim, 500000f, layout, LLAMA31);
    // Walks 300 positions one by one (the decode pattern), crossing several re-anchors, repeating
    // each position twice (two layers), then jumps back: every path of the per-thread cache.
    for (int start : new int[] {999_700, 5, 131_000}) {
      for (int pos = start; pos < start + 300; pos++) {
        for (int layer = 0; layer < 2; layer++) {
          float[] x = OpsTest.gaussian(r, headDim * 2, 1, 0);
          double[] ref = reference(x, 0, 2, headDim, 500000, layout, LLAMA31, pos);
          rope.apply(x, 0, 2, pos);
          assertRotated(x, 0, ref, "pos=" + pos);
        }
      }
    }
  }

  @Test
  void multiTokenApplyEqualsOneCallPerToken() {
    Random r = new Random(13);
    int headDim = 64;
    int nHeads = 4;
    int stride = nHeads * headDim + 3;
    int[] positions = {7, 8, 9, 1_000_000, 3, 4, 4};
    for (Layout layout : Layout.values()) {
      Rope rope = new Rope(headDim, 10000f, layout, null);
      float[] x = OpsTest.gaussian(r, 2 + stride * positions.length, 1, 0);
      float[] expected = x.clone();
      for (int t = 0; t < positions.length; t++) {
        double[] ref =
            reference(x, 2 + t * stride, nHeads, headDim, 10000, layout, null, positions[t]);
        rope.apply(expected, 2 + t * stride, nHeads, positions[t]);
        assertRotated(expected, 2 + t * stride, ref, "token " + t);
      }
      float[] batched = x.clone();
      new Rope(headDim, 10000f, layout, null)
          .apply(batched, 2, stride, nHeads, positions, 0, positions.length);
      assertThat(batched).containsExactly(expected, within(1e-7f));
    }
  }

  @Test
  void llama31ScalingKeepsHighFrequenciesDividesLowOnesAndInterpolatesBetween() {
    int headDim = 128;
    Rope rope = new Rope(headDim, 500000f, Layout.ROTATE_HALF, LLAMA31);
    Rope plain = new Rope(headDim, 500000f, Layout.ROTATE_HALF, null);
    assertThat(rope.frequency(0)).isEqualTo(1.0);
    assertThat(rope.frequency(63)).isCloseTo(plain.frequency(63) / 8, within(1e-18));
    int interpolated = 0;
    for (int i = 0; i < headDim / 2; i++) {
      double f = plain.frequency(i);
      double wavelen = 2 * Math.PI / f;
      double g = rope.frequency(i);
      if (wavelen < 8192 / 4.0) {
        assertThat(g).isEqualTo(f);
      } else if (wavelen > 8192) {
        assertThat(g).isCloseTo(f / 8, within(1e-15 * f));
      } else {
        interpolated++;
        assertThat(g).isBetween(f / 8, f);
      }
      assertThat(g).isCloseTo(referenceFrequency(i, headDim, 500000, LLAMA31), within(1e-15 * f));
    }
    assertThat(interpolated).isPositive();
  }

  @Test
  void rejectsInvalidConfiguration() {
    assertThatThrownBy(() -> new Rope(7, 10000f, Layout.INTERLEAVED, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("headDim must be even");
    assertThatThrownBy(() -> new Rope(8, 0f, Layout.INTERLEAVED, null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("theta");
    assertThatThrownBy(() -> new Llama3Scaling(8f, 4f, 1f, 8192))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("highFreqFactor must be > lowFreqFactor");
    assertThatThrownBy(
            () -> new Rope(8, 10000f, Layout.INTERLEAVED, null).apply(new float[8], 0, 1, -1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("pos must be >= 0");
  }
}
