package dev.longctx.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Rotary position embedding. {@link Layout#INTERLEAVED} rotates pairs {@code (2i, 2i+1)} (llama2.c,
 * GGUF Llama after the converter's permutation); {@link Layout#ROTATE_HALF} rotates pairs {@code
 * (i, i + d/2)} (Hugging Face checkpoints, GGUF Qwen2 "NEOX" style). Frequencies {@code θ^(-2i/d)},
 * optionally rescaled by Llama-3.1 scaling.
 *
 * <p>Angles {@code pos · freq_i} are formed in double from double frequencies, so they stay exact
 * to float precision at positions in the millions (a float angle at position 10⁶ is off by up to
 * 0.03 rad). Each thread caches the cos/sin of the last position it used: the layers of one token
 * hit the cache, and the next position is reached by the angle-addition recurrence in double,
 * re-anchored on exact {@link Math#cos}/{@link Math#sin} every {@value #ANCHOR} positions.
 * Instances are thread-safe.
 */
public final class Rope {

  /** Which elements of a head form a rotated pair. */
  public enum Layout {
    INTERLEAVED,
    ROTATE_HALF
  }

  /**
   * Llama-3.1 frequency scaling ({@code rope_scaling.rope_type = "llama3"}): wavelengths above
   * {@code originalMaxPositions / lowFreqFactor} are divided by {@code factor}, those below {@code
   * originalMaxPositions / highFreqFactor} are kept, and the band between is interpolated.
   */
  public record Llama3Scaling(
      float factor, float lowFreqFactor, float highFreqFactor, int originalMaxPositions) {
    public Llama3Scaling {
      if (!(factor > 0) || Float.isInfinite(factor)) {
        throw new IllegalArgumentException("factor must be > 0 and finite, got " + factor);
      }
      if (!(lowFreqFactor > 0)) {
        throw new IllegalArgumentException("lowFreqFactor must be > 0, got " + lowFreqFactor);
      }
      if (!(highFreqFactor > lowFreqFactor) || Float.isInfinite(highFreqFactor)) {
        throw new IllegalArgumentException(
            "highFreqFactor must be > lowFreqFactor ("
                + lowFreqFactor
                + ") and finite, got "
                + highFreqFactor);
      }
      if (originalMaxPositions <= 0) {
        throw new IllegalArgumentException(
            "originalMaxPositions must be > 0, got " + originalMaxPositions);
      }
    }
  }

  /** Positions reached by recurrence before cos/sin are recomputed exactly. */
  static final int ANCHOR = 32;

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

  /** Swaps adjacent lanes (2i ↔ 2i+1): the partner of each element in the interleaved layout. */
  private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(F, i -> i ^ 1);

  private final int headDim;
  private final Layout layout;
  private final double[] invFreq;
  private final double[] stepCos;
  private final double[] stepSin;
  private final ThreadLocal<Angles> angles;

  public Rope(int headDim, float theta, Layout layout, Llama3Scaling scaling) {
    this(headDim, theta, layout, scaling, null);
  }

  /**
   * RoPE whose frequency i is divided by {@code freqFactors[i]} (GGUF {@code rope_freqs.weight},
   * the form in which llama.cpp's converter stores Llama-3.1 scaling); {@code freqFactors} null
   * means none.
   */
  public static Rope withFreqFactors(int headDim, float theta, Layout layout, float[] freqFactors) {
    return new Rope(headDim, theta, layout, null, freqFactors);
  }

  private Rope(
      int headDim, float theta, Layout layout, Llama3Scaling scaling, float[] freqFactors) {
    if (freqFactors != null && freqFactors.length != headDim / 2) {
      throw new IllegalArgumentException(
          "rope frequency factors have "
              + freqFactors.length
              + " entries, expected headDim / 2 = "
              + headDim / 2);
    }
    if (headDim <= 0 || headDim % 2 != 0) {
      throw new IllegalArgumentException("headDim must be even and > 0, got " + headDim);
    }
    if (!(theta > 1) || Float.isInfinite(theta)) {
      throw new IllegalArgumentException("theta must be > 1 and finite, got " + theta);
    }
    if (layout == null) {
      throw new IllegalArgumentException("layout must not be null");
    }
    this.headDim = headDim;
    this.layout = layout;
    int half = headDim / 2;
    this.invFreq = new double[half];
    this.stepCos = new double[half];
    this.stepSin = new double[half];
    for (int i = 0; i < half; i++) {
      double freq = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
      if (scaling != null) {
        freq = llama3Scale(freq, scaling);
      }
      if (freqFactors != null) {
        freq /= freqFactors[i];
      }
      invFreq[i] = freq;
      stepCos[i] = Math.cos(freq);
      stepSin[i] = Math.sin(freq);
    }
    this.angles = ThreadLocal.withInitial(() -> new Angles(half, layout));
  }

  /** Llama-3.1 {@code apply_scaling} of one frequency, in double. */
  private static double llama3Scale(double freq, Llama3Scaling s) {
    double lowFreqWavelen = s.originalMaxPositions() / (double) s.lowFreqFactor();
    double highFreqWavelen = s.originalMaxPositions() / (double) s.highFreqFactor();
    double wavelen = 2 * Math.PI / freq;
    if (wavelen < highFreqWavelen) {
      return freq;
    }
    if (wavelen > lowFreqWavelen) {
      return freq / s.factor();
    }
    double smooth =
        (s.originalMaxPositions() / wavelen - s.lowFreqFactor())
            / (s.highFreqFactor() - s.lowFreqFactor());
    return (1 - smooth) * freq / s.factor() + smooth * freq;
  }

  public int headDim() {
    return headDim;
  }

  public Layout layout() {
    return layout;
  }

  /** The (scaled) angular frequency of pair i, in radians per position. */
  public double frequency(int i) {
    return invFreq[i];
  }

  /**
   * Rotates {@code nHeads} consecutive heads starting at {@code x[offset]} to position {@code pos}.
   */
  public void apply(float[] x, int offset, int nHeads, int pos) {
    Angles a = anglesAt(pos);
    for (int h = 0; h < nHeads; h++) {
      rotate(x, offset + h * headDim, a);
    }
  }

  /**
   * Rotates {@code count} tokens, token t holding {@code nHeads} consecutive heads at {@code
   * x[offset + t · tokenStride]}, to position {@code positions[posOffset + t]}. Runs of consecutive
   * positions (a prefill chunk) cost one recurrence step per token.
   */
  public void apply(
      float[] x,
      int offset,
      int tokenStride,
      int nHeads,
      int[] positions,
      int posOffset,
      int count) {
    for (int t = 0; t < count; t++) {
      apply(x, offset + t * tokenStride, nHeads, positions[posOffset + t]);
    }
  }

  private Angles anglesAt(int pos) {
    if (pos < 0) {
      throw new IllegalArgumentException("pos must be >= 0, got " + pos);
    }
    Angles a = angles.get();
    if (pos != a.pos) {
      if (pos == a.pos + 1 && pos % ANCHOR != 0) {
        a.advance(stepCos, stepSin);
      } else {
        a.exact(pos, invFreq);
      }
      a.pos = pos;
      a.publish();
    }
    return a;
  }

  private void rotate(float[] x, int base, Angles a) {
    int half = headDim / 2;
    int i = 0;
    if (layout == Layout.ROTATE_HALF) {
      for (int bound = F.loopBound(half); i < bound; i += F.length()) {
        FloatVector x0 = FloatVector.fromArray(F, x, base + i);
        FloatVector x1 = FloatVector.fromArray(F, x, base + half + i);
        FloatVector c = FloatVector.fromArray(F, a.cos, i);
        FloatVector s = FloatVector.fromArray(F, a.sin, i);
        x0.mul(c).sub(x1.mul(s)).intoArray(x, base + i);
        x0.mul(s).add(x1.mul(c)).intoArray(x, base + half + i);
      }
      for (; i < half; i++) {
        float x0 = x[base + i];
        float x1 = x[base + half + i];
        x[base + i] = x0 * a.cos[i] - x1 * a.sin[i];
        x[base + half + i] = x0 * a.sin[i] + x1 * a.cos[i];
      }
    } else {
      // cos and sin are expanded to headDim lanes, sin signed (−sin, +sin) per pair:
      // out = x·cos + swapPairs(x)·sin.
      for (int bound = F.loopBound(headDim); i < bound; i += F.length()) {
        FloatVector v = FloatVector.fromArray(F, x, base + i);
        FloatVector c = FloatVector.fromArray(F, a.cos, i);
        FloatVector s = FloatVector.fromArray(F, a.sin, i);
        v.mul(c).add(v.rearrange(SWAP_PAIRS).mul(s)).intoArray(x, base + i);
      }
      for (; i < headDim; i += 2) {
        float x0 = x[base + i];
        float x1 = x[base + i + 1];
        float c = a.cos[i];
        float s = a.sin[i + 1];
        x[base + i] = x0 * c - x1 * s;
        x[base + i + 1] = x0 * s + x1 * c;
      }
    }
  }

  /** One thread's cos/sin of one position: double state, float copies in the layout's form. */
  private static final class Angles {
    final double[] cd;
    final double[] sd;
    final float[] cos;
    final float[] sin;
    final boolean interleaved;
    int pos = Integer.MIN_VALUE;

    Angles(int half, Layout layout) {
      cd = new double[half];
      sd = new double[half];
      interleaved = layout == Layout.INTERLEAVED;
      cos = new float[interleaved ? 2 * half : half];
      sin = new float[interleaved ? 2 * half : half];
    }

    void exact(int p, double[] invFreq) {
      for (int i = 0; i < cd.length; i++) {
        double angle = p * invFreq[i];
        cd[i] = Math.cos(angle);
        sd[i] = Math.sin(angle);
      }
    }

    /** cos/sin of (p + 1)·f from those of p·f: the angle-addition formulas. */
    void advance(double[] stepCos, double[] stepSin) {
      for (int i = 0; i < cd.length; i++) {
        double c = cd[i];
        double s = sd[i];
        cd[i] = c * stepCos[i] - s * stepSin[i];
        sd[i] = s * stepCos[i] + c * stepSin[i];
      }
    }

    void publish() {
      if (interleaved) {
        for (int i = 0; i < cd.length; i++) {
          float c = (float) cd[i];
          float s = (float) sd[i];
          cos[2 * i] = c;
          cos[2 * i + 1] = c;
          sin[2 * i] = -s;
          sin[2 * i + 1] = s;
        }
      } else {
        for (int i = 0; i < cd.length; i++) {
          cos[i] = (float) cd[i];
          sin[i] = (float) sd[i];
        }
      }
    }
  }
}
