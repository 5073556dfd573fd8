package dev.longctx.engine.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

/**
 * Test-side oracle: random raw tensors of every computable type, and scalar float64 decoders
 * written straight from the block layouts (ggml's block_* structs), independent of the engine's
 * tensor classes.
 */
final class TensorReference {

  private TensorReference() {}

  static final GgmlType[] TYPES = {
    GgmlType.F32,
    GgmlType.F16,
    GgmlType.BF16,
    GgmlType.Q8_0,
    GgmlType.Q4_0,
    GgmlType.Q4_K,
    GgmlType.Q6_K
  };

  /**
   * Random raw bytes for a {@code rows × cols} tensor of {@code type}, in native memory at an odd
   * address (as an mmap'd slice at an arbitrary file offset would be). Quant bits are uniformly
   * random; scales are random halves of sane magnitude, so every value is finite.
   */
  static MemorySegment randomRaw(GgmlType type, int rows, int cols, Random rnd) {
    long bytes = type.byteSize((long) rows * cols);
    MemorySegment seg = Arena.ofAuto().allocate(bytes + 8, 8).asSlice(3, bytes);
    for (long i = 0; i < bytes; i++) {
      seg.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
    }
    long blocks = (long) rows * cols / type.blockSize();
    int bb = type.bytesPerBlock();
    for (long b = 0; b < blocks; b++) {
      long o = b * bb;
      switch (type) {
        case F32 -> seg.set(ValueLayout.JAVA_FLOAT_UNALIGNED, o, (float) rnd.nextGaussian());
        case F16 -> putHalf(seg, o, (float) rnd.nextGaussian());
        case BF16 ->
            seg.set(
                ValueLayout.JAVA_SHORT_UNALIGNED,
                o,
                (short) (Float.floatToRawIntBits((float) rnd.nextGaussian()) >>> 16));
        case Q8_0, Q4_0 -> putHalf(seg, o, scale(rnd));
        case Q4_K -> {
          putHalf(seg, o, scale(rnd) / 16);
          putHalf(seg, o + 2, Math.abs(scale(rnd)) / 16);
        }
        case Q6_K -> putHalf(seg, o + 208, scale(rnd) / 64);
        default -> throw new IllegalArgumentException(type.toString());
      }
    }
    return seg;
  }

  /** ±[0.002, 0.05]: the range of block scales in real weights. */
  private static float scale(Random rnd) {
    float s = 0.002f + 0.048f * rnd.nextFloat();
    return rnd.nextBoolean() ? s : -s;
  }

