package dev.longctx.engine.kernel;

/**
 * Rotary position embedding. {@link Layout#INTERLEAVED} rotates pairs {@code (2i, 2i+1)} (llama2.c,
 * GGUF Llama after the converter's permutation); {@link Layout#ROTATE_HALF} rotates pairs {@code
 * (i, i + d/2)} (Hugging Face checkpoints, GGUF Qwen2 "NEOX" style). Frequencies {@code θ^(-2i/d)},
 * optionally rescaled by Llama-3.1 scaling.
 */
public final class Rope {

  /** Which elements of a head form a rotated pair. */
  public enum Layout {
    INTERLEAVED,
    ROTATE_HALF
  }

  /** Llama-3.1 frequency scaling ({@code rope_scaling.rope_type = "llama3"}). */
  public record Llama3Scaling(
      float factor, float lowFreqFactor, float highFreqFactor, int originalMaxPositions) {}

  private final int headDim;
  private final Layout layout;
  private final float[] invFreq;

  public Rope(int headDim, float theta, Layout layout, Llama3Scaling scaling) {
    this.headDim = headDim;
    this.layout = layout;
    this.invFreq = new float[headDim / 2];
    for (int i = 0; i < headDim / 2; i++) {
      double freq = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
      if (scaling != null) {
        double lowFreqWavelen = scaling.originalMaxPositions() / scaling.lowFreqFactor();
        double highFreqWavelen = scaling.originalMaxPositions() / scaling.highFreqFactor();
        double wavelen = 2 * Math.PI / freq;
        if (wavelen > lowFreqWavelen) {
          freq = freq / scaling.factor();
        } else if (wavelen >= highFreqWavelen) {
          double smooth =
              (scaling.originalMaxPositions() / wavelen - scaling.lowFreqFactor())
                  / (scaling.highFreqFactor() - scaling.lowFreqFactor());
          freq = (1 - smooth) * freq / scaling.factor() + smooth * freq;
        }
      }
      invFreq[i] = (float) freq;
    }
  }

  public int headDim() {
    return headDim;
  }

  public Layout layout() {
    return layout;
  }

  /**
   * Rotates {@code nHeads} consecutive heads starting at {@code x[offset]} to position {@code pos}.
   */
  public void apply(float[] x, int offset, int nHeads, int pos) {
    int half = headDim / 2;
    for (int i = 0; i < half; i++) {
      double angle = (double) pos * invFreq[i];
      float cos = (float) Math.cos(angle);
      float sin = (float) Math.sin(angle);
      for (int h = 0; h < nHeads; h++) {
        int base = offset + h * headDim;
        int a = layout == Layout.INTERLEAVED ? base + 2 * i : base + i;
        int b = layout == Layout.INTERLEAVED ? base + 2 * i + 1 : base + i + half;
        float x0 = x[a];
        float x1 = x[b];
        x[a] = x0 * cos - x1 * sin;
        x[b] = x0 * sin + x1 * cos;
      }
    }
  }
}
