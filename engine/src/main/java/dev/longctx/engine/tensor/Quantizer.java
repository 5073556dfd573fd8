package dev.longctx.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Round-to-nearest quantizers, as ggml's reference quantizers define them, for writing model files
 * (the GGUF writer, {@code synth}). Supported: F32, F16, BF16, Q8_0, Q4_0.
 */
public final class Quantizer {

  private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
  private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

  private Quantizer() {}

  /** Whether {@link #quantize} can write {@code type}. */
  public static boolean canQuantize(GgmlType type) {
    return switch (type) {
      case F32, F16, BF16, Q8_0, Q4_0 -> true;
      default -> false;
    };
  }

  /**
   * Encodes {@code src[srcOffset .. srcOffset + count)} as {@code type} into {@code dst} from byte
   * 0; writes {@code type.byteSize(count)} bytes (count must be a multiple of the block size).
   */
  public static void quantize(
      GgmlType type, float[] src, int srcOffset, int count, MemorySegment dst) {
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

  /** C's roundf; the sum is taken in double so that 0.49999997f does not round up. */
  private static int roundHalfAwayFromZero(float v) {
    double a = Math.floor(Math.abs((double) v) + 0.5);
    return (int) (v < 0 ? -a : a);
  }
}
