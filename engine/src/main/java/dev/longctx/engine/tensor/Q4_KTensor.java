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

  /** The 12 scale bytes as one little-endian 96-bit word: bytes 0..7 in lo, 8..11 in hi. */
  private static int scaleByte(long lo, int hi, int i) {
    return (i < 8 ? (int) (lo >>> (8 * i)) : hi >>> (8 * (i - 8))) & 0xFF;
  }

  private static int scale(long lo, int hi, int j) {
    return j < 4
        ? scaleByte(lo, hi, j) & 63
        : (scaleByte(lo, hi, j + 4) & 15) | (scaleByte(lo, hi, j - 4) >>> 6) << 4;
  }

  private static int min(long lo, int hi, int j) {
    return j < 4
        ? scaleByte(lo, hi, j + 4) & 63
        : (scaleByte(lo, hi, j + 4) >>> 4) | (scaleByte(lo, hi, j) >>> 6) << 4;
  }

  /*
   * One super-block per call, so that C2 inlines every Vector API call (a vector crossing a call
   * that was not inlined is boxed). Nibbles are taken on int lanes (native shifts).
   */

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long block = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    for (int b = 0; b < n; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      dequantizeBlock(seg, block, out, outOffset + b);
    }
  }

  private static void dequantizeBlock(MemorySegment seg, long block, float[] out, int o0) {
    float d = Vec.f16(seg, block + D_OFFSET);
    float dmin = Vec.f16(seg, block + DMIN_OFFSET);
    long lo = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, block + SCALES_OFFSET);
    int hi = seg.get(ValueLayout.JAVA_INT_UNALIGNED, block + SCALES_OFFSET + 8);
    for (int g = 0; g < 4; g++) {
      float d1 = d * scale(lo, hi, 2 * g);
      float m1 = -dmin * min(lo, hi, 2 * g);
      float d2 = d * scale(lo, hi, 2 * g + 1);
      float m2 = -dmin * min(lo, hi, 2 * g + 1);
      int o = o0 + 64 * g;
      for (int l = 0; l < 32; l += L) {
        IntVector packed = Vec.bytesToInts(seg, block + QS_OFFSET + 32 * g + l);
        Vec.toFloats(packed.and(0x0F)).fma(d1, m1).intoArray(out, o + l);
        Vec.toFloats(packed.lanewise(VectorOperators.ASHR, 4).and(0x0F))
            .fma(d2, m2)
            .intoArray(out, o + 32 + l);
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long block = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    float sum = 0;
    for (int b = 0; b < cols; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      sum += blockDot(seg, block, x, xOffset + b);
    }
    return sum;
  }

  /**
   * One super-block's {@code Σ w·x = d · Σ_j sc_j · (Σ q·x)_j − dmin · Σ_j m_j · (Σ x)_j}. A group
   * g's two sub-blocks share their bytes (low and high nibbles), so one load serves both; the eight
   * 6-bit scales and mins are unpacked four at a time in 32-bit words (SWAR).
   */
  private static float blockDot(MemorySegment seg, long block, float[] x, int o0) {
    long lo = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, block + SCALES_OFFSET);
    int hi = seg.get(ValueLayout.JAVA_INT_UNALIGNED, block + SCALES_OFFSET + 8);
    int b03 = (int) lo; // scales bytes 0..3
    int b47 = (int) (lo >>> 32); // scales bytes 4..7
    int sc03 = b03 & 0x3F3F3F3F;
    int m03 = b47 & 0x3F3F3F3F;
    int sc47 = (hi & 0x0F0F0F0F) | ((b03 >>> 6) & 0x03030303) << 4;
    int m47 = ((hi >>> 4) & 0x0F0F0F0F) | ((b47 >>> 6) & 0x03030303) << 4;
    FloatVector accQ = FloatVector.zero(F);
    FloatVector accM = FloatVector.zero(F);
    for (int g = 0; g < 4; g++) {
      long qs = block + QS_OFFSET + 32 * g;
      int o = o0 + 64 * g;
      FloatVector qx1 = FloatVector.zero(F);
      FloatVector qx2 = FloatVector.zero(F);
      FloatVector xs1 = FloatVector.zero(F);
      FloatVector xs2 = FloatVector.zero(F);
      for (int l = 0; l < 32; l += L) {
        FloatVector xa = FloatVector.fromArray(F, x, o + l);
        FloatVector xb = FloatVector.fromArray(F, x, o + 32 + l);
        IntVector packed = Vec.bytesToInts(seg, qs + l);
        qx1 = Vec.toFloats(packed.and(15)).fma(xa, qx1);
        qx2 = Vec.toFloats(packed.lanewise(VectorOperators.ASHR, 4).and(15)).fma(xb, qx2);
        xs1 = xs1.add(xa);
        xs2 = xs2.add(xb);
      }
      // The (float) casts below matter: an int argument picks broadcast(species, long), which
      // checks that the value converts exactly (a round trip and two branches per call).
      int shift = 16 * (g & 1);
      int scWord = (g < 2 ? sc03 : sc47) >>> shift;
      int mWord = (g < 2 ? m03 : m47) >>> shift;
      accQ =
          qx1.fma(FloatVector.broadcast(F, (float) (scWord & 0xFF)), accQ)
              .add(qx2.mul((scWord >>> 8) & 0xFF));
      accM =
          xs1.fma(FloatVector.broadcast(F, (float) (mWord & 0xFF)), accM)
              .add(xs2.mul((mWord >>> 8) & 0xFF));
    }
    return Vec.f16(seg, block + D_OFFSET) * Lanes.sum(accQ)
        - Vec.f16(seg, block + DMIN_OFFSET) * Lanes.sum(accM);
  }
}
