package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.FLOAT;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.LE;

import dev.longctx.engine.kernel.Lanes;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/** GGML_TYPE_F32: plain little-endian IEEE binary32 elements, 4 bytes each. */
final class F32Tensor extends FloatTensor {

  static final int BLOCK_SIZE = 1;
  static final int BLOCK_BYTES = 4;

  static {
    Vec.checkLayout(GgmlType.F32, BLOCK_SIZE, BLOCK_BYTES);
  }

  F32Tensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.F32;
  }

  @Override
  public float getFloat(long index) {
    return data.get(FLOAT, index * BLOCK_BYTES);
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment.copy(data, FLOAT, ((long) row * cols + col) * BLOCK_BYTES, out, outOffset, n);
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
          FloatVector.fromMemorySegment(F, seg, base + (long) c * BLOCK_BYTES, LE)
              .fma(FloatVector.fromArray(F, x, xOffset + c), acc);
    }
    float sum = Lanes.sum(acc);
    for (; c < cols; c++) {
      sum += seg.get(FLOAT, base + (long) c * BLOCK_BYTES) * x[xOffset + c];
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
      acc0 = FloatVector.fromMemorySegment(F, seg, o, LE).fma(xv, acc0);
      acc1 = FloatVector.fromMemorySegment(F, seg, o + rb, LE).fma(xv, acc1);
      acc2 = FloatVector.fromMemorySegment(F, seg, o + 2 * rb, LE).fma(xv, acc2);
      acc3 = FloatVector.fromMemorySegment(F, seg, o + 3 * rb, LE).fma(xv, acc3);
    }
    float s0 = Lanes.sum(acc0);
    float s1 = Lanes.sum(acc1);
    float s2 = Lanes.sum(acc2);
    float s3 = Lanes.sum(acc3);
    for (; c < cols; c++) {
      long o = base + (long) c * BLOCK_BYTES;
      float xc = x[xOffset + c];
      s0 += seg.get(FLOAT, o) * xc;
      s1 += seg.get(FLOAT, o + rb) * xc;
      s2 += seg.get(FLOAT, o + 2 * rb) * xc;
      s3 += seg.get(FLOAT, o + 3 * rb) * xc;
    }
    y[yOffset] = s0;
    y[yOffset + stride] = s1;
    y[yOffset + 2 * stride] = s2;
    y[yOffset + 3 * stride] = s3;
  }
}
