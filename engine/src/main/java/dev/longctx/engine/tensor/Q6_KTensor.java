package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;

import dev.longctx.engine.kernel.Lanes;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;

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
   * The row kernels run in two passes, as Q4_K's do: the first turns every super-block's sixteen
   * int8 scales into floats d·scale, in the order the second pass reads them; the second is one
   * flat loop over quarter pairs (k and k + 2 of a half: the low and high nibbles of the same ql
   * bytes, and bit pairs 2k and 2k + 4 of the same qh bytes). Nesting the pairs inside a loop over
   * super-blocks cost a lane reduction per super-block and kept C2 from pipelining the vector work;
   * a helper per pair would box its vectors unless inlined. Bytes are sign-extended to ints first
   * (int shifts are native; the masks drop the extension).
   */

  /** Scale order within a half: pair k reads scales 2k, 2k + 1 (low quarter), 2k + 4, 2k + 5. */
  private static final VectorShuffle<Float> PAIR_ORDER =
      VectorShuffle.fromOp(F, i -> (i & ~7) | new int[] {0, 1, 4, 5, 2, 3, 6, 7}[i & 7]);

  /**
   * Pass 1: for the {@code n / 64} quarter pairs from {@code block} on, {@code out[4p ..]} = the
   * d·scale of pair p's low quarter (elements l &lt; 16, then l ≥ 16), then of its high quarter.
   */
  private static void pairScales(MemorySegment seg, long block, int n, float[] out) {
    for (int i = 0; i < n / 16; i += 16, block += BLOCK_BYTES) {
      float d = Vec.f16(seg, block + D_OFFSET);
      for (int k = 0; k < 16; k += L) {
        // Vector API calls only (always inlined): this loop runs cold enough that C2 may leave a
        // helper out of line, and a vector it returned would be boxed.
        ((FloatVector)
                ByteVector.fromMemorySegment(Vec.B, seg, block + SCALES_OFFSET + k, Vec.LE)
                    .convertShape(VectorOperators.B2F, F, 0))
            .rearrange(PAIR_ORDER)
            .mul(d)
            .intoArray(out, i + k);
      }
    }
  }

  /** Element offset of pair {@code p}'s low quarter within the row (its high quarter is 64 on). */
  private static int pairColumn(int p) {
    return 256 * (p >>> 2) + 128 * ((p >>> 1) & 1) + 32 * (p & 1);
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    long block = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    float[] ps = Vec.rowScales(n / 16);
    pairScales(data, block, n, ps);
    dequantizePairs(data, block, n, ps, out, outOffset);
  }

  // The vector loops live in static methods of their own, apart from the virtual entry points
  // that big callers inline (see Q4_KTensor).

  private static void dequantizePairs(
      MemorySegment seg, long block, int n, float[] ps, float[] out, int outOffset) {
    for (int p = 0; p < n / 64; p++) {
      long sb = block + (long) (p >>> 2) * BLOCK_BYTES;
      long ql = sb + QL_OFFSET + 32 * (p & 3);
      long qh = sb + QH_OFFSET + 32 * ((p >>> 1) & 1);
      int shift = 2 * (p & 1);
      int o = outOffset + pairColumn(p);
      for (int l = 0; l < 32; l += L) {
        IntVector a = Vec.bytesToInts(seg, ql + l);
        IntVector c = Vec.bytesToInts(seg, qh + l).lanewise(VectorOperators.ASHR, shift);
        IntVector lo = a.and(15).or(c.and(3).lanewise(VectorOperators.LSHL, 4)).sub(32);
        IntVector hi = a.lanewise(VectorOperators.ASHR, 4).and(15).or(c.and(0x30)).sub(32);
        Vec.toFloats(lo).mul(ps[4 * p + l / 16]).intoArray(out, o + l);
        Vec.toFloats(hi).mul(ps[4 * p + 2 + l / 16]).intoArray(out, o + 64 + l);
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    long block = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    float[] ps = Vec.rowScales(cols / 16);
    pairScales(data, block, cols, ps);
    return dotPairs(data, block, cols, ps, x, xOffset);
  }

  @Override
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    float[] ps = Vec.rowScales(cols / 16);
    long rowBytes = (long) cols / BLOCK_SIZE * BLOCK_BYTES;
    long block = (long) row * rowBytes;
    for (int i = 0; i < n; i++, block += rowBytes) {
      pairScales(data, block, cols, ps);
      y[yOffset + i] = dotPairs(data, block, cols, ps, x, xOffset);
    }
  }

  private static float dotPairs(
      MemorySegment seg, long block, int cols, float[] ps, float[] x, int xOffset) {
    FloatVector lowQuarters = FloatVector.zero(F);
    FloatVector highQuarters = FloatVector.zero(F);
    for (int p = 0; p < cols / 64; p++) {
      long sb = block + (long) (p >>> 2) * BLOCK_BYTES;
      long ql = sb + QL_OFFSET + 32 * (p & 3);
      long qh = sb + QH_OFFSET + 32 * ((p >>> 1) & 1);
      int shift = 2 * (p & 1);
      int o = xOffset + pairColumn(p);
      for (int l = 0; l < 32; l += L) {
        IntVector a = Vec.bytesToInts(seg, ql + l);
        IntVector c = Vec.bytesToInts(seg, qh + l).lanewise(VectorOperators.ASHR, shift);
        IntVector lo = a.and(15).or(c.and(3).lanewise(VectorOperators.LSHL, 4)).sub(32);
        IntVector hi = a.lanewise(VectorOperators.ASHR, 4).and(15).or(c.and(0x30)).sub(32);
        lowQuarters =
            Vec.toFloats(lo)
                .mul(ps[4 * p + l / 16])
                .fma(FloatVector.fromArray(F, x, o + l), lowQuarters);
        highQuarters =
            Vec.toFloats(hi)
                .mul(ps[4 * p + 2 + l / 16])
                .fma(FloatVector.fromArray(F, x, o + 64 + l), highQuarters);
      }
    }
    return Lanes.sum(lowQuarters.add(highQuarters));
  }
}
