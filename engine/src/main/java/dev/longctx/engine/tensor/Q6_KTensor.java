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
 * GGML_TYPE_Q6_K: super-blocks of 256 elements in 210 bytes, sixteen sub-blocks of 16 elements each
 * with an int8 scale; 6-bit quants split into a low nibble (ql) and two high bits (qh).
 *
 * <pre>
 * offset size
 *      0  128  ql[128]     low 4 bits
 *    128   64  qh[64]      high 2 bits
 *    192   16  scales[16]  int8 sub-block scales
 *    208    2  d           IEEE half super-block scale
 * </pre>
 *
 * The block is two halves h = 0, 1 of 128 elements using ql[64h ..], qh[32h ..], scales[8h ..]. For
 * l &lt; 32, with a = ql[64h + l], b = ql[64h + 32 + l], c = qh[32h + l] and s = l / 16:
 *
 * <pre>
 * element 128h + l      q = (a &amp; 15) | ((c &gt;&gt; 0) &amp; 3) &lt;&lt; 4   scale scales[8h + s]
 * element 128h + l + 32 q = (b &amp; 15) | ((c &gt;&gt; 2) &amp; 3) &lt;&lt; 4   scale scales[8h + s + 2]
 * element 128h + l + 64 q = (a &gt;&gt; 4)  | ((c &gt;&gt; 4) &amp; 3) &lt;&lt; 4   scale scales[8h + s + 4]
 * element 128h + l + 96 q = (b &gt;&gt; 4)  | ((c &gt;&gt; 6) &amp; 3) &lt;&lt; 4   scale scales[8h + s + 6]
 * </pre>
 *
 * Element value: {@code d · scale · (q − 32)}.
 */
final class Q6_KTensor extends FloatTensor {

  static final int BLOCK_SIZE = 256;
  static final int QL_OFFSET = 0;
  static final int QH_OFFSET = QL_OFFSET + BLOCK_SIZE / 2;
  static final int SCALES_OFFSET = QH_OFFSET + BLOCK_SIZE / 4;
  static final int D_OFFSET = SCALES_OFFSET + BLOCK_SIZE / 16;
  static final int BLOCK_BYTES = D_OFFSET + 2;

  static {
    Vec.checkLayout(GgmlType.Q6_K, BLOCK_SIZE, BLOCK_BYTES);
  }

  Q6_KTensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.Q6_K;
  }

  private int u8(long offset) {
    return data.get(ValueLayout.JAVA_BYTE, offset) & 0xFF;
  }

  @Override
  public float getFloat(long index) {
    long block = (index / BLOCK_SIZE) * BLOCK_BYTES;
    int i = (int) (index % BLOCK_SIZE);
    int h = i / 128;
    int k = (i % 128) / 32; // which of the four quarter rows
    int l = i % 32;
    int ql = u8(block + QL_OFFSET + 64 * h + 32 * (k & 1) + l);
    int qh = u8(block + QH_OFFSET + 32 * h + l);
    int q = ((k < 2 ? ql & 15 : ql >>> 4) | ((qh >>> (2 * k)) & 3) << 4) - 32;
    int scale = data.get(ValueLayout.JAVA_BYTE, block + SCALES_OFFSET + 8 * h + l / 16 + 2 * k);
    return Vec.f16(data, block + D_OFFSET) * scale * q;
  }

  /*
   * The kernels walk a pair of quarters (k and k + 2: the low and high nibbles of the same ql
   * bytes, and bit pairs 2k and 2k + 4 of the same qh bytes) per inner loop rather than unpacking
   * all four quarters in one loop body: C2 stops inlining past ~18000 IR nodes, and a Vector API
   * call left out-of-line boxes its vectors (that cost 10x here). Bytes are sign-extended to ints
   * first (int shifts are native; the masks drop the extension).
   */

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long block = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    for (int b = 0; b < n; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      float d = Vec.f16(seg, block + D_OFFSET);
      for (int pair = 0; pair < 4; pair++) {
        int h = pair >> 1;
        int k = pair & 1;
        long ql = block + QL_OFFSET + 64 * h + 32 * k;
        long qh = block + QH_OFFSET + 32 * h;
        long sc = block + SCALES_OFFSET + 8 * h + 2 * k;
        int shift = 2 * k;
        int o = outOffset + b + 128 * h + 32 * k;
        for (int l = 0; l < 32; l += L) {
          IntVector a = Vec.bytesToInts(seg, ql + l);
          IntVector c = Vec.bytesToInts(seg, qh + l).lanewise(VectorOperators.ASHR, shift);
          IntVector lo = a.and(15).or(c.and(3).lanewise(VectorOperators.LSHL, 4)).sub(32);
          IntVector hi = a.lanewise(VectorOperators.ASHR, 4).and(15).or(c.and(0x30)).sub(32);
          Vec.toFloats(lo)
              .mul(d * seg.get(ValueLayout.JAVA_BYTE, sc + l / 16))
              .intoArray(out, o + l);
          Vec.toFloats(hi)
              .mul(d * seg.get(ValueLayout.JAVA_BYTE, sc + 4 + l / 16))
              .intoArray(out, o + 64 + l);
        }
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long block = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    float sum = 0;
    for (int b = 0; b < cols; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      FloatVector acc0 = FloatVector.zero(F);
      FloatVector acc1 = FloatVector.zero(F);
      // The sixteen int8 scales in two loads (a scalar segment read per vector cost more than the
      // vector work at 256 bits); scale i is byte i % 8 of word i / 8.
      long scalesLo = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, block + SCALES_OFFSET);
      long scalesHi = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, block + SCALES_OFFSET + 8);
      // Quarter pairs (k, k + 2) share their ql and qh bytes: low and high nibble of ql.
      for (int pair = 0; pair < 4; pair++) {
        int h = pair >> 1;
        int k = pair & 1;
        long ql = block + QL_OFFSET + 64 * h + 32 * k;
        long qh = block + QH_OFFSET + 32 * h;
        long scales = (h == 0 ? scalesLo : scalesHi) >> (16 * k);
        int shift = 2 * k;
        int o = xOffset + b + 128 * h + 32 * k;
        for (int l = 0; l < 32; l += L) {
          IntVector a = Vec.bytesToInts(seg, ql + l);
          IntVector c = Vec.bytesToInts(seg, qh + l).lanewise(VectorOperators.ASHR, shift);
          IntVector lo = a.and(15).or(c.and(3).lanewise(VectorOperators.LSHL, 4)).sub(32);
          IntVector hi = a.lanewise(VectorOperators.ASHR, 4).and(15).or(c.and(0x30)).sub(32);
          int s = 8 * (l / 16);
          acc0 =
              Vec.toFloats(lo)
                  .mul((float) (byte) (scales >> s))
                  .fma(FloatVector.fromArray(F, x, o + l), acc0);
          acc1 =
              Vec.toFloats(hi)
                  .mul((float) (byte) (scales >> (s + 32)))
                  .fma(FloatVector.fromArray(F, x, o + 64 + l), acc1);
        }
      }
      sum += Vec.f16(seg, block + D_OFFSET) * Lanes.sum(acc0.add(acc1));
    }
    return sum;
  }
}
