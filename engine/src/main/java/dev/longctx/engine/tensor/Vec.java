package dev.longctx.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector species every kernel uses, and the loads that widen a block's bytes or halves to one
 * float vector. All kernels are written for {@code L} float lanes with {@code L} in {8, 16}, so a
 * 32-element quantization block is {@code 32 / L} vectors.
 *
 * <p>{@code -Dlongctx.vector.bits=256} forces 256-bit vectors on an AVX-512 machine (used by the
 * benchmark to show both); the default is {@link FloatVector#SPECIES_PREFERRED}.
 */
final class Vec {

  static final VectorSpecies<Float> F = floatSpecies();

  /** Float lanes per vector. */
  static final int L = F.length();

  /** Bytes with as many lanes as {@link #F}: one load widens to one float vector. */
  static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 8));

  /** Shorts with as many lanes as {@link #F}. */
  static final VectorSpecies<Short> S =
      VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));

  /** Ints of the same shape as {@link #F}. */
  static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());

  static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
  static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

  private Vec() {}

  /**
   * Per-thread room for four accumulators' lanes, for kernels that store their accumulators and sum
   * them with {@code Lanes.sum(float[], int, int)}: C2 leaves {@code Lanes.sum(FloatVector)} out of
   * line in the multi-row decode kernels (their loops spend its node budget), and a vector passed
   * to a call that was not inlined is boxed on the heap. Used and released within one call.
   */
  private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[4 * L]);

  /** This thread's {@link #LANES} scratch: {@code 4 · L} floats. */
  static float[] laneScratch() {
    return LANES.get();
  }

  /**
   * Per-thread room for a row's decoded block scales (Q4_K's kernels unpack them in a first pass so
   * that the vector loop reads plain floats). Used and released within one call.
   */
  private static final ThreadLocal<float[]> ROW_SCALES =
      ThreadLocal.withInitial(() -> new float[0]);

  /** This thread's row-scale scratch, at least {@code n} floats. */
  static float[] rowScales(int n) {
    float[] scales = ROW_SCALES.get();
    if (scales.length < n) {
      scales = new float[n];
      ROW_SCALES.set(scales);
    }
    return scales;
  }

  private static VectorSpecies<Float> floatSpecies() {
    String bits = System.getProperty("longctx.vector.bits");
    if (bits != null) {
      return VectorSpecies.of(float.class, VectorShape.forBitSize(Integer.parseInt(bits)));
    }
    VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
    // Kernels assume at least 8 lanes; a 128-bit machine runs the 256-bit code (slowly but right).
    return preferred.length() >= 8 ? preferred : FloatVector.SPECIES_256;
  }

  /** {@code L} signed bytes at {@code offset}, widened to floats. */
  static FloatVector bytesToFloats(MemorySegment seg, long offset) {
    return (FloatVector)
        ByteVector.fromMemorySegment(B, seg, offset, LE).convertShape(VectorOperators.B2F, F, 0);
  }

  /**
   * {@code L} signed bytes at {@code offset}, widened to ints (bit work is native on int lanes).
   */
  static IntVector bytesToInts(MemorySegment seg, long offset) {
    return (IntVector)
        ByteVector.fromMemorySegment(B, seg, offset, LE).convertShape(VectorOperators.B2I, I, 0);
  }

  /** Int lanes to floats. */
  static FloatVector toFloats(IntVector v) {
    return (FloatVector) v.convert(VectorOperators.I2F, 0);
  }

  /** {@code L} bfloat16 values at {@code offset}: the float's upper half. */
  static FloatVector bf16ToFloats(MemorySegment seg, long offset) {
    IntVector i =
        (IntVector)
            ShortVector.fromMemorySegment(S, seg, offset, LE)
                .convertShape(VectorOperators.S2I, I, 0);
    return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
  }

  /**
   * {@code L} IEEE binary16 values at {@code offset}. Exponent and mantissa shifted into float
   * position and scaled by 2^112 re-bias normals and subnormals exactly; for infinities and NaNs
   * (half exponent 31, and only then, {@code (e + 1) >>> 5 == 1}) the float exponent is forced to
   * 255, keeping the mantissa. Lane arithmetic only: a compare-and-blend here made C2 box vectors.
   */
  static FloatVector f16ToFloats(MemorySegment seg, long offset) {
    IntVector h =
        (IntVector)
            ShortVector.fromMemorySegment(S, seg, offset, LE)
                .convertShape(VectorOperators.S2I, I, 0);
    IntVector em = h.and(0x7FFF).lanewise(VectorOperators.LSHL, 13);
    IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
    IntVector special =
        em.lanewise(VectorOperators.LSHR, 23)
            .add(1)
            .lanewise(VectorOperators.LSHR, 5)
            .neg()
            .and(0x7F80_0000);
    IntVector bits = em.reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts();
    return bits.or(special).or(sign).reinterpretAsFloats();
  }

  /** ggml's half-precision block scale at {@code offset}. */
  static float f16(MemorySegment seg, long offset) {
    return Float.float16ToFloat(seg.get(SHORT, offset));
  }

  /** Checks a tensor class's block constants against {@link GgmlType} (ggml's static_assert). */
  static void checkLayout(GgmlType type, int blockSize, int bytesPerBlock) {
    if (type.blockSize() != blockSize || type.bytesPerBlock() != bytesPerBlock) {
      throw new AssertionError(
          type
              + " layout: "
              + blockSize
              + " elements in "
              + bytesPerBlock
              + " bytes, GgmlType says "
              + type.blockSize()
              + " in "
              + type.bytesPerBlock());
    }
  }
}
