package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;

/**
 * GGML_TYPE_Q8_0: blocks of 32 elements in 34 bytes.
 *
 * <pre>
 * offset size
 *      0    2  d      IEEE half scale
 *      2   32  qs[32] int8; element i = d · qs[i]
 * </pre>
 */
final class Q8_0Tensor extends FloatTensor {

  static final int BLOCK_SIZE = 32;
  static final int D_OFFSET = 0;
  static final int QS_OFFSET = 2;
  static final int BLOCK_BYTES = QS_OFFSET + BLOCK_SIZE;

  static {
    Vec.checkLayout(GgmlType.Q8_0, BLOCK_SIZE, BLOCK_BYTES);
  }

  Q8_0Tensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.Q8_0;
  }

  @Override
  public float getFloat(long index) {
    long block = (index / BLOCK_SIZE) * BLOCK_BYTES;
    int i = (int) (index % BLOCK_SIZE);
    return Vec.f16(data, block + D_OFFSET) * data.get(ValueLayout.JAVA_BYTE, block + QS_OFFSET + i);
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long off = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    for (int b = 0; b < n; b += BLOCK_SIZE, off += BLOCK_BYTES) {
      FloatVector d = FloatVector.broadcast(F, Vec.f16(seg, off + D_OFFSET));
      for (int j = 0; j < BLOCK_SIZE; j += L) {
        Vec.bytesToFloats(seg, off + QS_OFFSET + j).mul(d).intoArray(out, outOffset + b + j);
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long off = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    int n = cols;
    FloatVector acc = FloatVector.zero(F);
    for (int b = 0; b < n; b += BLOCK_SIZE, off += BLOCK_BYTES) {
      // Σ_i qs[i]·x[i] over the block, then one multiply-add by the block's scale.
      FloatVector s =
          Vec.bytesToFloats(seg, off + QS_OFFSET).mul(FloatVector.fromArray(F, x, xOffset + b));
      for (int j = L; j < BLOCK_SIZE; j += L) {
        s =
            Vec.bytesToFloats(seg, off + QS_OFFSET + j)
                .fma(FloatVector.fromArray(F, x, xOffset + b + j), s);
      }
      acc = s.fma(FloatVector.broadcast(F, Vec.f16(seg, off + D_OFFSET)), acc);
    }
    return Vec.sum(acc);
  }
}