  private static void putHalf(MemorySegment seg, long o, float v) {
    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, o, Float.floatToFloat16(v));
  }

  static int u8(MemorySegment seg, long o) {
    return seg.get(ValueLayout.JAVA_BYTE, o) & 0xFF;
  }

  static int u16(MemorySegment seg, long o) {
    return u8(seg, o) | u8(seg, o + 1) << 8;
  }

  /** IEEE binary16 from its bits, by the definition: (−1)^s · 2^(e−15) · 1.m, or subnormal. */
  static double half(int bits) {
    int sign = (bits >> 15) & 1;
    int exp = (bits >> 10) & 31;
    int mant = bits & 1023;
    double v;
    if (exp == 0) {
      v = mant * Math.pow(2, -24);
    } else if (exp == 31) {
      v = mant == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
    } else {
      v = (1024 + mant) * Math.pow(2, exp - 25);
    }
    return sign == 1 ? -v : v;
  }

  /** Element {@code i} of a tensor of {@code type} stored in {@code seg}, in float64. */
  static double decode(GgmlType type, MemorySegment seg, long i) {
    long block = i / type.blockSize() * type.bytesPerBlock();
    int j = (int) (i % type.blockSize());
    switch (type) {
      case F32:
        {
          int bits = u16(seg, block) | u16(seg, block + 2) << 16;
          return Float.intBitsToFloat(bits);
        }
      case F16:
        return half(u16(seg, block));
      case BF16:
        return Float.intBitsToFloat(u16(seg, block) << 16);
      case Q8_0:
        // struct { half d; int8 qs[32]; }
        return half(u16(seg, block)) * (byte) u8(seg, block + 2 + j);
      case Q4_0:
        {
          // struct { half d; uint8 qs[16]; }: qs[k] = q[k] | q[k + 16] << 4
          int b = u8(seg, block + 2 + j % 16);
          int q = j < 16 ? b & 15 : b >> 4;
          return half(u16(seg, block)) * (q - 8);
        }
      case Q4_K:
        return decodeQ4K(seg, block)[j];
      case Q6_K:
        return decodeQ6K(seg, block)[j];
      default:
        throw new IllegalArgumentException(type.toString());
    }
  }

  /** struct { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }, walked as ggml does. */
  static double[] decodeQ4K(MemorySegment seg, long block) {
    double d = half(u16(seg, block));
    double dmin = half(u16(seg, block + 2));
    int[] s = new int[12];
    for (int k = 0; k < 12; k++) {
      s[k] = u8(seg, block + 4 + k);
    }
    double[] y = new double[256];
    int out = 0;
    long q = block + 16;
    for (int sub = 0; sub < 8; sub += 2, q += 32) {
      int[] scMin0 = scaleMin(s, sub);
      int[] scMin1 = scaleMin(s, sub + 1);
      for (int l = 0; l < 32; l++) {
        y[out++] = d * scMin0[0] * (u8(seg, q + l) & 15) - dmin * scMin0[1];
      }
      for (int l = 0; l < 32; l++) {
        y[out++] = d * scMin1[0] * (u8(seg, q + l) >> 4) - dmin * scMin1[1];
      }
    }
    return y;
  }

  /** The (scale, min) pair of sub-block j: six bits each, the top two of 4..7 spread over 0..7. */
  static int[] scaleMin(int[] s, int j) {
    if (j < 4) {
      return new int[] {s[j] & 63, s[j + 4] & 63};
    }
    return new int[] {
      (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)
    };
  }

  /** struct { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }, walked as ggml does. */
  static double[] decodeQ6K(MemorySegment seg, long block) {
    double d = half(u16(seg, block + 208));
    double[] y = new double[256];
    for (int h = 0; h < 2; h++) {
      long ql = block + 64 * h;
      long qh = block + 128 + 32 * h;
      long sc = block + 192 + 8 * h;
      for (int l = 0; l < 32; l++) {
        int is = l / 16;
        int q1 = ((u8(seg, ql + l) & 0xF) | ((u8(seg, qh + l) >> 0) & 3) << 4) - 32;
        int q2 = ((u8(seg, ql + l + 32) & 0xF) | ((u8(seg, qh + l) >> 2) & 3) << 4) - 32;
        int q3 = ((u8(seg, ql + l) >> 4) | ((u8(seg, qh + l) >> 4) & 3) << 4) - 32;
        int q4 = ((u8(seg, ql + l + 32) >> 4) | ((u8(seg, qh + l) >> 6) & 3) << 4) - 32;
        y[128 * h + l] = d * (byte) u8(seg, sc + is) * q1;
        y[128 * h + l + 32] = d * (byte) u8(seg, sc + is + 2) * q2;
        y[128 * h + l + 64] = d * (byte) u8(seg, sc + is + 4) * q3;
        y[128 * h + l + 96] = d * (byte) u8(seg, sc + is + 6) * q4;
      }
    }
    return y;
  }

  /** The whole tensor decoded, row-major. */
  static double[] decodeAll(GgmlType type, MemorySegment seg, int rows, int cols) {
    double[] out = new double[rows * cols];
    int bs = type.blockSize();
    for (int i = 0; i < out.length; i += bs) {
      if (type == GgmlType.Q4_K || type == GgmlType.Q6_K) {
        long block = (long) i / bs * type.bytesPerBlock();
        double[] b = type == GgmlType.Q4_K ? decodeQ4K(seg, block) : decodeQ6K(seg, block);
        System.arraycopy(b, 0, out, i, bs);
      } else {
        for (int k = 0; k < bs; k++) {
          out[i + k] = decode(type, seg, i + k);
        }
      }
    }
    return out;
  }

  /** Uniform in ±[0.05, 1]: never zero, mixed signs. */
  static float[] randomActivations(int n, Random rnd) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      float v = 0.05f + 0.95f * rnd.nextFloat();
      x[i] = rnd.nextBoolean() ? v : -v;
    }
    return x;
  }
}
