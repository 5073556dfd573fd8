package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;

import dev.longctx.engine.kernel.Lanes;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * GGML_TYPE_Q4_0: blocks of 32 elements in 18 bytes.
 *
 * <pre>
 * offset size
 *      0    2  d      IEEE half scale
 *      2   16  qs[16] element i (i &lt; 16) is the low nibble of qs[i], element i + 16 its high
 *                     nibble; value = d · (q − 8)
 * </pre>
 */
final class Q4_0Tensor extends FloatTensor {

  static final int BLOCK_SIZE = 32;
  static final int D_OFFSET = 0;
  static final int QS_OFFSET = 2;
  static final int BLOCK_BYTES = QS_OFFSET + BLOCK_SIZE / 2;

  static {
    Vec.checkLayout(GgmlType.Q4_0, BLOCK_SIZE, BLOCK_BYTES);
  }

  Q4_0Tensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.Q4_0;
  }

  @Override
  public float getFloat(long index) {
    long block = (index / BLOCK_SIZE) * BLOCK_BYTES;
    int i = (int) (index % BLOCK_SIZE);
    int packed = data.get(ValueLayout.JAVA_BYTE, block + QS_OFFSET + (i & 15)) & 0xFF;
    int q = i < 16 ? packed & 0xF : packed >>> 4;
    return Vec.f16(data, block + D_OFFSET) * (q - 8);
  }

  /** Low nibbles of {@code L} packed bytes (sign-extended to ints), re-centred: q − 8. */
  private static FloatVector low(IntVector packed) {
    return Vec.toFloats(packed.and(0x0F).sub(8));
  }

  /** High nibbles of {@code L} packed bytes (sign-extended to ints), re-centred: q − 8. */
  private static FloatVector high(IntVector packed) {
    return Vec.toFloats(packed.lanewise(VectorOperators.ASHR, 4).and(0x0F).sub(8));
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long off = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    for (int b = 0; b < n; b += BLOCK_SIZE, off += BLOCK_BYTES) {
      FloatVector d = FloatVector.broadcast(F, Vec.f16(seg, off + D_OFFSET));
      int o = outOffset + b;
      for (int j = 0; j < BLOCK_SIZE / 2; j += L) {
        IntVector packed = Vec.bytesToInts(seg, off + QS_OFFSET + j);
        low(packed).mul(d).intoArray(out, o + j);
        high(packed).mul(d).intoArray(out, o + 16 + j);
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long off = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    FloatVector acc = FloatVector.zero(F);
    for (int b = 0; b < cols; b += BLOCK_SIZE, off += BLOCK_BYTES) {
      int o = xOffset + b;
      FloatVector s = FloatVector.zero(F);
      for (int j = 0; j < BLOCK_SIZE / 2; j += L) {
        IntVector packed = Vec.bytesToInts(seg, off + QS_OFFSET + j);
        s = low(packed).fma(FloatVector.fromArray(F, x, o + j), s);
        s = high(packed).fma(FloatVector.fromArray(F, x, o + 16 + j), s);
      }
      acc = s.fma(FloatVector.broadcast(F, Vec.f16(seg, off + D_OFFSET)), acc);
    }
    return Lanes.sum(acc);
  }

  /**
   * Two rows at a time, one from each half of the range: two sequential weight streams in different
   * pages, shared activation loads; per row the operation order of {@link #dot}. (Four rows, as
   * Q8_0 does, pushes C2 past its inlining budget here, and the vectors get boxed.)
   */
  @Override
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    int h = n / 2;
    float[] lanes = Vec.laneScratch(); // lane sums without boxing
    for (int i = 0; i < h; i++) {
      dot2(row + i, h, x, xOffset, y, yOffset + i, lanes);
    }
    for (int i = 2 * h; i < n; i++) {
      y[yOffset + i] = dot(row + i, x, xOffset);
    }
  }

  private void dot2(
      int row, int stride, float[] x, int xOffset, float[] y, int yOffset, float[] lanes) {
    MemorySegment seg = data;
    long rb = (long) stride * (cols / BLOCK_SIZE) * BLOCK_BYTES;
    long off = (long) row * (cols / BLOCK_SIZE) * BLOCK_BYTES;
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    for (int b = 0; b < cols; b += BLOCK_SIZE, off += BLOCK_BYTES) {
      int o = xOffset + b;
      FloatVector s0 = FloatVector.zero(F);
      FloatVector s1 = FloatVector.zero(F);
      long q = off + QS_OFFSET;
      for (int j = 0; j < BLOCK_SIZE / 2; j += L) {
        FloatVector xl = FloatVector.fromArray(F, x, o + j);
        FloatVector xh = FloatVector.fromArray(F, x, o + 16 + j);
        IntVector p0 = Vec.bytesToInts(seg, q + j);
        IntVector p1 = Vec.bytesToInts(seg, q + rb + j);
        s0 = Vec.toFloats(p0.and(15).sub(8)).fma(xl, s0);
        s1 = Vec.toFloats(p1.and(15).sub(8)).fma(xl, s1);
        s0 = Vec.toFloats(p0.lanewise(VectorOperators.ASHR, 4).and(15).sub(8)).fma(xh, s0);
        s1 = Vec.toFloats(p1.lanewise(VectorOperators.ASHR, 4).and(15).sub(8)).fma(xh, s1);
      }
      acc0 = s0.fma(FloatVector.broadcast(F, Vec.f16(seg, off + D_OFFSET)), acc0);
      acc1 = s1.fma(FloatVector.broadcast(F, Vec.f16(seg, off + rb + D_OFFSET)), acc1);
    }
    acc0.intoArray(lanes, 0);
    acc1.intoArray(lanes, L);
    y[yOffset] = Lanes.sum(lanes, 0, L);
    y[yOffset + stride] = Lanes.sum(lanes, L, L);
  }
}
