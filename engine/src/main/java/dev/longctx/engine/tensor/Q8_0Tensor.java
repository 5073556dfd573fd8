package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;

import dev.longctx.engine.kernel.Lanes;
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
    return Lanes.sum(acc);
  }

  /**
   * Four rows at a time, one from each quarter of the range: four sequential weight streams in
   * different pages (rows a few KB apart would share a page and defeat the stream prefetcher), and
   * one activation load per four rows.
   */
  @Override
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    int q = n / 4;
    float[] lanes = Vec.laneScratch(); // lane sums without boxing
    for (int i = 0; i < q; i++) {
      dot4(row + i, q, x, xOffset, y, yOffset + i, lanes);
    }
    for (int i = 4 * q; i < n; i++) {
      y[yOffset + i] = dot(row + i, x, xOffset);
    }
  }

  /** Rows row + k·stride, k < 4; per row the operation order of {@link #dot} (bit-identical). */
  private void dot4(
      int row, int stride, float[] x, int xOffset, float[] y, int yOffset, float[] lanes) {
    MemorySegment seg = data;
    long rb = (long) stride * (cols / BLOCK_SIZE) * BLOCK_BYTES;
    long o = (long) row * (cols / BLOCK_SIZE) * BLOCK_BYTES;
    FloatVector acc0 = FloatVector.zero(F);
    FloatVector acc1 = FloatVector.zero(F);
    FloatVector acc2 = FloatVector.zero(F);
    FloatVector acc3 = FloatVector.zero(F);
    for (int b = 0; b < cols; b += BLOCK_SIZE, o += BLOCK_BYTES) {
      FloatVector xv = FloatVector.fromArray(F, x, xOffset + b);
      long q = o + QS_OFFSET;
      FloatVector s0 = Vec.bytesToFloats(seg, q).mul(xv);
      FloatVector s1 = Vec.bytesToFloats(seg, q + rb).mul(xv);
      FloatVector s2 = Vec.bytesToFloats(seg, q + 2 * rb).mul(xv);
      FloatVector s3 = Vec.bytesToFloats(seg, q + 3 * rb).mul(xv);
      for (int j = L; j < BLOCK_SIZE; j += L) {
        xv = FloatVector.fromArray(F, x, xOffset + b + j);
        s0 = Vec.bytesToFloats(seg, q + j).fma(xv, s0);
        s1 = Vec.bytesToFloats(seg, q + rb + j).fma(xv, s1);
        s2 = Vec.bytesToFloats(seg, q + 2 * rb + j).fma(xv, s2);
        s3 = Vec.bytesToFloats(seg, q + 3 * rb + j).fma(xv, s3);
      }
      acc0 = s0.fma(FloatVector.broadcast(F, Vec.f16(seg, o + D_OFFSET)), acc0);
      acc1 = s1.fma(FloatVector.broadcast(F, Vec.f16(seg, o + rb + D_OFFSET)), acc1);
      acc2 = s2.fma(FloatVector.broadcast(F, Vec.f16(seg, o + 2 * rb + D_OFFSET)), acc2);
      acc3 = s3.fma(FloatVector.broadcast(F, Vec.f16(seg, o + 3 * rb + D_OFFSET)), acc3);
    }
    acc0.intoArray(lanes, 0);
    acc1.intoArray(lanes, L);
    acc2.intoArray(lanes, 2 * L);
    acc3.intoArray(lanes, 3 * L);
    y[yOffset] = Lanes.sum(lanes, 0, L);
    y[yOffset + stride] = Lanes.sum(lanes, L, L);
    y[yOffset + 2 * stride] = Lanes.sum(lanes, 2 * L, L);
    y[yOffset + 3 * stride] = Lanes.sum(lanes, 3 * L, L);
  }
}
