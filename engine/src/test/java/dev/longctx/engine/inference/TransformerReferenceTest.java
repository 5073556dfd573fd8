package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.GgufModelLoader;
import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.SyntheticModel;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole forward pass against a scalar float64 transformer written straight from the model
 * definition (RMSNorm, RoPE in both layouts with Llama-3.1 scaling, GQA causal softmax attention,
 * SwiGLU, q/k/v biases), on random-weight models of small shapes written and read back through
 * GGUF. Prefill crosses a chunk boundary; decode steps follow.
 */
class TransformerReferenceTest {

  @TempDir Path tmp;

  @Test
  void llamaWithGqaTiedEmbeddingsAndLlama3RopeMatchesFloat64Reference() throws IOException {
    LlamaConfig c =
        new LlamaConfig(
            "llama",
            64,
            160,
            2,
            8,
            2,
            8,
            300,
            512,
            1e-5f,
            10000f,
            Rope.Layout.INTERLEAVED,
            new Rope.Llama3Scaling(8f, 1f, 4f, 64));
    check(c, true, GgmlType.F32, 2e-3);
  }

  @Test
  void qwen2WithBiasesRotateHalfAndSeparateOutputMatchesFloat64Reference() throws IOException {
    LlamaConfig c =
        new LlamaConfig(
            "qwen2",
            96,
            128,
            2,
            6,
            2,
            16,
            320,
            512,
            1e-6f,
            1000000f,
            Rope.Layout.ROTATE_HALF,
            null);
    check(c, false, GgmlType.F32, 2e-3);
  }

  @Test
  void q8_0WeightsStayCloseToTheFloat64ReferenceOfTheirDequantizedValues() throws IOException {
    LlamaConfig c =
        new LlamaConfig(
            "llama", 64, 128, 2, 4, 4, 16, 280, 512, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);
    // Activations are quantized to 8 bits per 32-block for the integer dot products.
    check(c, true, GgmlType.Q8_0, 5e-2);
  }

  private void check(LlamaConfig c, boolean tied, GgmlType type, double tolerance)
      throws IOException {
    Path file = tmp.resolve(c.architecture() + "-" + type + ".gguf");
    GgufModelWriter.write(
        file,
        "reference",
        SyntheticModel.source(c, tied, 11),
        SyntheticModel.vocabulary(c.vocabSize()),
        type);
    try (GgufFile gguf = GgufFile.open(file)) {
      LlamaConfig loaded = GgufModelLoader.config(gguf);
      LlamaWeights w = GgufModelLoader.weights(gguf, loaded);
      Transformer model = new Transformer(loaded, w);
      Reference ref = new Reference(loaded, w, c.ropeScaling());
      SplittableRandom rnd = new SplittableRandom(3);
      int promptLength = Transformer.DEFAULT_CHUNK + 21;
      int[] tokens = new int[promptLength + 3];
      for (int i = 0; i < tokens.length; i++) {
        tokens[i] = rnd.nextInt(c.vocabSize());
      }
      int[] prompt = Arrays.copyOf(tokens, promptLength);
      Sequence seq = model.newSequence(tokens.length);
      assertClose(model.prefill(seq, prompt), ref.logits(tokens, promptLength), tolerance);
      for (int t = promptLength; t < tokens.length; t++) {
        assertClose(model.decode(seq, tokens[t]), ref.logits(tokens, t + 1), tolerance);
      }
    }
  }

  private static void assertClose(float[] actual, double[] expected, double tolerance) {
    double scale = 0;
    for (double e : expected) {
      scale = Math.max(scale, Math.abs(e));
    }
    for (int i = 0; i < expected.length; i++) {
      assertThat((double) actual[i])
          .as("logit %d (max |logit| %.3f)", i, scale)
          .isCloseTo(
              expected[i], org.assertj.core.api.Assertions.within(tolerance * Math.max(1, scale)));
    }
  }

  /** A float64 transformer, recomputed from scratch for every query (no cache, no tricks). */
  private static final class Reference {
    private final LlamaConfig c;
    private final LlamaWeights w;
    private final double[] invFreq;

