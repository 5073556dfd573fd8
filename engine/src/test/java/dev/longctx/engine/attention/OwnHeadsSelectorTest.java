package dev.longctx.engine.attention;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The two-stage own-heads selector (ALGORITHMS.md §5.2 with §3.3 page pruning, §5.1 extras). */
class OwnHeadsSelectorTest {

  private static final int HEADS = 8;
  private static final int KV_HEADS = 2;
  private static final int D = 32;

  @Test
  void withoutPruningTheFreeSlotsHoldTheTopOfTheFloat64OwnHeadsScore() {
    // k = 32 keeps 2·⌈32/16⌉ + 2 = 6 pages ≥ ⌈90/16⌉: every key is a candidate, no pruning.
    int len = 90;
    int k = 32;
    SplittableRandom r = new SplittableRandom(1);
    float[] keys = gaussian(r, len * KV_HEADS * D, 1);
    float[] q = gaussian(r, HEADS * D, 1);
    OwnHeadsSelector sel = selector(null, len, keys);
    int[] chosen = sel.select(0, len - 1, k, q, null, 0, false);

    double[] p = referenceScores(q, keys, len);
    int sinks = k / 4; // min(SINKS, k/4) = 4 and min(LOCAL, k/4) = 8
    int local = k / 4;
    assertThat(chosen).hasSize(k).isSorted();
    for (int s = 0; s < Math.min(OwnHeadsSelector.SINKS, sinks); s++) {
      assertThat(chosen).contains(s);
    }
    for (int s = len - Math.min(OwnHeadsSelector.LOCAL, local); s < len; s++) {
      assertThat(chosen).contains(s);
    }
    double worstChosen = Double.POSITIVE_INFINITY;
    double bestLeft = Double.NEGATIVE_INFINITY;
    for (int s = 4; s < len - 8; s++) {
      if (Arrays.binarySearch(chosen, s) >= 0) {
        worstChosen = Math.min(worstChosen, p[s]);
      } else {
        bestLeft = Math.max(bestLeft, p[s]);
      }
    }
    assertThat(worstChosen).isGreaterThanOrEqualTo(bestLeft - 1e-6);
  }

  @Test
  void pagePruningStillFindsAStrongKeyFarBackAndKeepsTheForcedTokens() {
    int len = 4000;
    int k = 64;
    int needle = 1234;
    for (SelfExtend se : new SelfExtend[] {null, new SelfExtend(4, 128)}) {
      SplittableRandom r = new SplittableRandom(2);
      float[] keys = gaussian(r, len * KV_HEADS * D, 1);
      // Every head of a group asks the same direction u_g; the needle's key points along it.
      float[] q = new float[HEADS * D];
      for (int g = 0; g < KV_HEADS; g++) {
        float[] u = gaussian(r, D, 1);
        double norm = Math.sqrt(IntStream.range(0, D).mapToDouble(e -> u[e] * u[e]).sum());
        for (int h = 0; h < HEADS / KV_HEADS; h++) {
          System.arraycopy(u, 0, q, (g * HEADS / KV_HEADS + h) * D, D);
        }
        for (int e = 0; e < D; e++) {
          keys[(needle * KV_HEADS + g) * D + e] = (float) (10 * u[e] / norm);
        }
      }
      OwnHeadsSelector sel = selector(se, len, keys);
      int[] chosen = sel.select(0, len - 1, k, q, q, 0, false);
      assertThat(sel.select(0, len - 1, k, q, q, 0, true)).containsExactly(chosen);
      assertThat(chosen).as("%s", se).hasSize(k).isSorted().doesNotHaveDuplicates();
      assertThat(chosen[chosen.length - 1]).isEqualTo(len - 1);
      assertThat(chosen).contains(needle, 0, 1, 2, 3, len - k / 4); // k/4 local tokens
    }
  }

  @Test
  void groupScoresEqualOneHeadAtATimeAndPageBoundsBoundEveryKey() {
    SplittableRandom r = new SplittableRandom(3);
    int len = 100;
    float[] keys = gaussian(r, len * KV_HEADS * D, 2);
    float[] q = gaussian(r, HEADS * D, 1);
    QuantizedKeys qk = new QuantizedKeys(KV_HEADS, D, len);
    BlockSummaries pages = new BlockSummaries(KV_HEADS, D, 16, len, false);
    for (int s = 0; s < len; s++) {
      qk.put(s, keys, s * KV_HEADS * D);
      pages.put(s, keys, s * KV_HEADS * D);
    }
    int group = HEADS / KV_HEADS;
    float[] grouped = new float[group * 90];
    float[] one = new float[90];
    for (int g = 0; g < KV_HEADS; g++) {
      qk.scoresGroup(q, g * group * D, group, g, 7, 97, 0.5f, grouped, 0, 90);
      for (int h = 0; h < group; h++) {
        qk.scores(q, (g * group + h) * D, g, 7, 97, 0.5f, one, 0);
        for (int s = 0; s < 90; s++) {
          assertThat(grouped[h * 90 + s]).isCloseTo(one[s], within(1e-4f));
        }
      }
      // §3.5 test 5 at a vectorized head size, partial last page included.
      float[] bound = new float[7];
      for (int h = g * group; h < (g + 1) * group; h++) {
        pages.bounds(q, h * D, g, 0, 7, 0.5f, bound, 0);
        for (int s = 0; s < len; s++) {
          double dot = 0;
          for (int e = 0; e < D; e++) {
            dot += q[h * D + e] * keys[(s * KV_HEADS + g) * D + e];
          }
          assertThat((double) bound[s / 16]).isGreaterThanOrEqualTo(0.5 * dot - 1e-4);
        }
      }
    }
  }

  private static OwnHeadsSelector selector(SelfExtend se, int len, float[] keys) {
    OwnHeadsSelector sel = new OwnHeadsSelector(1, HEADS, KV_HEADS, D, se, len);
    for (int s = 0; s < len; s++) {
      sel.put(0, s, keys, keys, s * KV_HEADS * D);
    }
    return sel;
  }

  /** p̂_s = Σ_h softmax_s(q_h·k̃_s/√d) in float64 over the INT8-rounded keys (§5.2). */
  private static double[] referenceScores(float[] q, float[] keys, int len) {
    double[] p = new double[len];
    double scale = 1 / Math.sqrt(D);
    for (int h = 0; h < HEADS; h++) {
      int g = h / (HEADS / KV_HEADS);
      double[] z = new double[len];
      double max = Double.NEGATIVE_INFINITY;
      for (int s = 0; s < len; s++) {
        int base = (s * KV_HEADS + g) * D;
        float amax = 0;
        for (int e = 0; e < D; e++) {
          amax = Math.max(amax, Math.abs(keys[base + e]));
        }
        float sigma = amax / 127f;
        float inv = 1f / sigma; // as QuantizedKeys rounds
        double dot = 0;
        for (int e = 0; e < D; e++) {
          dot += q[h * D + e] * (double) Math.round(keys[base + e] * inv) * sigma;
        }
        z[s] = dot * scale;
        max = Math.max(max, z[s]);
      }
      double sum = 0;
      for (int s = 0; s < len; s++) {
        z[s] = Math.exp(z[s] - max);
        sum += z[s];
      }
      for (int s = 0; s < len; s++) {
        p[s] += z[s] / sum;
      }
    }
    return p;
  }

  private static float[] gaussian(SplittableRandom r, int n, double sd) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (RandomModels.gaussian(r) * sd);
    }
    return x;
  }
}
