package dev.longctx.engine.tensor;

import static dev.longctx.engine.tensor.Vec.F;
import static dev.longctx.engine.tensor.Vec.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
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

  private static final byte BIAS = 32;

  // The four 6-bit quants of one lane set, re-centred to q − 32 (fits a signed byte).
  private static FloatVector q1(ByteVector a, ByteVector c) {
    return Vec.toFloats(
        a.and((byte) 15).or(c.lanewise(VectorOperators.LSHL, 4).and((byte) 0x30)).sub(BIAS));
  }

  private static FloatVector q2(ByteVector b, ByteVector c) {
    return Vec.toFloats(
        b.and((byte) 15).or(c.lanewise(VectorOperators.LSHL, 2).and((byte) 0x30)).sub(BIAS));
  }

  private static FloatVector q3(ByteVector a, ByteVector c) {
    return Vec.toFloats(
        a.lanewise(VectorOperators.LSHR, 4).and((byte) 15).or(c.and((byte) 0x30)).sub(BIAS));
  }

  private static FloatVector q4(ByteVector b, ByteVector c) {
    return Vec.toFloats(
        b.lanewise(VectorOperators.LSHR, 4)
            .and((byte) 15)
            .or(c.lanewise(VectorOperators.LSHR, 2).and((byte) 0x30))
            .sub(BIAS));
  }

  @Override
  public void dequantize(int row, int col, int n, float[] out, int outOffset) {
    MemorySegment seg = data;
    long block = ((long) row * cols + col) / BLOCK_SIZE * BLOCK_BYTES;
    for (int b = 0; b < n; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      float d = Vec.f16(seg, block + D_OFFSET);
      for (int h = 0; h < 2; h++) {
        long ql = block + QL_OFFSET + 64 * h;
        long qh = block + QH_OFFSET + 32 * h;
        long sc = block + SCALES_OFFSET + 8 * h;
        int o = outOffset + b + 128 * h;
        for (int l = 0; l < 32; l += L) {
          long s = sc + l / 16;
          ByteVector va = Vec.bytes(seg, ql + l);
          ByteVector vb = Vec.bytes(seg, ql + 32 + l);
          ByteVector vc = Vec.bytes(seg, qh + l);
          q1(va, vc).mul(d * seg.get(ValueLayout.JAVA_BYTE, s)).intoArray(out, o + l);
          q2(vb, vc).mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 2)).intoArray(out, o + 32 + l);
          q3(va, vc).mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 4)).intoArray(out, o + 64 + l);
          q4(vb, vc).mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 6)).intoArray(out, o + 96 + l);
        }
      }
    }
  }

  @Override
  public float dot(int row, float[] x, int xOffset) {
    MemorySegment seg = data;
    long block = (long) row * cols / BLOCK_SIZE * BLOCK_BYTES;
    int n = cols;
    FloatVector acc1 = FloatVector.zero(F);
    FloatVector acc2 = FloatVector.zero(F);
    FloatVector acc3 = FloatVector.zero(F);
    FloatVector acc4 = FloatVector.zero(F);
    for (int b = 0; b < n; b += BLOCK_SIZE, block += BLOCK_BYTES) {
      float d = Vec.f16(seg, block + D_OFFSET);
      for (int h = 0; h < 2; h++) {
        long ql = block + QL_OFFSET + 64 * h;
        long qh = block + QH_OFFSET + 32 * h;
        long sc = block + SCALES_OFFSET + 8 * h;
        int o = xOffset + b + 128 * h;
        for (int l = 0; l < 32; l += L) {
          long s = sc + l / 16;
          ByteVector va = Vec.bytes(seg, ql + l);
          ByteVector vb = Vec.bytes(seg, ql + 32 + l);
          ByteVector vc = Vec.bytes(seg, qh + l);
          acc1 =
              q1(va, vc)
                  .mul(d * seg.get(ValueLayout.JAVA_BYTE, s))
                  .fma(FloatVector.fromArray(F, x, o + l), acc1);
          acc2 =
              q2(vb, vc)
                  .mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 2))
                  .fma(FloatVector.fromArray(F, x, o + 32 + l), acc2);
          acc3 =
              q3(va, vc)
                  .mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 4))
                  .fma(FloatVector.fromArray(F, x, o + 64 + l), acc3);
          acc4 =
              q4(vb, vc)
                  .mul(d * seg.get(ValueLayout.JAVA_BYTE, s + 6))
                  .fma(FloatVector.fromArray(F, x, o + 96 + l), acc4);
        }
      }
    }
    return Vec.sum(acc1.add(acc2).add(acc3.add(acc4)));
  }
}
