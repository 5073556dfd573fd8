package dev.longctx.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The K-quant writers of {@link Quantizer} (Q4_K, Q6_K), checked through two decoders: the engine's
 * ({@link FloatTensor#getFloat}) and {@link TensorReference}'s float64 one, which parses the block
 * layout independently. Every bound below is derived from the quantizer's construction (see {@code
 * Quantizer.quantizeQ4_KBlock} / {@code quantizeQ6_KBlock}); the grid (step and origin) each bound
 * uses is parsed from the stored bytes by the test and first checked against quantities the test
 * derives from the input alone.
 */
class QuantizerTest {

  /** Weight-like scale: σ = 0.02, as in TensorQuantizerTest. */
  private static final double SIGMA = 0.02;

  private static final int SEEDS = Integer.getInteger("quantizer.seeds", 6);

  /** Kinds of 256-element block the matrices below are made of, in rotation. */
  private enum Kind {
    GAUSSIAN,
    OUTLIERS, // Gaussian with a few elements at ±(10..40)σ
    ZERO,
    CONSTANT_POSITIVE,
    CONSTANT_NEGATIVE,
    NEGATIVE_ONLY, // −|g|
    POSITIVE_ONLY, // |g|
    NEGATIVE_OFFSET // a few sub-blocks shifted far below zero, narrower than the shift
  }

  /**
   * Scales of the test matrices: weight-like; small enough that the K-quants' d is a subnormal half
   * of a few bits (Q6_K's d is subnormal already at σ = 0.02: max|x|/4064 < 2^-14); large.
   */
  private static final double[] SIGMAS = {SIGMA, 2e-4, 30};

  /**
   * A {@code rows × cols} matrix of scale {@code sigma} whose 256-element blocks cycle through
   * every {@link Kind}.
   */
  private static float[] matrix(int rows, int cols, long seed, double sigma) {
    Random rnd = new Random(seed);
    float[] x = new float[rows * cols];
    Kind[] kinds = Kind.values();
    for (int b = 0; b < x.length / 256; b++) {
      Kind kind = kinds[(int) ((b + seed) % kinds.length)];
      double c = sigma * (0.5 + rnd.nextDouble());
      for (int i = 0; i < 256; i++) {
        double g = rnd.nextGaussian() * sigma;
        x[256 * b + i] =
            (float)
                switch (kind) {
                  case GAUSSIAN -> g;
                  case OUTLIERS ->
                      rnd.nextInt(64) == 0
                          ? (rnd.nextBoolean() ? 1 : -1) * sigma * (10 + 30 * rnd.nextDouble())
                          : g;
                  case ZERO -> 0;
                  case CONSTANT_POSITIVE -> c;
                  case CONSTANT_NEGATIVE -> -c;
                  case NEGATIVE_ONLY -> -Math.abs(g);
                  case POSITIVE_ONLY -> Math.abs(g);
                  case NEGATIVE_OFFSET -> (i / 32) % 3 == 0 ? g / 20 - 10 * sigma : g;
                };
      }
    }
    return x;
  }

