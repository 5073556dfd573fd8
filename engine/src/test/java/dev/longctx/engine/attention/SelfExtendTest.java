package dev.longctx.engine.attention;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** SelfExtend (ALGORITHMS.md §2): the position mapping, the two-cache attention, the limits. */
class SelfExtendTest {

  @Test
  void groupSizeOneEqualsPlainRopeAttention() {
    LlamaConfig c = RandomModels.config(256);
    Transformer tr = RandomModels.transformer(c, 1);
    int[] tokens = RandomModels.tokens(150, c.vocabSize(), 2);
    float[][] dense = RandomModels.allLogits(tr, AttentionPolicy.dense(), tokens, 64);
    float[][] se = RandomModels.allLogits(tr, new SelfExtend(1, 16), tokens, 64);
    assertThat(RandomModels.maxRelativeDifference(se, dense)).isLessThan(1e-5); // §2.8 test 1
  }

  @Test
  void windowCoveringEveryKeyEqualsPlainRopeAttention() {
    LlamaConfig c = RandomModels.config(256);
    Transformer tr = RandomModels.transformer(c, 3);
    int[] tokens = RandomModels.tokens(100, c.vocabSize(), 4);
    float[][] dense = RandomModels.allLogits(tr, AttentionPolicy.dense(), tokens, 32);
    float[][] se = RandomModels.allLogits(tr, new SelfExtend(4, 128), tokens, 32);
    assertThat(RandomModels.maxRelativeDifference(se, dense)).isLessThan(1e-5); // §2.8 test 2
  }

  @Test
  void groupRelativePositionContinuesTheNeighborRangeAndGrowsByZeroOrOne() {
    for (int g : new int[] {1, 2, 4, 8}) {
      int w = 8 * g;
      SelfExtend se = new SelfExtend(g, w);
      for (int i = w; i < 12 * w; i++) {
        assertThat(se.relativePosition(i, i - w)).isEqualTo(w); // §2.8 test 3
        int previous = se.relativePosition(i, i - w + 1);
        assertThat(previous).isEqualTo(w - 1);
        for (int d = w; d <= Math.min(i, 10 * w); d++) {
          int rel = se.relativePosition(i, i - d);
          assertThat(rel - previous).isBetween(0, 1);
          previous = rel;
        }
      }
    }
  }

  @Test
  void relativePositionsNeverExceedTheTrainedContextUpToTheMaximumLength() {
    int trained = 64;
    for (int[] gw : new int[][] {{2, 16}, {4, 16}, {4, 32}, {8, 8}, {3, 12}}) {
      SelfExtend se = new SelfExtend(gw[0], gw[1]);
      int max = se.maxContext(trained);
      assertThat(max).isEqualTo((trained - gw[1]) * gw[0] + gw[1]);
      int highest = 0;
      for (int i = 0; i < max; i++) {
        for (int j = 0; j <= i; j++) {
          highest = Math.max(highest, se.relativePosition(i, j));
        }
      }
      assertThat(highest).as("G=%d w=%d", gw[0], gw[1]).isEqualTo(trained - 1); // §2.8 test 4
      int beyond = max + gw[0] - 1;
      assertThat(se.relativePosition(beyond, 0)).isGreaterThan(trained - 1);
    }
  }

  @Test
  void llamaCppModeKeepsChunkAlignedCachePositions() {
    // §2.8 test 7: G = 4, w = 8, 40 tokens cached; the query at index 39 sees keys 0..31 grouped
    // and 32..39 uncompressed.
    SelfExtend se = new SelfExtend(4, 8, SelfExtendMode.LLAMACPP);
    int i = 39;
    int[] positions = new int[40];
    for (int j = 0; j < 40; j++) {
      positions[j] = se.groupQueryPosition(i) - se.relativePosition(i, j);
    }
    int[] expected = new int[40];
    for (int j = 0; j < 32; j++) {
      expected[j] = j / 4;
    }
    for (int j = 32; j < 40; j++) {
      expected[j] = 8 + (j - 32);
    }
    assertThat(positions).containsExactly(expected);
    assertThat(se.groupQueryPosition(i)).isEqualTo(15);
  }

