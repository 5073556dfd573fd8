package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;
import static dev.longctx.engine.tensor.Vec.SHORT;

import dev.longctx.engine.kernel.Lanes;
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
    int vn = cols & -L;
    FloatVector acc = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += L) {
      acc =
          Vec.f16ToFloats(seg, base + (long) c * BLOCK_BYTES)
              .fma(FloatVector.fromArray(F, x, xOffset + c), acc);
    }
    float sum = Lanes.sum(acc);
    for (; c < cols; c++) {
      sum += Float.float16ToFloat(seg.get(SHORT, base + (long) c * BLOCK_BYTES)) * x[xOffset + c];
    }
    return sum;
  }

  /**
   * Two rows at a time, one from each half of the range: two sequential weight streams in different
   * pages, shared activation loads; per row the operation order of {@link #dot}. (Four rows pushes
   * C2 past its inlining budget with the half decoding, and the vectors get boxed.)
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
    long rb = (long) stride * cols * BLOCK_BYTES;
    long base = (long) row * cols * BLOCK_BYTES;
    int vn = cols & -L;
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    int c = 0;
    for (; c < vn; c += L) {
      long o = base + (long) c * BLOCK_BYTES;
      FloatVector xv = FloatVector.fromArray(F, x, xOffset + c);
      acc0 = Vec.f16ToFloats(seg, o).fma(xv, acc0);
      acc1 = Vec.f16ToFloats(seg, o + rb).fma(xv, acc1);
    }
    acc0.intoArray(lanes, 0);
    acc1.intoArray(lanes, L);
    float s0 = Lanes.sum(lanes, 0, L);
    float s1 = Lanes.sum(lanes, L, L);
    for (; c < cols; c++) {
      long o = base + (long) c * BLOCK_BYTES;
      float xc = x[xOffset + c];
      s0 += Float.float16ToFloat(seg.get(SHORT, o)) * xc;
      s1 += Float.float16ToFloat(seg.get(SHORT, o + rb)) * xc;
    }
    y[yOffset] = s0;
    y[yOffset + stride] = s1;
  }
}