    Reference(LlamaConfig c, LlamaWeights w, Rope.Llama3Scaling scaling) {
      this.c = c;
      this.w = w;
      invFreq = new double[c.headDim() / 2];
      for (int i = 0; i < invFreq.length; i++) {
        double f = Math.pow(c.ropeTheta(), -2.0 * i / c.headDim());
        if (scaling != null) {
          // Llama-3.1 apply_scaling: keep high frequencies, divide low ones, blend between.
          double wavelen = 2 * Math.PI / f;
          double low = scaling.originalMaxPositions() / scaling.lowFreqFactor();
          double high = scaling.originalMaxPositions() / scaling.highFreqFactor();
          if (wavelen > low) {
            f /= scaling.factor();
          } else if (wavelen >= high) {
            double smooth =
                (scaling.originalMaxPositions() / wavelen - scaling.lowFreqFactor())
                    / (scaling.highFreqFactor() - scaling.lowFreqFactor());
            f = (1 - smooth) * f / scaling.factor() + smooth * f;
          }
        }
        invFreq[i] = f;
      }
    }

    /** Logits after {@code tokens[0 .. n)}. */
    double[] logits(int[] tokens, int n) {
      int d = c.dim();
      double[][] x = new double[n][d];
      for (int t = 0; t < n; t++) {
        for (int i = 0; i < d; i++) {
          x[t][i] = w.tokenEmbedding().getFloat((long) tokens[t] * d + i);
        }
      }
      for (LlamaWeights.Layer l : w.layers()) {
        double[][] q = new double[n][];
        double[][] k = new double[n][];
        double[][] v = new double[n][];
        for (int t = 0; t < n; t++) {
          double[] h = rmsnorm(x[t], l.attnNorm());
          q[t] = rope(add(matvec(l.wq(), h), l.bq()), t, c.heads());
          k[t] = rope(add(matvec(l.wk(), h), l.bk()), t, c.kvHeads());
          v[t] = add(matvec(l.wv(), h), l.bv());
        }
        for (int t = 0; t < n; t++) {
          double[] att = new double[c.queryDim()];
          for (int h = 0; h < c.heads(); h++) {
            int kvh = h / c.groupSize();
            double[] scores = new double[t + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int s = 0; s <= t; s++) {
              double dot = 0;
              for (int j = 0; j < c.headDim(); j++) {
                dot += q[t][h * c.headDim() + j] * k[s][kvh * c.headDim() + j];
              }
              scores[s] = dot / Math.sqrt(c.headDim());
              max = Math.max(max, scores[s]);
            }
            double sum = 0;
            for (int s = 0; s <= t; s++) {
              scores[s] = Math.exp(scores[s] - max);
              sum += scores[s];
            }
            for (int s = 0; s <= t; s++) {
              for (int j = 0; j < c.headDim(); j++) {
                att[h * c.headDim() + j] += scores[s] / sum * v[s][kvh * c.headDim() + j];
              }
            }
          }
          double[] o = matvec(l.wo(), att);
          for (int i = 0; i < d; i++) {
            x[t][i] += o[i];
          }
          double[] h2 = rmsnorm(x[t], l.ffnNorm());
          double[] gate = matvec(l.wGate(), h2);
          double[] up = matvec(l.wUp(), h2);
          for (int i = 0; i < gate.length; i++) {
            gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
          }
          double[] down = matvec(l.wDown(), gate);
          for (int i = 0; i < d; i++) {
            x[t][i] += down[i];
          }
        }
      }
      return matvec(w.output(), rmsnorm(x[n - 1], w.outputNorm()));
    }

    private double[] rmsnorm(double[] x, float[] weight) {
      double ss = 0;
      for (double v : x) {
        ss += v * v;
      }
      double scale = 1 / Math.sqrt(ss / x.length + c.rmsEps());
      double[] out = new double[x.length];
      for (int i = 0; i < x.length; i++) {
        out[i] = x[i] * scale * weight[i];
      }
      return out;
    }

    private double[] rope(double[] x, int pos, int heads) {
      int hd = c.headDim();
      int half = hd / 2;
      for (int h = 0; h < heads; h++) {
        for (int i = 0; i < half; i++) {
          boolean interleaved = c.ropeLayout() == Rope.Layout.INTERLEAVED;
          int a = h * hd + (interleaved ? 2 * i : i);
          int b = h * hd + (interleaved ? 2 * i + 1 : i + half);
          double angle = pos * invFreq[i];
          double x0 = x[a];
          double x1 = x[b];
          x[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
          x[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
        }
      }
      return x;
    }

    private static double[] matvec(FloatTensor m, double[] x) {
      double[] y = new double[m.rows()];
      for (int r = 0; r < m.rows(); r++) {
        double sum = 0;
        for (int i = 0; i < m.cols(); i++) {
          sum += m.getFloat((long) r * m.cols() + i) * x[i];
        }
        y[r] = sum;
      }
      return y;
    }

    private static double[] add(double[] y, float[] bias) {
      if (bias != null) {
        for (int i = 0; i < y.length; i++) {
          y[i] += bias[i];
        }
      }
      return y;
    }
  }
}