  @Test
  void twoCacheAttentionEqualsOneSoftmaxOverTheMergedLogitMapInFloat64() {
    for (SelfExtendMode mode : SelfExtendMode.values()) {
      checkAgainstWhereMerge(new SelfExtend(4, 16, mode), 150);
      checkAgainstWhereMerge(new SelfExtend(3, 9, mode), 97);
    }
  }

  /**
   * {@link SequenceAttention} on caches built as the transformer builds them, against LongLM's
   * single-softmax {@code where} merge (§2.3) with every rotation done in double.
   */
  private static void checkAgainstWhereMerge(SelfExtend se, int len) {
    LlamaConfig c = RandomModels.config(1024);
    int heads = c.heads();
    int kvHeads = c.kvHeads();
    int d = c.headDim();
    SplittableRandom r = new SplittableRandom(len);
    float[] q = random(r, len * heads * d, 1.5);
    float[] k = random(r, len * kvHeads * d, 1.5);
    float[] v = random(r, len * kvHeads * d, 1.0);
    Rope rope = new Rope(d, c.ropeTheta(), c.ropeLayout(), null);
    float[] qn = q.clone();
    float[] qg = q.clone();
    float[] kn = k.clone();
    float[] kg = k.clone();
    for (int i = 0; i < len; i++) {
      rope.apply(qn, i * heads * d, heads, i);
      rope.apply(qg, i * heads * d, heads, se.groupQueryPosition(i));
      rope.apply(kn, i * kvHeads * d, kvHeads, i);
      rope.apply(kg, i * kvHeads * d, kvHeads, se.groupKeyPosition(i));
    }
    SequenceAttention att = new SequenceAttention(se, c, len);
    float[] out = new float[len * heads * d];
    att.append(0, 0, len, kn, kg, null);
    att.attend(
        0,
        0,
        len,
        qn,
        qg,
        new float[][] {kn},
        new float[][] {kg},
        new float[][] {v},
        Attention.CONTIGUOUS,
        null,
        out);

    double scale = 1 / Math.sqrt(d);
    for (int i = 0; i < len; i++) {
      int c0 =
          se.mode() == SelfExtendMode.EXACT ? 0 : se.neighborWindow() * (i / se.neighborWindow());
      for (int h = 0; h < heads; h++) {
        int kh = h / c.groupSize();
        double[] z = new double[i + 1];
        for (int j = 0; j <= i; j++) {
          boolean neighbor =
              se.mode() == SelfExtendMode.EXACT ? i - j < se.neighborWindow() : j >= c0;
          int qPos;
          int kPos;
          if (neighbor) {
            qPos = i;
            kPos = j;
          } else if (se.mode() == SelfExtendMode.EXACT) {
            qPos = i / se.groupSize() + se.neighborWindow() - se.neighborWindow() / se.groupSize();
            kPos = j / se.groupSize();
          } else {
            qPos = c0 / se.groupSize() + (i - c0);
            kPos = j / se.groupSize();
          }
          double[] qr = rotate(q, (i * heads + h) * d, d, qPos, c.ropeTheta());
          double[] kr = rotate(k, (j * kvHeads + kh) * d, d, kPos, c.ropeTheta());
          double dot = 0;
          for (int e = 0; e < d; e++) {
            dot += qr[e] * kr[e];
          }
          z[j] = dot * scale;
        }
        double max = Arrays.stream(z).max().orElseThrow();
        double sum = 0;
        double[] o = new double[d];
        for (int j = 0; j <= i; j++) {
          double p = Math.exp(z[j] - max);
          sum += p;
          for (int e = 0; e < d; e++) {
            o[e] += p * v[(j * kvHeads + kh) * d + e];
          }
        }
        for (int e = 0; e < d; e++) {
          assertThat((double) out[(i * heads + h) * d + e])
              .as("%s i=%d h=%d", se, i, h)
              .isCloseTo(o[e] / sum, within(2e-5));
        }
      }
    }
  }

