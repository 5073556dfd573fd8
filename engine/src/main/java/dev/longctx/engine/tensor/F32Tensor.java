package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.FLOAT;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.LE;

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
    int n = cols;
    int vn = n & -(2 * L);
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += 2 * L) {
      long off = base + (long) c * BLOCK_BYTES;
      acc0 =
          FloatVector.fromMemorySegment(F, seg, off, LE)
              .fma(FloatVector.fromArray(F, x, xOffset + c), acc0);
      acc1 =
          FloatVector.fromMemorySegment(F, seg, off + 4L * L, LE)
              .fma(FloatVector.fromArray(F, x, xOffset + c + L), acc1);
    }
    float sum = Vec.sum(acc0.add(acc1));
    for (; c < n; c++) {
      sum += seg.get(FLOAT, base + (long) c * BLOCK_BYTES) * x[xOffset + c];
    }
    return sum;
  }
}