  private static float[] gaussian(int n, long seed) {
    Random rnd = new Random(seed);
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (rnd.nextGaussian() * SIGMA);
    }
    return x;
  }

  private static MemorySegment encode(GgmlType type, float[] src) {
    MemorySegment dst = MemorySegment.ofArray(new byte[(int) type.byteSize(src.length)]);
    Quantizer.quantize(type, src, 0, src.length, dst);
    return dst;
  }

  private static double half(MemorySegment seg, long offset) {
    return TensorReference.half(TensorReference.u16(seg, offset));
  }

  /** The distance from the (non-negative) half at {@code offset} to the next half above it. */
  private static double gapAbove(MemorySegment seg, long offset) {
    int bits = TensorReference.u16(seg, offset);
    return TensorReference.half(bits + 1) - TensorReference.half(bits);
  }

  /** The quantizer rounds d down, after this slack for float noise (Quantizer.NOISE). */
  private static final double NOISE = 1 + 0x1p-12;

  /** Sum of squared errors and of squares, for a relative RMS. */
  private record Rms(double err2, double x2) {
    double relative() {
      return Math.sqrt(err2 / x2);
    }
  }

  // ---------------------------------------------------------------- Q4_K

  /**
   * Q4_K, per sub-block j of 32 with lo = min(0, min x), hi = max x, stored d, dmin, 6-bit sc, m;
   * step s = d·sc, origin o = dmin·m, grid [−o, −o + 15s]:
   *
   * <ul>
   *   <li>dmin is max(−lo)/63 rounded down to a half: the largest half ≤ it.
   *   <li>Inside the grid, q = round((x + o)/s) is the nearest level: |x − x̂| ≤ s/2.
   *   <li>Below it, x ≥ lo and o ≥ −lo − max(dmin, 63·gapMin), gapMin being the distance from dmin
   *       to the next half: m = round(−lo/dmin) is within ½ of −lo/dmin, or one less when the
   *       sub-block is too narrow for its minimum to round to q = 0 (which happens only where o >
   *       −lo), or 63 when clamped (−lo ≤ 63·(dmin + gapMin): relative 2^-10 for normal halves, far
   *       more for subnormal ones). So |x − x̂| = −o − x ≤ max(dmin, 63·gapMin).
   *   <li>Above it: sc = round(top/(15d)) with top = hi + o leaves top − 15s ≤ 7.5d; lowering sc by
   *       one (when hi would round below q = 15, i.e. 15s > top) leaves it < 15d; sc clamped at 63
   *       (d is the largest half ≤ max top/945 (+2^-12), so top ≤ 945·(d + gap), plus dmin if m was
   *       lowered) leaves ≤ 945·gap + dmin, gap being the distance from d to the next half. So |x −
   *       x̂| ≤ max(15d, 945·gap) + dmin.
   *   <li>The step is not wider than needed: s ≤ top/15 + d/2 ≤ (hi − lo)/15 + dmin/30 + d/2, so
   *       "half a step" is at most (hi − lo)/30 + dmin/60 + d/4 (hi − lo)/30 being the ideal).
   * </ul>
   *
   * Float rounding in the quantizer and the engine's decoder adds a few ulps of the block's
   * magnitude: slop = 2^-20·(o + 15s + |x|).
   */
  private static Rms checkQ4K(float[] x, int rows, int cols) {
    MemorySegment seg = encode(GgmlType.Q4_K, x);
    FloatTensor t = FloatTensor.of(GgmlType.Q4_K, seg, rows, cols);
    double err2 = 0;
    double x2 = 0;
    for (int b = 0; b < x.length / 256; b++) {
      long block = 144L * b;
      double d = half(seg, block);
      double gap = gapAbove(seg, block);
      double dmin = half(seg, block + 2);
      double gapMin = gapAbove(seg, block + 2);
      double maxNeg = 0;
      for (int i = 0; i < 256; i++) {
        maxNeg = Math.max(maxNeg, -x[256 * b + i]);
      }
      double v = maxNeg / 63;
      assertThat(dmin).as("block %d dmin", b).isLessThanOrEqualTo(v);
      assertThat(dmin + gapMin).as("block %d next half above dmin", b).isGreaterThan(v);
      int[] s12 = new int[12];
      for (int k = 0; k < 12; k++) {
        s12[k] = TensorReference.u8(seg, block + 4 + k);
      }
      double[] ref = TensorReference.decodeQ4K(seg, block);
      for (int j = 0; j < 8; j++) {
        int[] scMin = TensorReference.scaleMin(s12, j);
        double step = d * scMin[0];
        double origin = dmin * scMin[1];
        double lo = 0;
        double hi = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < 32; i++) {
          lo = Math.min(lo, x[256 * b + 32 * j + i]);
          hi = Math.max(hi, x[256 * b + 32 * j + i]);
        }
        double slopBase = 0x1p-20 * (origin + 15 * step + Math.max(Math.abs(lo), Math.abs(hi)));
        assertThat(step)
            .as("block %d sub-block %d step", b, j)
            .isLessThanOrEqualTo((hi - lo) / 15 + dmin / 30 + d / 2 + slopBase);
        for (int i = 0; i < 32; i++) {
          int e = 256 * b + 32 * j + i;
          double xe = x[e];
          double got = t.getFloat(e);
          double want = ref[32 * j + i];
          // The engine's float decoder vs the float64 one: d·sc·q and dmin·m are exact in float;
          // only their difference rounds, by at most half an ulp of the result.
          assertThat(Math.abs(got - want))
              .as("element %d: engine %s vs reference %s", e, got, want)
              .isLessThanOrEqualTo(Math.ulp((float) want) + 0x1p-40);
          double err = Math.abs(xe - want);
          double slop = slopBase + 0x1p-30;
          double bound;
          if (xe < -origin) {
            bound = Math.max(dmin, 63 * gapMin);
          } else if (xe > -origin + 15 * step) {
            bound = Math.max(15 * d, 945 * gap) + dmin;
          } else {
            bound = step / 2;
          }
          assertThat(err)
              .as("element %d (block %d sub-block %d): x %s decoded %s", e, b, j, xe, want)
              .isLessThanOrEqualTo(bound + slop);
          err2 += (xe - got) * (xe - got);
          x2 += xe * xe;
        }
      }
    }
    return new Rms(err2, x2);
  }

  @Test
  void q4_KEveryKindOfBlockStaysWithinTheDerivedBounds() {
    for (double sigma : SIGMAS) {
      for (long seed = 1; seed <= SEEDS; seed++) {
        checkQ4K(matrix(8, 1024, seed, sigma), 8, 1024);
      }
    }
  }

  // ---------------------------------------------------------------- Q6_K

  /**
   * Q6_K, per sub-block j of 16 with M the element of largest magnitude, scale = M/−32, d the
   * largest half ≤ max|scale|/127 (+2^-12), gap the distance from d to the next half, int8 sc, step
   * s = d·sc, levels s·(q − 32) for q in 0..63:
   *
   * <ul>
   *   <li>sc = round(scale/d), or one nearer zero when that step would put M at q = 1, or ±127 when
   *       clamped (|scale| ≤ 127·(d + gap)): |s| ≤ |scale| + d/2 and |s| > |scale| − e with e =
   *       max(d, 127·gap); same sign.
   *   <li>Inside the grid (x/s in [−32.5, 31.5]) q is the nearest level: |x − x̂| ≤ |s|/2.
   *   <li>Outside, on M's side: |x| ≤ 32|scale| < 32(|s| + e), so |x − x̂| = |x| − 32|s| < 32e; on
   *       the other side (|x| past 31.5|s|): |x| − 31|s| ≤ |s| + 32(|scale| − |s|) < |s| + 32e.
   * </ul>
   *
   * The engine's decoder is exact here (d·sc·(q − 32) needs at most 11 + 7 + 5 bits), so it must
   * equal the float64 reference.
   */
  private static Rms checkQ6K(float[] x, int rows, int cols) {
    MemorySegment seg = encode(GgmlType.Q6_K, x);
    FloatTensor t = FloatTensor.of(GgmlType.Q6_K, seg, rows, cols);
    double err2 = 0;
    double x2 = 0;
    for (int b = 0; b < x.length / 256; b++) {
      long block = 210L * b;
      double[] scale = new double[16];
      double amax = 0;
      for (int j = 0; j < 16; j++) {
        float ext = 0;
        for (int i = 0; i < 16; i++) {
          float v = x[256 * b + 16 * j + i];
          if (Math.abs(v) > Math.abs(ext)) {
            ext = v;
          }
        }
        scale[j] = ext / -32.0;
        amax = Math.max(amax, Math.abs(scale[j]));
      }
      double d = half(seg, block + 208);
      double gap = gapAbove(seg, block + 208);
      double dWant = amax / 127 * NOISE;
      assertThat(d).as("block %d d", b).isLessThanOrEqualTo(dWant);
      assertThat(d + gap).as("block %d next half above d", b).isGreaterThan(dWant);
      double narrower = Math.max(d, 127 * gap);
      double[] ref = TensorReference.decodeQ6K(seg, block);
      for (int j = 0; j < 16; j++) {
        int sc = seg.get(ValueLayout.JAVA_BYTE, block + 192 + j);
        double step = d * sc;
        double slop = 0x1p-20 * 32 * Math.abs(scale[j]) + 0x1p-30;
        assertThat(Math.abs(step))
            .as("block %d sub-block %d |step|", b, j)
            .isLessThanOrEqualTo(Math.abs(scale[j]) + d / 2 + slop)
            .isGreaterThan(Math.abs(scale[j]) - narrower - slop);
        if (sc != 0) {
          assertThat(Math.signum(step)).isEqualTo(Math.signum(scale[j]));
        }
        for (int i = 0; i < 16; i++) {
          int e = 256 * b + 16 * j + i;
          double xe = x[e];
          double got = t.getFloat(e);
          double want = ref[16 * j + i];
          assertThat(got).as("element %d: engine vs reference", e).isEqualTo(want);
          double err = Math.abs(xe - want);
          double r = step != 0 ? xe / step : Double.NaN;
          double bound;
          if (step != 0 && r >= -32.5 && r <= 31.5) {
            bound = Math.abs(step) / 2;
          } else {
            bound = Math.abs(step) + 32 * narrower;
          }
          assertThat(err)
              .as("element %d (block %d sub-block %d): x %s decoded %s", e, b, j, xe, want)
              .isLessThanOrEqualTo(bound + slop);
          err2 += (xe - got) * (xe - got);
          x2 += xe * xe;
        }
      }
    }
    return new Rms(err2, x2);
  }

  @Test
  void q6_KEveryKindOfBlockStaysWithinTheDerivedBounds() {
    for (double sigma : SIGMAS) {
      for (long seed = 1; seed <= SEEDS; seed++) {
        checkQ6K(matrix(8, 1024, seed, sigma), 8, 1024);
      }
    }
  }

  // ---------------------------------------------------------------- RMS

  /**
   * On Gaussian weights the error is the rounding error of a uniform grid, RMS = step/√12. Q4_K: a
   * sub-block of 32 spans ≈ 4.1σ (expected range of 32 normal samples), step ≈ 4.1σ/15, RMS ≈
   * 0.079σ; the clamped extremes and the 6-bit scales add a little, so the bound is 0.09σ. Q6_K: a
   * sub-block of 16 has max|x| ≈ 1.77σ, step ≈ 1.77σ/32, RMS ≈ 0.016σ; bound 0.02σ, so Q6_K must be
   * at least 4× more accurate than Q4_K.
   */
  @Test
  void gaussianRmsErrorIsTheGridsRoundingError() {
    double e4 = 0;
    double e6 = 0;
    double x2 = 0;
    for (long seed = 11; seed <= 14; seed++) {
      float[] x = gaussian(16 * 1024, seed);
      Rms q4 = checkQ4K(x, 16, 1024);
      Rms q6 = checkQ6K(x, 16, 1024);
      e4 += q4.err2();
      e6 += q6.err2();
      x2 += q4.x2();
    }
    double rel4 = Math.sqrt(e4 / x2);
    double rel6 = Math.sqrt(e6 / x2);
    System.out.printf("relative RMS error on N(0, σ²): Q4_K %.4f, Q6_K %.4f%n", rel4, rel6);
    assertThat(rel4).as("Q4_K relative RMS").isLessThan(0.09);
    assertThat(rel6).as("Q6_K relative RMS").isLessThan(0.02);
    assertThat(rel6 * 4).isLessThan(rel4);
  }

  // ---------------------------------------------------------------- idempotence

  /**
   * Values already on a grid quantize back to the same bytes: every sub-block's extremes sit on its
   * end levels, so the grid derived again from the decoded values is the stored one. Checked on
   * every kind of block, decoding both with getFloat and with the vectorized dequantize (fma).
   */
  @Test
  void requantizingDecodedValuesReproducesTheBytes() {
    for (GgmlType type : new GgmlType[] {GgmlType.Q4_K, GgmlType.Q6_K}) {
      for (double sigma : SIGMAS) {
        for (long seed = 1; seed <= SEEDS; seed++) {
          int rows = 8;
          int cols = 1024;
          float[] x = matrix(rows, cols, seed, sigma);
          MemorySegment first = encode(type, x);
          FloatTensor t = FloatTensor.of(type, first, rows, cols);
          float[] byElement = new float[x.length];
          float[] byRow = new float[x.length];
          for (int i = 0; i < x.length; i++) {
            byElement[i] = t.getFloat(i);
          }
          for (int r = 0; r < rows; r++) {
            t.dequantizeRow(r, byRow, r * cols);
          }
          for (float[] decoded : new float[][] {byElement, byRow}) {
            MemorySegment again = encode(type, decoded);
            long mismatch = first.mismatch(again);
            assertThat(mismatch)
                .as(
                    "%s σ %s seed %d: first differing byte %d (block %d)",
                    type, sigma, seed, mismatch, mismatch / type.bytesPerBlock())
                .isEqualTo(-1);
          }
        }
      }
    }
  }

  // ---------------------------------------------------------------- errors

  @Test
  void aCountThatIsNotAMultipleOf256NamesTheTypeAndTheCount() {
    for (GgmlType type : new GgmlType[] {GgmlType.Q4_K, GgmlType.Q6_K}) {
      assertThat(Quantizer.canQuantize(type)).isTrue();
      MemorySegment dst = MemorySegment.ofArray(new byte[4096]);
      assertThatThrownBy(() -> Quantizer.quantize(type, new float[300], 0, 300, dst))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining(type.toString())
          .hasMessageContaining("300")
          .hasMessageContaining("256");
    }
  }
}
