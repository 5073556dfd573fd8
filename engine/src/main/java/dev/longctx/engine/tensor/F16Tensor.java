package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.SHORT;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/** GGML_TYPE_F16: little-endian IEEE binary16 elements, 2 bytes each. */
final class F16Tensor extends FloatTensor {

  static final int BLOCK_SIZE = 1;
  static final int BLOCK_BYTES = 2;

  static {
    Vec.checkLayout(GgmlType.F16, BLOCK_SIZE, BLOCK_BYTES);
  }

  F16Tensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.F16;
  }

  @Override
  public float getFloat(long index) {
    return Float.float16ToFloat(data.get(SHORT, index * BLOCK_BYTES));
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long base = ((long) row * cols + col) * BLOCK_BYTES;
    int vn = n & -L;
    int c = 0;
    for (; c < vn; c += L) {
      Vec.f16ToFloats(seg, base + (long) c * BLOCK_BYTES).intoArray(out, outOffset + c);
    }
    for (; c < n; c++) {
      out[outOffset + c] = Float.float16ToFloat(seg.get(SHORT, base + (long) c * BLOCK_BYTES));
    }
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
      acc0 = Vec.f16ToFloats(seg, off).fma(FloatVector.fromArray(F, x, xOffset + c), acc0);
      acc1 =
          Vec.f16ToFloats(seg, off + 2L * L)
              .fma(FloatVector.fromArray(F, x, xOffset + c + L), acc1);
    }
    float sum = Vec.sum(acc0.add(acc1));
    for (; c < n; c++) {
      sum += Float.float16ToFloat(seg.get(SHORT, base + (long) c * BLOCK_BYTES)) * x[xOffset + c];
    }
    return sum;
  }
}