  /** Interleaved-pair RoPE in double (θ^(−2m/d) per pair m). */
  private static double[] rotate(float[] x, int off, int d, int pos, double theta) {
    double[] out = new double[d];
    for (int m = 0; m < d / 2; m++) {
      double a = pos * Math.pow(theta, -2.0 * m / d);
      double x0 = x[off + 2 * m];
      double x1 = x[off + 2 * m + 1];
      out[2 * m] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[2 * m + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
    return out;
  }

  private static float[] random(SplittableRandom r, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (RandomModels.gaussian(r) * scale);
    }
    return v;
  }

  @Test
  void decodeEqualsPrefillWithBothKeyCaches() {
    LlamaConfig c = RandomModels.config(64);
    Transformer tr = RandomModels.transformer(c, 5);
    for (SelfExtendMode mode : SelfExtendMode.values()) {
      SelfExtend se = new SelfExtend(4, 16, mode);
      int[] tokens = RandomModels.tokens(170, c.vocabSize(), 6);
      Sequence whole = tr.newSequence(tokens.length, se);
      float[] expected = tr.prefill(whole, tokens);
      Sequence stepwise = tr.newSequence(tokens.length, se);
      tr.prefill(stepwise, Arrays.copyOf(tokens, tokens.length - 1));
      float[] actual = tr.decode(stepwise, tokens[tokens.length - 1]);
      // §2.8 test 6, to 1e-5 of the largest logit (prefill and decode run different GEMM shapes).
      assertThat(
              RandomModels.maxRelativeDifference(new float[][] {actual}, new float[][] {expected}))
          .isLessThan(1e-5);
    }
  }

  @Test
  void groupedQueryAttentionAppliesTheMappingPerKvHead() {
    // §2.8 test 8: a GQA model equals the multi-head model whose K/V heads are repeated.
    LlamaConfig gqa = RandomModels.config(64);
    Transformer tr = RandomModels.transformer(gqa, 9);
    int[] tokens = RandomModels.tokens(120, gqa.vocabSize(), 10);
    SelfExtend se = new SelfExtend(4, 16);
    float[][] a = RandomModels.allLogits(tr, se, tokens, 50);
    Transformer mha = RandomModels.repeatKvHeads(tr);
    float[][] b = RandomModels.allLogits(mha, se, tokens, 50);
    assertThat(RandomModels.maxRelativeDifference(a, b)).isLessThan(1e-5);
  }

  @Test
  void promptsBeyondTheExtendedContextFailNamingTheLimit() {
    LlamaConfig c = RandomModels.config(64);
    Transformer tr = RandomModels.transformer(c, 1);
    SelfExtend se = new SelfExtend(4, 16);
    assertThat(tr.withAttention(se).maxContext()).isEqualTo(208);
    tr.newSequence(208, se);
    assertThatThrownBy(() -> tr.newSequence(209, se))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("209 tokens exceed SelfExtend's maximum context 208")
        .hasMessageContaining("(L_train 64 − w 16)·G 4 + w 16");
    assertThatThrownBy(() -> new SelfExtend(4, 10))
        .hasMessageContaining("must be a multiple of the group size G = 4");
    assertThatThrownBy(() -> tr.withAttention(new SelfExtend(4, 64)))
        .hasMessageContaining("must be smaller than the trained context 64");
  }

  @Test
  void keyCacheKeepsBothRotationsWithExactByteAccounting() {
    LlamaConfig c = RandomModels.config(64);
    Transformer tr = RandomModels.transformer(c, 1);
    Sequence dense = tr.newSequence(100);
    Sequence se = tr.newSequence(100, new SelfExtend(4, 16));
    tr.prefill(se, RandomModels.tokens(40, c.vocabSize(), 1));
    long perToken = 2L * c.layers() * c.kvDim() * Float.BYTES;
    assertThat(dense.cache().bytesPerToken()).isEqualTo(perToken);
    assertThat(se.cache().bytesPerToken()).isEqualTo(perToken * 3 / 2);
    assertThat(se.cache().bytesResident()).isEqualTo(40 * perToken * 3 / 2);
    assertThat(se.cache().bytesAllocated()).isEqualTo(se.cache().capacity() * perToken * 3 / 2);
    assertThat(se.bytesAllocated()).isEqualTo(se.cache().bytesAllocated());
  }
}
