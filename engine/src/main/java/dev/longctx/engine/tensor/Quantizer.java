package dev.longctx.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Quantizers for writing model files (the GGUF writer, {@code synth}). Supported: F32, F16, BF16,
 * Q8_0, Q4_0 (round to nearest, as ggml's reference quantizers define them) and the K-quants Q4_K
 * and Q6_K (round to nearest on a grid fitted per sub-block; see {@link #quantizeQ4_KBlock} and
 * {@link #quantizeQ6_KBlock}), in the block layouts {@link Q4_KTensor} and {@link Q6_KTensor}
 * decode.
 *
 * <p>The K-quant grids are chosen so that quantizing values already on a grid gives back the same
 * bytes: each sub-block's extreme elements land on its end levels (q = 0 and 15 for Q4_K, q = 0 for
 * Q6_K), so the grid re-derived from decoded values is the stored one. Inputs must be finite;
 * scales beyond the half range (sub-block ranges past ~6·10⁷) saturate at 65504.
 */
public final class Quantizer {

  private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
  private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

  private Quantizer() {}

  /** Whether {@link #quantize} can write {@code type}. */
  public static boolean canQuantize(GgmlType type) {
    return switch (type) {
      case F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K -> true;
      default -> false;
    };
  }

  /**
   * Encodes {@code src[srcOffset .. srcOffset + count)} as {@code type} into {@code dst} from byte
   * 0; writes {@code type.byteSize(count)} bytes (count must be a multiple of the block size: 32
   * for Q8_0 and Q4_0, 256 for Q4_K and Q6_K).
   */
  public static void quantize(
      GgmlType type, float[] src, int srcOffset, int count, MemorySegment dst) {
    if (count % type.blockSize() != 0) {
      throw new IllegalArgumentException(
          type
              + " quantizes blocks of "
              + type.blockSize()
              + " elements; "
              + count
              + " elements is not a multiple of "
              + type.blockSize());
    }
    long bytes = type.byteSize(count);
    if (dst.byteSize() < bytes) {
      throw new IllegalArgumentException(
          type + " of " + count + " elements needs " + bytes + " bytes, dst has " + dst.byteSize());
    }
    switch (type) {
      case F32 -> MemorySegment.copy(src, srcOffset, dst, FLOAT, 0, count);
      case F16 -> {
        for (int i = 0; i < count; i++) {
          dst.set(SHORT, 2L * i, Float.floatToFloat16(src[srcOffset + i]));
        }
      }
      case BF16 -> {
        for (int i = 0; i < count; i++) {
          dst.set(SHORT, 2L * i, toBf16(src[srcOffset + i]));
        }
      }
      case Q8_0 -> {
        for (int b = 0; b < count / Q8_0Tensor.BLOCK_SIZE; b++) {
          quantizeQ8_0Block(
              src, srcOffset + b * Q8_0Tensor.BLOCK_SIZE, dst, (long) b * Q8_0Tensor.BLOCK_BYTES);
        }
      }
      case Q4_0 -> {
        for (int b = 0; b < count / Q4_0Tensor.BLOCK_SIZE; b++) {
          quantizeQ4_0Block(
              src, srcOffset + b * Q4_0Tensor.BLOCK_SIZE, dst, (long) b * Q4_0Tensor.BLOCK_BYTES);
        }
      }
      case Q4_K, Q6_K -> {
        boolean q4 = type == GgmlType.Q4_K;
        SubBlocks work = new SubBlocks(q4 ? 8 : 16);
        for (int b = 0; b < count / type.blockSize(); b++) {
          int o = srcOffset + b * type.blockSize();
          long off = (long) b * type.bytesPerBlock();
          if (q4) {
            quantizeQ4_KBlock(src, o, dst, off, work);
          } else {
            quantizeQ6_KBlock(src, o, dst, off, work);
          }
        }
      }
      default -> throw new IllegalArgumentException("no quantizer for " + type);
    }
  }

  /** Quantizes a row-major {@code rows × cols} matrix into a new heap tensor of {@code type}. */
  public static FloatTensor quantize(GgmlType type, float[] src, int rows, int cols) {
    long bytes = type.byteSize((long) rows * cols);
    MemorySegment dst = MemorySegment.ofArray(new byte[Math.toIntExact(bytes)]);
    quantize(type, src, 0, rows * cols, dst);
    return FloatTensor.of(type, dst, rows, cols);
  }

  /** binary32 → bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
  static short toBf16(float f) {
    int u = Float.floatToRawIntBits(f);
    if ((u & 0x7fff_ffff) > 0x7f80_0000) {
      return (short) ((u >>> 16) | 64);
    }
    return (short) ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16);
  }

  /** d = max|x| / 127, q = round(x / d) (half away from zero). */
  private static void quantizeQ8_0Block(float[] src, int o, MemorySegment dst, long off) {
    float amax = 0;
    for (int i = 0; i < Q8_0Tensor.BLOCK_SIZE; i++) {
      amax = Math.max(amax, Math.abs(src[o + i]));
    }
    float d = amax / 127f;
    float id = d != 0 ? 1f / d : 0f;
    dst.set(SHORT, off + Q8_0Tensor.D_OFFSET, Float.floatToFloat16(d));
    for (int i = 0; i < Q8_0Tensor.BLOCK_SIZE; i++) {
      dst.set(
          ValueLayout.JAVA_BYTE,
          off + Q8_0Tensor.QS_OFFSET + i,
          (byte) roundHalfAwayFromZero(src[o + i] * id));
    }
  }

  /**
   * The element of largest magnitude, max, sets d = max / −8 so that it maps to q = 0 exactly; q =
   * min(15, trunc(x / d + 8.5)).
   */
  private static void quantizeQ4_0Block(float[] src, int o, MemorySegment dst, long off) {
    float amax = 0;
    float max = 0;
    for (int i = 0; i < Q4_0Tensor.BLOCK_SIZE; i++) {
      float v = src[o + i];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    float d = max / -8f;
    float id = d != 0 ? 1f / d : 0f;
    dst.set(SHORT, off + Q4_0Tensor.D_OFFSET, Float.floatToFloat16(d));
    for (int i = 0; i < Q4_0Tensor.BLOCK_SIZE / 2; i++) {
      int q0 = Math.min(15, (int) (src[o + i] * id + 8.5f));
      int q1 = Math.min(15, (int) (src[o + 16 + i] * id + 8.5f));
      dst.set(ValueLayout.JAVA_BYTE, off + Q4_0Tensor.QS_OFFSET + i, (byte) (q0 | q1 << 4));
    }
  }

  /** Per-sub-block scratch of one super-block, reused across the blocks of one call. */
  private static final class SubBlocks {
    /** Q4_K: min(0, min x). */
    final float[] lo;

    /** Q4_K: max x; Q6_K: the element of largest magnitude. */
    final float[] hi;

    final int[] scale;
    final int[] min;

    SubBlocks(int n) {
      lo = new float[n];
      hi = new float[n];
      scale = new int[n];
      min = new int[n];
    }
  }

  /**
   * One Q4_K super-block: eight sub-blocks of 32, element = d·sc_j·q − dmin·m_j with q in 0..15 and
   * 6-bit sc_j, m_j. Per sub-block j, with lo_j = min(0, min x) and hi_j = max x:
   *
   * <ol>
   *   <li>dmin = max_j(−lo_j) / 63, rounded <em>down</em> to a half, so the sub-block with the
   *       lowest minimum gets m = 63 with its grid origin −63·dmin at or above that minimum; m_j =
   *       round(−lo_j / dmin), clamped to 0..63; origin o_j = dmin·m_j (the level q = 0 is −o_j).
   *   <li>top_j = hi_j + o_j, the span the 15 steps must cover; d = max_j top_j / (15·63), rounded
   *       down to a half (after a 2^-12 slack for float noise), so that the widest sub-block gets
   *       sc = 63 even where d is a subnormal half of few bits; sc_j = round(top_j / (15·d)),
   *       clamped to 0..63 (ggml takes (hi − lo) / 15 before rounding m; measuring from the rounded
   *       origin fits the grid to where it really starts).
   *   <li>If the largest element would round below q = 15 on that grid, sc_j − 1 (then it clamps to
   *       15); if the smallest would round above q = 0 (a sub-block much narrower than dmin), m_j −
   *       1 and step 2 again for it (then it clamps to 0).
   *   <li>q = round((x + o_j) / (d·sc_j)), clamped to 0..15; 0 where d·sc_j = 0.
   * </ol>
   *
   * Error: within half a step d·sc_j inside the grid [−o_j, −o_j + 15·d·sc_j]; outside it (the
   * clamped extremes) at most max(dmin, 63·g_dmin) below and max(15·d, 945·g_d) + dmin above, g
   * being the gap from a half to the next (QuantizerTest derives these).
   */
  private static void quantizeQ4_KBlock(
      float[] src, int o, MemorySegment dst, long off, SubBlocks w) {
    double maxNeg = 0;
    for (int j = 0; j < 8; j++) {
      float lo = 0;
      float hi = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < 32; i++) {
        float v = src[o + 32 * j + i];
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      w.lo[j] = lo;
      w.hi[j] = hi;
      maxNeg = Math.max(maxNeg, -lo);
    }
    short dminBits = halfAtMost(maxNeg / 63);
    float dmin = Float.float16ToFloat(dminBits);
    double maxTop = 0;
    for (int j = 0; j < 8; j++) {
      w.min[j] = dmin > 0 ? Math.clamp(roundHalfAwayFromZero(-w.lo[j] / dmin), 0, 63) : 0;
      maxTop = Math.max(maxTop, w.hi[j] + dmin * w.min[j]);
    }
    short dBits = halfAtMost(maxTop / (15 * 63) * NOISE);
    float d = Float.float16ToFloat(dBits);
    for (int j = 0; j < 8; j++) {
      w.scale[j] = q4kScale(w.hi[j], dmin * w.min[j], d);
      float step = d * w.scale[j];
      if (w.min[j] > 0 && step > 0 && q4kLevel(w.lo[j], dmin * w.min[j], step) > 0) {
        w.min[j]--;
        w.scale[j] = q4kScale(w.hi[j], dmin * w.min[j], d);
      }
    }
    dst.set(SHORT, off + Q4_KTensor.D_OFFSET, dBits);
    dst.set(SHORT, off + Q4_KTensor.DMIN_OFFSET, dminBits);
    long scales = off + Q4_KTensor.SCALES_OFFSET;
    for (int j = 0; j < 4; j++) {
      int sc = w.scale[j];
      int m = w.min[j];
      int sc4 = w.scale[j + 4];
      int m4 = w.min[j + 4];
      dst.set(ValueLayout.JAVA_BYTE, scales + j, (byte) (sc | (sc4 >> 4) << 6));
      dst.set(ValueLayout.JAVA_BYTE, scales + j + 4, (byte) (m | (m4 >> 4) << 6));
      dst.set(ValueLayout.JAVA_BYTE, scales + j + 8, (byte) ((sc4 & 15) | (m4 & 15) << 4));
    }
    for (int g = 0; g < 4; g++) {
      int j = 2 * g;
      float o1 = dmin * w.min[j];
      float s1 = d * w.scale[j];
      float o2 = dmin * w.min[j + 1];
      float s2 = d * w.scale[j + 1];
      for (int l = 0; l < 32; l++) {
        int q1 = q4kLevel(src[o + 64 * g + l], o1, s1);
        int q2 = q4kLevel(src[o + 64 * g + 32 + l], o2, s2);
        dst.set(
            ValueLayout.JAVA_BYTE, off + Q4_KTensor.QS_OFFSET + 32 * g + l, (byte) (q1 | q2 << 4));
      }
    }
  }

  /**
   * The 6-bit scale that spreads {@code hi + origin} over 15 steps of {@code d}, lowered by one
   * when {@code hi} would not reach the top level.
   */
  private static int q4kScale(float hi, float origin, float d) {
    if (d == 0) {
      return 0;
    }
    float top = hi + origin;
    int sc = Math.clamp(roundHalfAwayFromZero(top / (15 * d)), 0, 63);
    if (sc > 0 && q4kLevel(hi, origin, d * sc) < 15) {
      sc--;
    }
    return sc;
  }

  private static int q4kLevel(float x, float origin, float step) {
    return step > 0 ? Math.clamp(roundHalfAwayFromZero((x + origin) / step), 0, 15) : 0;
  }

  /**
   * One Q6_K super-block: sixteen sub-blocks of 16, element = d·sc_j·(q − 32) with q in 0..63 and
   * int8 sc_j. Per sub-block, the element of largest magnitude M_j (the first, on a tie) sets the
   * scale s_j = M_j / −32, so that it lands on q = 0 and the grid's 64 levels all serve (ggml's
   * choice too; a symmetric ±31 grid would waste the level −32); d = max_j |s_j| / 127, rounded
   * down to a half (after a 2^-12 slack), so that the largest sub-block gets sc = ±127 with M_j on
   * q = 0 even where d is a subnormal half; sc_j = round(s_j / d), clamped to ±127 (d is sized for
   * 127), moved one toward zero if that step is so much wider than s_j that M_j would round to q =
   * 1; q = round(x / (d·sc_j)) + 32, clamped to 0..63.
   *
   * <p>Error: within half a step |d·sc_j| on the grid's range [−32, 31] steps; an element of the
   * extreme's sign clamps at most 32·e beyond it, one of the other sign (only above 31 steps) at
   * most a step + 32·e, where e = max(d, 127·(the gap above d between halves)) bounds how much
   * narrower than s_j the stored step can be.
   */
  private static void quantizeQ6_KBlock(
      float[] src, int o, MemorySegment dst, long off, SubBlocks w) {
    float amax = 0;
    for (int j = 0; j < 16; j++) {
      float ext = 0;
      for (int i = 0; i < 16; i++) {
        float v = src[o + 16 * j + i];
        if (Math.abs(v) > Math.abs(ext)) {
          ext = v;
        }
      }
      w.hi[j] = ext;
      amax = Math.max(amax, Math.abs(ext / -32f));
    }
    short dBits = halfAtMost(amax / 127.0 * NOISE);
    float d = Float.float16ToFloat(dBits);
    for (int j = 0; j < 16; j++) {
      float ext = w.hi[j];
      int sc = d > 0 ? Math.clamp(roundHalfAwayFromZero(ext / -32f / d), -127, 127) : 0;
      if (sc != 0 && q6kLevel(ext, d * sc) != 0) {
        sc -= Integer.signum(sc);
      }
      w.scale[j] = sc;
    }
    for (int j = 0; j < 16; j++) {
      dst.set(ValueLayout.JAVA_BYTE, off + Q6_KTensor.SCALES_OFFSET + j, (byte) w.scale[j]);
    }
    dst.set(SHORT, off + Q6_KTensor.D_OFFSET, dBits);
    // Half h, column l < 32: elements 128h + l + 32k for quarters k = 0..3 share ql and qh bytes.
    for (int h = 0; h < 2; h++) {
      for (int l = 0; l < 32; l++) {
        int i = o + 128 * h + l;
        int j = 8 * h + l / 16; // the sub-block of quarter 0; quarter k is j + 2k
        int q0 = q6kLevel(src[i], d * w.scale[j]);
        int q1 = q6kLevel(src[i + 32], d * w.scale[j + 2]);
        int q2 = q6kLevel(src[i + 64], d * w.scale[j + 4]);
        int q3 = q6kLevel(src[i + 96], d * w.scale[j + 6]);
        long ql = off + Q6_KTensor.QL_OFFSET + 64 * h + l;
        dst.set(ValueLayout.JAVA_BYTE, ql, (byte) ((q0 & 15) | (q2 & 15) << 4));
        dst.set(ValueLayout.JAVA_BYTE, ql + 32, (byte) ((q1 & 15) | (q3 & 15) << 4));
        dst.set(
            ValueLayout.JAVA_BYTE,
            off + Q6_KTensor.QH_OFFSET + 32 * h + l,
            (byte) ((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6));
      }
    }
  }

  private static int q6kLevel(float x, float step) {
    return step != 0 ? Math.clamp(roundHalfAwayFromZero(x / step) + 32, 0, 63) : 32;
  }

  /**
   * Slack for the super-block scales d, rounded down to a half: decoded values carry float rounding
   * (an ulp or so of the block), which must not push d one half lower on a second pass.
   */
  private static final double NOISE = 1 + 0x1p-12;

  /** The half nearest {@code v} (≥ 0), saturating at the largest finite half. */
  private static short toHalf(double v) {
    return Float.floatToFloat16((float) Math.min(v, 65504));
  }

  /** The largest half ≤ {@code v} (≥ 0). */
  private static short halfAtMost(double v) {
    short h = toHalf(v);
    while (h > 0 && Float.float16ToFloat(h) > v) {
      h--;
    }
    return h;
  }

  /** C's roundf; the sum is taken in double so that 0.49999997f does not round up. */
  private static int roundHalfAwayFromZero(float v) {
    double a = Math.floor(Math.abs((double) v) + 0.5);
    return (int) (v < 0 ? -a : a);
  }
}
