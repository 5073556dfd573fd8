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
 * GGML_TYPE_Q4_K: super-blocks of 256 elements in 144 bytes, eight sub-blocks of 32 elements each
 * with a 6-bit scale and a 6-bit min.
 *
 * <pre>
 * offset size
 *      0    2  d          IEEE half: super-block scale of the sub-block scales
 *      2    2  dmin       IEEE half: super-block scale of the sub-block mins
 *      4   12  scales[12] 6-bit (sc, m) for sub-blocks j = 0..7:
 *                           j &lt; 4: sc = scales[j] &amp; 63,  m = scales[j + 4] &amp; 63
 *                           j ≥ 4: sc = (scales[j + 4] &amp; 15) | (scales[j - 4] &gt;&gt; 6) &lt;&lt; 4
 *                                  m  = (scales[j + 4] &gt;&gt; 4) | (scales[j] &gt;&gt; 6) &lt;&lt; 4
 *     16  128  qs[128]    four groups of 32 bytes; in group g, byte l holds element
 *                         64g + l (sub-block 2g) in its low nibble and 64g + 32 + l
 *                         (sub-block 2g + 1) in its high nibble
 * </pre>
 *
 * Element value: {@code d · sc_j · q − dmin · m_j}.
 */
final class Q4_KTensor extends FloatTensor {

  static final int BLOCK_SIZE = 256;
  static final int D_OFFSET = 0;
  static final int DMIN_OFFSET = 2;
  static final int SCALES_OFFSET = 4;
  static final int SCALES_BYTES = 12;
  static final int QS_OFFSET = SCALES_OFFSET + SCALES_BYTES;
  static final int BLOCK_BYTES = QS_OFFSET + BLOCK_SIZE / 2;

  static {
    Vec.checkLayout(GgmlType.Q4_K, BLOCK_SIZE, BLOCK_BYTES);
  }

  Q4_KTensor(MemorySegment data, int rows, int cols) {
    super(data, rows, cols);
  }

  @Override
  public GgmlType type() {
    return GgmlType.Q4_K;
  }

  private static int scaleByte(MemorySegment seg, long block, int i) {
    return seg.get(ValueLayout.JAVA_BYTE, block + SCALES_OFFSET + i) & 0xFF;
  }

  /** The 6-bit scale of sub-block {@code j}. */
  static int scale(MemorySegment seg, long block, int j) {
    return j < 4
        ? scaleByte(seg, block, j) & 63
        : (scaleByte(seg, block, j + 4) & 15) | (scaleByte(seg, block, j - 4) >>> 6) << 4;
  }

  /** The 6-bit min of sub-block {@code j}. */
  static int min(MemorySegment seg, long block, int j) {
    return j < 4
        ? scaleByte(seg, block, j + 4) & 63
        : (scaleByte(seg, block, j + 4) >>> 4) | (scaleByte(seg, block, j) >>> 6) << 4;
  }

  @Override
  public float getFloat(long index) {
    long block = (index / BLOCK_SIZE) * BLOCK_BYTES;
    int i = (int) (index % BLOCK_SIZE);
    int j = i / 32;
    int packed = data.get(ValueLayout.JAVA_BYTE, block + QS_OFFSET + (i / 64) * 32 + i % 32) & 0xFF;
    int q = (j & 1) == 0 ? packed & 0xF : packed >>> 4;
    float d = Vec.f16(data, block + D_OFFSET);
    float dmin = Vec.f16(data, block + DMIN_OFFSET);
    return d * scale(data, block, j) * q - dmin * min(data, block, j);
  }

  /*
   * The row kernels run in two passes. The first unpacks every super-block's 6-bit scales and mins
   * into floats (scalar SWAR work, about a third of the in-cache time); the second is one flat loop
   * over 64-element groups that reads them as plain floats. A loop over super-blocks with the groups and their
   * vectors nested inside ran at a third of the speed (C2 neither unrolled the group loop nor kept
   * its scale extraction out of the vector work), and a vector crossing a call that is not inlined
   * is boxed, so the group body cannot be a helper either.
   */

