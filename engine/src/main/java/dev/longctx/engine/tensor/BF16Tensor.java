package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.SHORT;

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
    int n = cols;
    int vn = n & -(2 * L);
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += 2 * L) {
      long off = base + (long) c * BLOCK_BYTES;
      acc0 = Vec.bf16ToFloats(seg, off).fma(FloatVector.fromArray(F, x, xOffset + c), acc0);
      acc1 =
          Vec.bf16ToFloats(seg, off + 2L * L)
              .fma(FloatVector.fromArray(F, x, xOffset + c + L), acc1);
    }
    float sum = Vec.sum(acc0.add(acc1));
    for (; c < n; c++) {
      sum += bf16(seg.get(SHORT, base + (long) c * BLOCK_BYTES)) * x[xOffset + c];
    }
    return sum;
  }
}
