package dev.longctx.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.offset;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Round-trip bounds of {@link Quantizer}, checked through the reference decoder. */
class TensorQuantizerTest {

  private static float[] gaussian(int n, Random rnd) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (rnd.nextGaussian() * 0.02);
    }
    return v;
  }

  private static MemorySegment encode(GgmlType type, float[] src) {
    MemorySegment dst = MemorySegment.ofArray(new byte[(int) type.byteSize(src.length)]);
    Quantizer.quantize(type, src, 0, src.length, dst);
    return dst;
  }

  @Test
  void q8_0RoundTripErrorIsAtMostHalfAStepPlusTheHalfScaleRounding() {
    Random rnd = new Random(1);
    float[] src = gaussian(32 * 200, rnd);
    MemorySegment q = encode(GgmlType.Q8_0, src);
    for (int b = 0; b < 200; b++) {
      double amax = 0;
      for (int i = 0; i < 32; i++) {
        amax = Math.max(amax, Math.abs(src[32 * b + i]));
      }
      double d = amax / 127;
      // q = round(x / d) is within d/2 of x/d; storing d as a half moves d·q by ≤ 127·|d|·2^-11.
      double bound = d / 2 + 127 * d * 0x1p-11 + 1e-12;
      double stored = TensorReference.half(TensorReference.u16(q, 34L * b));
      assertThat(stored).isCloseTo(d, offset(d * 0x1p-11));
      for (int i = 0; i < 32; i++) {
        double got = TensorReference.decode(GgmlType.Q8_0, q, 32L * b + i);
        assertThat(got).isCloseTo(src[32 * b + i], offset(bound));
      }
      // The element of largest magnitude maps to ±127.
      int maxQ = 0;
      for (int i = 0; i < 32; i++) {
        maxQ = Math.max(maxQ, Math.abs(q.get(ValueLayout.JAVA_BYTE, 34L * b + 2 + i)));
      }
      assertThat(maxQ).isEqualTo(127);
    }
  }

  @Test
  void q4_0RoundTripErrorIsAtMostOneStepAndTheExtremeIsExact() {
    Random rnd = new Random(2);
    float[] src = gaussian(32 * 200, rnd);
    MemorySegment q = encode(GgmlType.Q4_0, src);
    for (int b = 0; b < 200; b++) {
      double max = 0;
      for (int i = 0; i < 32; i++) {
        if (Math.abs(src[32 * b + i]) > Math.abs(max)) {
          max = src[32 * b + i];
        }
      }
      double d = Math.abs(max / -8);
      // Levels are d·(q − 8), q in 0..15: nearest level within d/2, except that q = 16 clamps to
      // 15 (values near −max) — one full step. Half rounding of d adds ≤ 8·d·2^-11.
      double bound = d + 8 * d * 0x1p-11 + 1e-12;
      for (int i = 0; i < 32; i++) {
        float x = src[32 * b + i];
        double got = TensorReference.decode(GgmlType.Q4_0, q, 32L * b + i);
        assertThat(got).isCloseTo(x, offset(bound));
        if (x == max) {
          assertThat(got).isCloseTo(max, offset(8 * d * 0x1p-11 + 1e-12)); // q = 0: −8·d = max
        } else if (Math.abs(x + max) > d) {
          assertThat(got).isCloseTo(x, offset(d / 2 + 8 * d * 0x1p-11 + 1e-12));
        }
      }
    }
  }

  @Test
  void floatTypesRoundToNearestEven() {
    float[] src = {1f, 1f + 0x1p-8f, 1f + 3 * 0x1p-8f, -2.5f, 65504f, 1e-7f, Float.NaN, 3.14159f};
    MemorySegment bf = encode(GgmlType.BF16, src);
    FloatTensor bft = FloatTensor.of(GgmlType.BF16, bf, 1, src.length);
    assertThat(bft.getFloat(0)).isEqualTo(1f);
    assertThat(bft.getFloat(1)).isEqualTo(1f); // tie → even mantissa
    assertThat(bft.getFloat(2)).isEqualTo(1f + 4 * 0x1p-8f); // tie → even, rounds up
    assertThat(bft.getFloat(3)).isEqualTo(-2.5f);
    assertThat(bft.getFloat(6)).isNaN();
    assertThat(bft.getFloat(7)).isCloseTo(3.14159f, offset(3.14159f * 0x1p-8f));

    MemorySegment h = encode(GgmlType.F16, src);
    FloatTensor ht = FloatTensor.of(GgmlType.F16, h, 1, src.length);
    for (int i = 0; i < src.length; i++) {
      assertThat(Float.floatToRawIntBits(ht.getFloat(i)))
          .isEqualTo(Float.floatToRawIntBits(Float.float16ToFloat(Float.floatToFloat16(src[i]))));
    }
    MemorySegment f = encode(GgmlType.F32, src);
    for (int i = 0; i < src.length; i++) {
      assertThat(
              Float.floatToRawIntBits(FloatTensor.of(GgmlType.F32, f, 1, src.length).getFloat(i)))
          .isEqualTo(Float.floatToRawIntBits(src[i]));
    }
  }

  @Test
  void quantizedTensorMatmulStaysCloseToTheFloatProduct() {
    // End to end: quantize a Gaussian matrix, multiply; the error is the quantization error.
    Random rnd = new Random(3);
    int rows = 48;
    int cols = 512;
    float[] w = gaussian(rows * cols, rnd);
    float[] x = TensorReference.randomActivations(cols, rnd);
    float[] exact = new float[rows];
    FloatTensor.ofFloats(w, rows, cols).matmul(x, exact, 1);
    for (GgmlType type :
        new GgmlType[] {
          GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K
        }) {
      float[] y = new float[rows];
      Quantizer.quantize(type, w, rows, cols).matmul(x, y, 1);
      double err = 0;
      double norm = 0;
      for (int r = 0; r < rows; r++) {
        err += (y[r] - exact[r]) * (y[r] - exact[r]);
        norm += exact[r] * exact[r];
      }
      double rel = Math.sqrt(err / norm);
      double limit =
          switch (type) {
            case F16 -> 1e-3;
            case BF16 -> 1e-2;
            case Q8_0 -> 2e-2;
            case Q6_K -> 4e-2; // weight error 1.9% RMS (QuantizerTest)
            case Q4_K -> 0.15; // weight error 7.8% RMS
            default -> 0.2;
          };
      assertThat(rel).as("%s relative error", type).isLessThan(limit);
    }
  }
}
