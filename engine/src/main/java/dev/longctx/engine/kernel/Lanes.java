package dev.longctx.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Lane reductions and the exponential with results that depend on the inputs alone.
 *
 * <p>{@code reduceLanes(ADD)} may add the lanes in any order, and {@code lanewise(EXP)} is a vector
 * math library call once C2 intrinsifies it but a per-lane {@link Math#exp} before: the
 * interpreter, C1 and C2 then round differently, so the same sequence run twice in one JVM could
 * produce logits that differ in the last bit, and a top-k near-tie could flip. Everything here is
 * built from IEEE operations that every tier rounds identically (add, multiply, fused multiply-add,
 * conversions, lane shuffles), so a forward pass is bit-reproducible across JIT warm-up, runs and
 * thread counts.
 */
public final class Lanes {

  // The reduction trees' lane rotations, as constants per species so that C2 intrinsifies them.
  private static final VectorShuffle<Float> R8_4 = rotation(FloatVector.SPECIES_256, 4);
  private static final VectorShuffle<Float> R8_2 = rotation(FloatVector.SPECIES_256, 2);
  private static final VectorShuffle<Float> R8_1 = rotation(FloatVector.SPECIES_256, 1);
  private static final VectorShuffle<Float> R16_8 = rotation(FloatVector.SPECIES_512, 8);
  private static final VectorShuffle<Float> R16_4 = rotation(FloatVector.SPECIES_512, 4);
  private static final VectorShuffle<Float> R16_2 = rotation(FloatVector.SPECIES_512, 2);
  private static final VectorShuffle<Float> R16_1 = rotation(FloatVector.SPECIES_512, 1);

  // expf after Cephes: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in a short high part, whose
  // product with n is exact, and a correction), exp(r) by a degree-7 polynomial
  // (1 + r + r²·P(r)), then scaled by 2^n in two exact steps so that n may reach ±150 without the
  // scale itself overflowing or going subnormal. Within 2 ulp of exp(x) where the result is normal.
  private static final float LOG2E = 1.44269504088896341f;
  private static final float LN2_HI = 0.693359375f;
  private static final float LN2_LO = -2.12194440e-4f;
  private static final float P0 = 1.9875691500e-4f;
  private static final float P1 = 1.3981999507e-3f;
  private static final float P2 = 8.3334519073e-3f;
  private static final float P3 = 4.1665795894e-2f;
  private static final float P4 = 1.6666665459e-1f;
  private static final float P5 = 5.0000001201e-1f;

  /** Round-to-nearest by adding and removing 1.5·2^23 (exact for |v| < 2^22). */
  private static final float ROUNDER = 12_582_912f;

  /** Below exp(−110) ≈ 1.7e−48 the result is 0 in float; −∞ lands here. */
  private static final float LOWEST = -110f;

  /** Above exp(89) the result is +∞ in float. */
  private static final float HIGHEST = 89f;

  private Lanes() {}

  private static VectorShuffle<Float> rotation(VectorSpecies<Float> species, int by) {
    int mask = species.length() - 1;
    return VectorShuffle.fromOp(species, i -> (i + by) & mask);
  }

  /** The sum of the lanes in a fixed pairwise order (halves, then quarters, …). */
  public static float sum(FloatVector v) {
    return switch (v.length()) {
      case 8 -> {
        FloatVector s = v.add(v.rearrange(R8_4));
        s = s.add(s.rearrange(R8_2));
        yield s.add(s.rearrange(R8_1)).lane(0);
      }
      case 16 -> {
        FloatVector s = v.add(v.rearrange(R16_8));
        s = s.add(s.rearrange(R16_4));
        s = s.add(s.rearrange(R16_2));
        yield s.add(s.rearrange(R16_1)).lane(0);
      }
      default -> {
        float s = 0;
        for (int i = 0; i < v.length(); i++) {
          s += v.lane(i);
        }
        yield s;
      }
    };
  }

  /**
   * The sum of {@code a[offset, offset + lanes)}, bit-identical to {@link #sum} of a vector of
   * {@code lanes} lanes holding them; the span is used as scratch and overwritten. For kernels that
   * reduce several accumulators after a loop: storing them and summing here costs a few scalar adds
   * and a store-to-load forwarding stall (so not in an inner loop), while a vector passed to a call
   * C2 did not inline (a hot loop can exhaust its node budget) is boxed on the heap.
   */
  public static float sum(float[] a, int offset, int lanes) {
    if (lanes != 8 && lanes != 16) {
      float s = 0;
      for (int i = 0; i < lanes; i++) {
        s += a[offset + i];
      }
      return s;
    }
    // Lane 0 of sum's rotation tree: lane i plus lane i + w, for w = lanes/2, …, 1.
    for (int w = lanes / 2; w > 0; w /= 2) {
      for (int i = 0; i < w; i++) {
        a[offset + i] += a[offset + i + w];
      }
    }
    return a[offset];
  }

  /**
   * {@code e^x} per lane: +∞ above 89, 0 for −∞ and below −110, NaN for NaN; within 2 ulp of {@link
   * Math#exp} where the result is a normal float.
   */
  public static FloatVector exp(FloatVector x) {
    VectorSpecies<Float> f = x.species();
    FloatVector c = x.max(LOWEST).min(HIGHEST); // NaN stays NaN (Math.max/min semantics)
    FloatVector n = c.mul(LOG2E).add(ROUNDER).sub(ROUNDER);
    FloatVector r = c.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
    FloatVector p = FloatVector.broadcast(f, P0);
    p = p.fma(r, FloatVector.broadcast(f, P1));
    p = p.fma(r, FloatVector.broadcast(f, P2));
    p = p.fma(r, FloatVector.broadcast(f, P3));
    p = p.fma(r, FloatVector.broadcast(f, P4));
    p = p.fma(r, FloatVector.broadcast(f, P5));
    FloatVector e = p.mul(r.mul(r)).add(r).add(1f);
    IntVector k = (IntVector) n.convert(VectorOperators.F2I, 0);
    IntVector half = k.lanewise(VectorOperators.ASHR, 1);
    return e.mul(powerOfTwo(half)).mul(powerOfTwo(k.sub(half)));
  }

  /** {@code 2^k} for {@code −126 ≤ k ≤ 127}, built from its exponent bits. */
  private static FloatVector powerOfTwo(IntVector k) {
    return k.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
  }
}