  /**
   * Pass 1: for the {@code n / 64} groups from {@code block} on, {@code out[at + 4g ..]} = d·sc,
   * −dmin·m of the group's first sub-block, then of its second; an element's value is {@code fma(q,
   * out[at + 4g], out[at + 4g + 1])} (low nibbles) or {@code fma(q, out[at + 4g + 2], out[at + 4g +
   * 3])} (high).
   */
  private static void groupScales(MemorySegment seg, long block, int n, float[] out, int at) {
    for (int i = at; i < at + n / 16; i += 16, block += BLOCK_BYTES) {
      long lo = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, block + SCALES_OFFSET);
      int hi = seg.get(ValueLayout.JAVA_INT_UNALIGNED, block + SCALES_OFFSET + 8);
      float d = Vec.f16(seg, block + D_OFFSET);
      float negMin = -Vec.f16(seg, block + DMIN_OFFSET);
      // Scales and mins four at a time in 32-bit words (SWAR), byte j = sub-block j (or j + 4).
      // Written out in full: a helper looping over a word's four bytes made the whole dot 10-30 %
      // slower (C2 kept its variable shifts).
      int b03 = (int) lo;
      int b47 = (int) (lo >>> 32);
      int sc03 = b03 & 0x3F3F3F3F;
      int m03 = b47 & 0x3F3F3F3F;
      int sc47 = (hi & 0x0F0F0F0F) | ((b03 >>> 6) & 0x03030303) << 4;
      int m47 = ((hi >>> 4) & 0x0F0F0F0F) | ((b47 >>> 6) & 0x03030303) << 4;
      out[i] = d * (sc03 & 0xFF);
      out[i + 1] = negMin * (m03 & 0xFF);
      out[i + 2] = d * ((sc03 >>> 8) & 0xFF);
      out[i + 3] = negMin * ((m03 >>> 8) & 0xFF);
      out[i + 4] = d * ((sc03 >>> 16) & 0xFF);
      out[i + 5] = negMin * ((m03 >>> 16) & 0xFF);
      out[i + 6] = d * (sc03 >>> 24);
      out[i + 7] = negMin * (m03 >>> 24);
      out[i + 8] = d * (sc47 & 0xFF);
      out[i + 9] = negMin * (m47 & 0xFF);
      out[i + 10] = d * ((sc47 >>> 8) & 0xFF);
      out[i + 11] = negMin * ((m47 >>> 8) & 0xFF);
      out[i + 12] = d * ((sc47 >>> 16) & 0xFF);
      out[i + 13] = negMin * ((m47 >>> 16) & 0xFF);
      out[i + 14] = d * (sc47 >>> 24);
      out[i + 15] = negMin * (m47 >>> 24);
    }
  }

  /** Byte offset of group {@code g}'s 32 packed bytes, counted from a super-block's start. */
  private static long groupBytes(int g) {
    return (long) (g >>> 2) * BLOCK_BYTES + QS_OFFSET + 32 * (g & 3);
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    long block = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    float[] gs = Vec.rowScales(n / 16);
    groupScales(data, block, n, gs, 0);
    dequantizeGroups(data, block, n, gs, out, outOffset);
  }

  /*
   * The vector loops live in static methods of their own, apart from the virtual entry points:
   * those get inlined into big callers (the GEMM's panel fill, the decode loop), where C2 can run
   * out of inlining budget, leave a Vector API helper out of line and box every vector it returns.
   */

  private static void dequantizeGroups(
      MemorySegment seg, long block, int n, float[] gs, float[] out, int outOffset) {
    for (int g = 0; g < n / 64; g++) {
      long qs = block + groupBytes(g);
      int o = outOffset + 64 * g;
      FloatVector s1 = FloatVector.broadcast(F, gs[4 * g]);
      FloatVector m1 = FloatVector.broadcast(F, gs[4 * g + 1]);
      FloatVector s2 = FloatVector.broadcast(F, gs[4 * g + 2]);
      FloatVector m2 = FloatVector.broadcast(F, gs[4 * g + 3]);
      for (int l = 0; l < 32; l += L) {
        IntVector packed = Vec.bytesToInts(seg, qs + l);
        Vec.toFloats(packed.and(0x0F)).fma(s1, m1).intoArray(out, o + l);
        Vec.toFloats(packed.lanewise(VectorOperators.ASHR, 4).and(0x0F))
            .fma(s2, m2)
            .intoArray(out, o + 32 + l);
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    long block = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    float[] gs = Vec.rowScales(cols / 16);
    groupScales(data, block, cols, gs, 0);
    return dotGroups(data, block, cols, gs, x, xOffset);
  }

  /**
   * Two rows at a time, one from each half of the range (as Q4_0 does): two sequential weight
   * streams in flight and shared activation loads; per row the operation order of {@link #dot}.
   */
  @Override
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    int per = cols / 16;
    float[] gs = Vec.rowScales(2 * per);
    float[] lanes = Vec.laneScratch();
    long rowBytes = (long) cols / BLOCK_SIZE * BLOCK_BYTES;
    int h = n / 2;
    for (int i = 0; i < h; i++) {
      long a = (long) (row + i) * rowBytes;
      long b = (long) (row + h + i) * rowBytes;
      groupScales(data, a, cols, gs, 0);
      groupScales(data, b, cols, gs, per);
      dotGroups2(data, a, b, cols, gs, per, x, xOffset, lanes);
      y[yOffset + i] = Lanes.sum(lanes, 0, L);
      y[yOffset + h + i] = Lanes.sum(lanes, L, L);
    }
    for (int i = 2 * h; i < n; i++) {
      y[yOffset + i] = dot(row + i, x, xOffset);
    }
  }

  /**
   * Rows at {@code a} (scales at gs[0 ..]) and {@code b} (gs[per ..]): their lanes to lanes[0 ..
   * 2L).
   */
  private static void dotGroups2(
      MemorySegment seg,
      long a,
      long b,
      int cols,
      float[] gs,
      int per,
      float[] x,
      int xOffset,
      float[] lanes) {
    FloatVector aLow = FloatVector.zero(F);
    FloatVector aHigh = FloatVector.zero(F);
    FloatVector bLow = FloatVector.zero(F);
    FloatVector bHigh = FloatVector.zero(F);
    for (int g = 0; g < cols / 64; g++) {
      long qa = a + groupBytes(g);
      long qb = b + groupBytes(g);
      int o = xOffset + 64 * g;
      FloatVector as1 = FloatVector.broadcast(F, gs[4 * g]);
      FloatVector am1 = FloatVector.broadcast(F, gs[4 * g + 1]);
      FloatVector as2 = FloatVector.broadcast(F, gs[4 * g + 2]);
      FloatVector am2 = FloatVector.broadcast(F, gs[4 * g + 3]);
      FloatVector bs1 = FloatVector.broadcast(F, gs[per + 4 * g]);
      FloatVector bm1 = FloatVector.broadcast(F, gs[per + 4 * g + 1]);
      FloatVector bs2 = FloatVector.broadcast(F, gs[per + 4 * g + 2]);
      FloatVector bm2 = FloatVector.broadcast(F, gs[per + 4 * g + 3]);
      for (int l = 0; l < 32; l += L) {
        FloatVector xl = FloatVector.fromArray(F, x, o + l);
        FloatVector xh = FloatVector.fromArray(F, x, o + 32 + l);
        IntVector pa = Vec.bytesToInts(seg, qa + l);
        IntVector pb = Vec.bytesToInts(seg, qb + l);
        aLow = Vec.toFloats(pa.and(15)).fma(as1, am1).fma(xl, aLow);
        bLow = Vec.toFloats(pb.and(15)).fma(bs1, bm1).fma(xl, bLow);
        aHigh =
            Vec.toFloats(pa.lanewise(VectorOperators.ASHR, 4).and(15)).fma(as2, am2).fma(xh, aHigh);
        bHigh =
            Vec.toFloats(pb.lanewise(VectorOperators.ASHR, 4).and(15)).fma(bs2, bm2).fma(xh, bHigh);
      }
    }
    aLow.add(aHigh).intoArray(lanes, 0);
    bLow.add(bHigh).intoArray(lanes, L);
  }

  /**
   * {@code Σ w·x} over one row with each weight decoded as {@link #dequantize} does ({@code fma(q,
   * d·sc, −dmin·m)}) and multiplied into the accumulator by one more FMA: the decode costs one FMA
   * per lane, as the form {@code d·Σ sc·(Σ q·x) − dmin·Σ m·(Σ x)} does once its activation sums are
   * counted.
   */
  private static float dotGroups(
      MemorySegment seg, long block, int cols, float[] gs, float[] x, int xOffset) {
    FloatVector lowNibbles = FloatVector.zero(F);
    FloatVector highNibbles = FloatVector.zero(F);
    for (int g = 0; g < cols / 64; g++) {
      long qs = block + groupBytes(g);
      int o = xOffset + 64 * g;
      FloatVector s1 = FloatVector.broadcast(F, gs[4 * g]);
      FloatVector m1 = FloatVector.broadcast(F, gs[4 * g + 1]);
      FloatVector s2 = FloatVector.broadcast(F, gs[4 * g + 2]);
      FloatVector m2 = FloatVector.broadcast(F, gs[4 * g + 3]);
      for (int l = 0; l < 32; l += L) {
        IntVector packed = Vec.bytesToInts(seg, qs + l);
        lowNibbles =
            Vec.toFloats(packed.and(15))
                .fma(s1, m1)
                .fma(FloatVector.fromArray(F, x, o + l), lowNibbles);
        highNibbles =
            Vec.toFloats(packed.lanewise(VectorOperators.ASHR, 4).and(15))
                .fma(s2, m2)
                .fma(FloatVector.fromArray(F, x, o + 32 + l), highNibbles);
      }
    }
    return Lanes.sum(lowNibbles.add(highNibbles));
  }
}
