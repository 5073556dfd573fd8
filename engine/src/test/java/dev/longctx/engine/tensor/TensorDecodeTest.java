package dev.longctx.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every type's element decoding against the float64 reference decoder of {@link TensorReference}.
 */
class TensorDecodeTest {

  /**
   * Allowed error of one decoded element: none for F32, F16, BF16, Q8_0 and Q4_0 (a half scale
   * times a small integer is exact in binary32); for the K-quants the kernels round once (Q4_K's
   * fused d·sc·q − dmin·m, Q6_K's (d·sc)·q with a 25-bit exact product), so half an ulp.
   */
  private static double tolerance(GgmlType type, double ref) {
    return switch (type) {
      case Q4_K, Q6_K -> Math.ulp((float) ref) / 2 + Float.MIN_VALUE;
      default -> 0;
    };
  }

  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
  void getFloatAndDequantizeMatchTheLayoutDefinition(GgmlType type) {
    Random rnd = new Random(type.ordinal());
    int rows = 3;
    int cols = 2 * 256 + (type.blockSize() == 256 ? 256 : type.blockSize() == 32 ? 32 : 7);
    MemorySegment raw = TensorReference.randomRaw(type, rows, cols, rnd);
    FloatTensor t = FloatTensor.of(type, raw, rows, cols);
    assertThat(t.type()).isEqualTo(type);
    double[] ref = TensorReference.decodeAll(type, raw, rows, cols);

    for (int i = 0; i < ref.length; i++) {
      double tol = tolerance(type, ref[i]);
      assertThat((double) t.getFloat(i))
          .as("%s element %d", type, i)
          .isCloseTo(ref[i], org.assertj.core.data.Offset.offset(tol));
    }
    float[] row = new float[cols + 10];
    for (int r = 0; r < rows; r++) {
      Arrays.fill(row, Float.NaN);
      t.dequantizeRow(r, row, 5);
      for (int c = 0; c < cols; c++) {
        double e = ref[r * cols + c];
        assertThat((double) row[5 + c])
            .as("%s row %d col %d", type, r, c)
            .isCloseTo(e, org.assertj.core.data.Offset.offset(tolerance(type, e)));
      }
      assertThat(row[4]).isNaN();
      assertThat(row[5 + cols]).isNaN();
    }
    // A span in the middle of a row (what the GEMM dequantizes per column chunk).
    int bs = Math.max(type.blockSize(), 1);
    int span = type.blockSize() == 1 ? 300 : 256;
    int col = type.blockSize() == 1 ? 3 : 256;
    float[] out = new float[span];
    t.dequantize(2, col, span, out, 0);
    for (int c = 0; c < span; c++) {
      double e = ref[2 * cols + col + c];
      assertThat((double) out[c])
          .isCloseTo(e, org.assertj.core.data.Offset.offset(tolerance(type, e)));
    }
    assertThat(bs).isPositive();
  }

  @Test
  void f16DecodingCoversSubnormalsInfinitiesAndNaN() {
    // Every one of the 65536 half bit patterns, through the vectorized dequantize path.
    int n = 1 << 16;
    MemorySegment raw = MemorySegment.ofArray(new byte[2 * n]);
    for (int i = 0; i < n; i++) {
      raw.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 2L * i, (short) i);
    }
    FloatTensor t = FloatTensor.of(GgmlType.F16, raw, 1, n);
    float[] out = new float[n];
    t.dequantizeRow(0, out, 0);
    for (int i = 0; i < n; i++) {
      double ref = TensorReference.half(i);
      if (Double.isNaN(ref)) {
        assertThat(out[i]).as("bits %04x", i).isNaN();
        assertThat(Float.floatToRawIntBits(out[i]) & 0x3FF << 13).isEqualTo((i & 0x3FF) << 13);
        assertThat(t.getFloat(i)).isNaN();
      } else {
        assertThat((double) out[i]).as("bits %04x", i).isEqualTo(ref);
        assertThat(Float.floatToRawIntBits(out[i]))
            .isEqualTo(Float.floatToRawIntBits(t.getFloat(i)));
      }
    }
  }

  @Test
  void blockLayoutsMatchGgml() {
    assertThat(Q8_0Tensor.BLOCK_BYTES).isEqualTo(GgmlType.Q8_0.bytesPerBlock()).isEqualTo(34);
    assertThat(Q4_0Tensor.BLOCK_BYTES).isEqualTo(GgmlType.Q4_0.bytesPerBlock()).isEqualTo(18);
    assertThat(Q4_KTensor.BLOCK_BYTES).isEqualTo(GgmlType.Q4_K.bytesPerBlock()).isEqualTo(144);
    assertThat(Q6_KTensor.BLOCK_BYTES).isEqualTo(GgmlType.Q6_K.bytesPerBlock()).isEqualTo(210);
    assertThat(Q6_KTensor.D_OFFSET).isEqualTo(208);
    assertThat(Q4_KTensor.QS_OFFSET).isEqualTo(16);
    for (GgmlType type : TensorReference.TYPES) {
      assertThat(type.supported()).isTrue();
    }
  }

  @Test
  void wrongSizesAndUnsupportedTypesAreRejectedWithTheirName() {
    assertThatThrownBy(
            () -> FloatTensor.of(GgmlType.Q8_0, MemorySegment.ofArray(new byte[33]), 1, 32))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Q8_0");
    assertThatThrownBy(
            () -> FloatTensor.of(GgmlType.Q4_K, MemorySegment.ofArray(new byte[72]), 1, 128))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Q4_K");
    assertThatThrownBy(
            () -> FloatTensor.of(GgmlType.Q5_K, MemorySegment.ofArray(new byte[176]), 1, 256))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("Q5_K");
  }
}
