package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.SHORT;

import dev.longctx.engine.kernel.Lanes;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * GGML_TYPE_BF16: little-endian bfloat16 elements (the upper 16 bits of a binary32), 2 bytes each.
 */
final class BF16Tensor extends FloatTensor {

  static final int BLOCK_SIZE = 1;
  static final int BLOCK_BYTES = 2;

  static {
    Vec.checkLayout(GgmlType.BF16, BLOCK_SIZE, BLOCK_BYTES);
  }

  BF16Tensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.BF16;
  }

  /** The binary32 whose upper half is {@code bits}. */
  static float bf16(short bits) {
    return Float.intBitsToFloat(bits << 16);
  }

  @Override
  public float getFloat(long index) {
    return bf16(data.get(SHORT, index * BLOCK_BYTES));
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long base = ((long) row * cols + col) * BLOCK_BYTES;
    int vn = n & -L;
    int c = 0;
    for (; c < vn; c += L) {
      Vec.bf16ToFloats(seg, base + (long) c * BLOCK_BYTES).intoArray(out, outOffset + c);
    }
    for (; c < n; c++) {
      out[outOffset + c] = bf16(seg.get(SHORT, base + (long) c * BLOCK_BYTES));
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long base = (long) row * cols * BLOCK_BYTES;
    int vn = cols & -L;
    FloatVector acc = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += L) {
      acc =
          Vec.bf16ToFloats(seg, base + (long) c * BLOCK_BYTES)
              .fma(FloatVector.fromArray(F, x, xOffset + c), acc);
    }
    float sum = Lanes.sum(acc);
    for (; c < cols; c++) {
      sum += bf16(seg.get(SHORT, base + (long) c * BLOCK_BYTES)) * x[xOffset + c];
    }
    return sum;
  }

  /**
   * Four rows at a time, one from each quarter of the range: four sequential weight streams in
   * different pages and one activation load per four rows. Per row the operation order of {@link
   * #dot}, so the results are bit-identical.
   */
  @Override
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    int q = n / 4;
    for (int i = 0; i < q; i++) {
      dot4(row + i, q, x, xOffset, y, yOffset + i);
    }
    for (int i = 4 * q; i < n; i++) {
      y[yOffset + i] = dot(row + i, x, xOffset);
    }
  }

  private void dot4(int row, int stride, float[] x, int xOffset, float[] y, int yOffset) {
    MemorySegment seg = data;
    long rb = (long) stride * cols * BLOCK_BYTES;
    long base = (long) row * cols * BLOCK_BYTES;
    int vn = cols & -L;
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    FloatVector acc2 = FloatVector.zero(F);
    FloatVector acc3 = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += L) {
      long o = base + (long) c * BLOCK_BYTES;
      FloatVector xv = FloatVector.fromArray(F, x, xOffset + c);
      acc0 = Vec.bf16ToFloats(seg, o).fma(xv, acc0);
      acc1 = Vec.bf16ToFloats(seg, o + rb).fma(xv, acc1);
      acc2 = Vec.bf16ToFloats(seg, o + 2 * rb).fma(xv, acc2);
      acc3 = Vec.bf16ToFloats(seg, o + 3 * rb).fma(xv, acc3);
    }
    float s0 = Lanes.sum(acc0);
    float s1 = Lanes.sum(acc1);
    float s2 = Lanes.sum(acc2);
    float s3 = Lanes.sum(acc3);
    for (; c < cols; c++) {
      long o = base + (long) c * BLOCK_BYTES;
      float xc = x[xOffset + c];
      s0 += bf16(seg.get(SHORT, o)) * xc;
      s1 += bf16(seg.get(SHORT, o + rb)) * xc;
      s2 += bf16(seg.get(SHORT, o + 2 * rb)) * xc;
      s3 += bf16(seg.get(SHORT, o + 3 * rb)) * xc;
    }
    y[yOffset] = s0;
    y[yOffset + stride] = s1;
    y[yOffset + 2 * stride] = s2;
    y[yOffset + 3 * stride] = s3;
  }
}
