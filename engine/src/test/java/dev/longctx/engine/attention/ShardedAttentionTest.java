package dev.longctx.engine.attention;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.kernel.Partial;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Sharded-attention primitives proven in one process (ALGORITHMS.md §4.2, §4.5, §4.8): a sequence's
 * keys split into P random disjoint shards give, after the LSE merge, the attention over all of
 * them; per-shard top-k lists merge into exactly the global top-k, ties included.
 */
class ShardedAttentionTest {

  private static final int D = 16;

  @Test
  void mergedPartialsOfRandomDisjointShardsEqualSingleShardAttention() {
    SplittableRandom r = new SplittableRandom(1);
    for (int shards : new int[] {1, 2, 3, 7, 8}) {
      for (int trial = 0; trial < 20; trial++) {
        int len = 1 + r.nextInt(300);
        float[] q = gaussian(r, D, 1.0);
        float[] keys = gaussian(r, len * D, 1.0);
        float[] values = gaussian(r, len * D, 1.0);
        // One shard's keys point away from q: its LSE sits ~80 below the others (underflow case).
        int far = r.nextInt(shards);
        int[] owner = new int[len];
        List<List<Integer>> parts = new ArrayList<>();
        for (int p = 0; p < shards + 1; p++) {
          parts.add(new ArrayList<>()); // shard index `shards` stays empty on purpose
        }
        for (int s = 0; s < len; s++) {
          owner[s] = r.nextInt(shards);
          parts.get(owner[s]).add(s);
          if (owner[s] == far && shards > 1) {
            double qq = 0;
            for (int e = 0; e < D; e++) {
              qq += q[e] * q[e];
            }
            for (int e = 0; e < D; e++) {
              keys[s * D + e] = (float) (-q[e] * 80 * Math.sqrt(D) / qq);
            }
          }
        }
        float scale = (float) (1 / Math.sqrt(D));
        List<Partial> partials = new ArrayList<>();
        for (List<Integer> part : parts) {
          int[] positions = part.stream().mapToInt(Integer::intValue).toArray();
          partials.add(ShardedAttention.attend(q, 0, keys, values, 0, D, positions, D, scale));
        }
        Partial merged = ShardedAttention.merge(partials);
        double[] ref = reference(q, keys, values, IntStream.range(0, len).toArray(), scale);
        for (int e = 0; e < D; e++) {
          assertThat((double) merged.output()[e]).isCloseTo(ref[e], within(1e-5));
        }
        assertThat((double) merged.lse()).isCloseTo(ref[D], within(1e-4));
      }
    }
  }

  @Test
  void distributedTopKEqualsGlobalTopKIncludingOrderUnderManyTies() {
    SplittableRandom r = new SplittableRandom(2);
    for (int trial = 0; trial < 300; trial++) {
      int shards = 1 + r.nextInt(8);
      int k = new int[] {1, 7, 2048}[r.nextInt(3)];
      int len = r.nextInt(k == 2048 ? 5000 : 60);
      float[] scores = new float[len];
      for (int s = 0; s < len; s++) {
        int u = r.nextInt(10);
        // Four distinct values for ≥ 50% ties, plus masked (−∞) and NaN entries.
        scores[s] =
            u == 0 ? Float.NEGATIVE_INFINITY : u == 1 ? Float.NaN : (float) r.nextInt(4) / 4;
      }
      // Arbitrary non-contiguous sharding; some shards may be empty or smaller than k.
      List<List<Integer>> owned = new ArrayList<>();
      for (int p = 0; p < shards; p++) {
        owned.add(new ArrayList<>());
      }
      for (int s = 0; s < len; s++) {
        owned.get(r.nextInt(shards)).add(s);
      }
      List<TopK.Candidates> local = new ArrayList<>();
      for (List<Integer> part : owned) {
        int[] positions = part.stream().mapToInt(Integer::intValue).toArray();
        float[] partScores = new float[positions.length];
        for (int i = 0; i < positions.length; i++) {
          partScores[i] = scores[positions[i]];
        }
        local.add(TopK.select(partScores, positions, positions.length, k)); // full k, not k/P
      }
      TopK.Candidates merged = TopK.merge(local, k);
      TopK.Candidates global = TopK.select(scores, null, len, k);
      assertThat(merged.positions()).containsExactly(global.positions());
      assertThat(merged.scores()).containsExactly(global.scores());
      assertThat(global.positions()).containsExactly(bruteForceTopK(scores, k));
    }
  }

  /**
   * The threshold exchange (§4.5 "optional bandwidth reduction"): from the local lists' summaries
   * alone, a score τ whose entries at or above it, merged, are exactly the global top-k (order
   * included) under many ties; and they number at most k plus one summary gap per shard.
   */
  @Test
  void theThresholdExchangeSelectsTheGlobalTopKFromFewerCandidates() {
    SplittableRandom r = new SplittableRandom(5);
    long sentFull = 0;
    long sentAbove = 0;
    for (int trial = 0; trial < 300; trial++) {
      int shards = 1 + r.nextInt(8);
      int k = new int[] {1, 7, 64, 2048}[r.nextInt(4)];
      int points = new int[] {1, 4, 32}[r.nextInt(3)];
      int len = r.nextInt(k >= 64 ? 20 * k : 60);
      boolean ties = r.nextBoolean();
      float[] scores = new float[len];
      for (int s = 0; s < len; s++) {
        int u = r.nextInt(10);
        scores[s] =
            u == 0
                ? Float.NEGATIVE_INFINITY
                : ties ? (float) r.nextInt(4) / 4 : (float) r.nextGaussian();
      }
      List<TopK.Candidates> local = new ArrayList<>();
      int[] shardOf = r.ints(len, 0, shards).toArray();
      for (int p = 0; p < shards; p++) {
        int shard = p;
        int[] positions =
            java.util.stream.IntStream.range(0, len).filter(s -> shardOf[s] == shard).toArray();
        float[] partScores = new float[positions.length];
        for (int i = 0; i < positions.length; i++) {
          partScores[i] = scores[positions[i]];
        }
        local.add(TopK.select(partScores, positions, positions.length, k));
      }
      List<float[]> summaries = new ArrayList<>();
      int[] sizes = new int[shards];
      long bound = k;
      for (int p = 0; p < shards; p++) {
        summaries.add(TopK.summary(local.get(p), points));
        sizes[p] = local.get(p).size();
        bound += (sizes[p] + points - 1) / points;
      }
      float tau = TopK.threshold(summaries, sizes, points, k);
      List<TopK.Candidates> above = new ArrayList<>();
      for (TopK.Candidates c : local) {
        above.add(TopK.above(c, tau));
      }
      TopK.Candidates global = TopK.select(scores, null, len, k);
      TopK.Candidates merged = TopK.merge(above, k);
      assertThat(merged.positions()).as("trial %d", trial).containsExactly(global.positions());
      assertThat(merged.scores()).as("trial %d", trial).containsExactly(global.scores());
      int sent = above.stream().mapToInt(TopK.Candidates::size).sum();
      if (!ties) {
        // distinct scores: the guarantee is exact up to the samples' spacing
        assertThat(sent).as("trial %d candidates sent", trial).isLessThanOrEqualTo((int) bound);
      }
      if (points == 32 && !ties && shards >= 4) {
        sentAbove += sent;
        sentFull += local.stream().mapToInt(TopK.Candidates::size).sum();
      }
    }
    // with 32 samples and 4+ shards, well under half the full lists travel
    assertThat(sentAbove).isLessThan(sentFull / 2);
  }

  @Test
  void topKOfFewerValidKeysThanKSelectsAllPaddedWithMinusOne() {
    float[] scores = {0.5f, Float.NEGATIVE_INFINITY, 0.5f, Float.NaN, 2f};
    TopK.Candidates c = TopK.select(scores, null, scores.length, 8);
    assertThat(c.positions()).containsExactly(4, 0, 2);
    assertThat(c.padded(6)).containsExactly(4, 0, 2, -1, -1, -1);
  }

  @Test
  void equalScoresSelectTheFirstKPositions() {
    float[] scores = new float[100];
    assertThat(TopK.select(scores, null, 100, 10).positions())
        .containsExactly(IntStream.range(0, 10).toArray()); // §1.9 test 9
  }

  @Test
  void roundRobinGlobalAndLocalIndexMapsAreMutualInverses() {
    for (int shards : new int[] {1, 2, 8}) {
      for (int interleave : new int[] {1, 64}) {
        int[] next = new int[shards];
        for (int s = 0; s < 1_000_000; s++) {
          int p = ShardedAttention.shardOf(s, shards, interleave);
          int l = ShardedAttention.localSlot(s, shards, interleave);
          assertThat(l).isEqualTo(next[p]++); // dense local slots, in order
          assertThat(ShardedAttention.globalPosition(l, p, shards, interleave)).isEqualTo(s);
        }
      }
    }
  }

  @Test
  void shardedSparseAttentionEqualsSingleDeviceSparseAttention() {
    // §4.8 test 7: global top-k via the candidate merge, each shard attends its owned selected
    // keys,
    // partials merged; equals attention over the selected set on one device.
    SplittableRandom r = new SplittableRandom(3);
    int len = 3000;
    int k = 256;
    int shards = 4;
    float[] q = gaussian(r, D, 1.0);
    float[] keys = gaussian(r, len * D, 1.0);
    float[] values = gaussian(r, len * D, 1.0);
    float scale = (float) (1 / Math.sqrt(D));
    float[] scores = new float[len];
    for (int s = 0; s < len; s++) {
      scores[s] = Math.round(dot(q, keys, s) * 4) / 4f; // coarse: many ties
    }
    List<TopK.Candidates> local = new ArrayList<>();
    List<List<Integer>> owned = new ArrayList<>();
    for (int p = 0; p < shards; p++) {
      List<Integer> mine = new ArrayList<>();
      for (int s = p; s < len; s += shards) {
        mine.add(s);
      }
      owned.add(mine);
      int[] positions = mine.stream().mapToInt(Integer::intValue).toArray();
      float[] partScores = new float[positions.length];
      for (int i = 0; i < positions.length; i++) {
        partScores[i] = scores[positions[i]];
      }
      local.add(TopK.select(partScores, positions, positions.length, k));
    }
    int[] selected = TopK.merge(local, k).positions();
    assertThat(selected).containsExactly(TopK.select(scores, null, len, k).positions());
    List<Partial> partials = new ArrayList<>();
    for (int p = 0; p < shards; p++) {
      int shard = p;
      int[] mine = Arrays.stream(selected).filter(s -> s % shards == shard).toArray();
      partials.add(ShardedAttention.attend(q, 0, keys, values, 0, D, mine, D, scale));
    }
    Partial merged = ShardedAttention.merge(partials);
    Partial single = ShardedAttention.attend(q, 0, keys, values, 0, D, selected, D, scale);
    for (int e = 0; e < D; e++) {
      assertThat(merged.output()[e]).isCloseTo(single.output()[e], within(1e-5f));
    }
  }

  private static int[] bruteForceTopK(float[] scores, int k) {
    return IntStream.range(0, scores.length)
        .filter(s -> !Float.isNaN(scores[s]) && scores[s] != Float.NEGATIVE_INFINITY)
        .boxed()
        .sorted(Comparator.<Integer>comparingDouble(s -> -scores[s]).thenComparingInt(s -> s))
        .limit(k)
        .mapToInt(Integer::intValue)
        .toArray();
  }

  /** Output (first D entries) and LSE (entry D) of attention over {@code positions}, in double. */
  private static double[] reference(
      float[] q, float[] keys, float[] values, int[] positions, double scale) {
    double max = Double.NEGATIVE_INFINITY;
    double[] z = new double[positions.length];
    for (int i = 0; i < positions.length; i++) {
      z[i] = dot(q, keys, positions[i]) * scale;
      max = Math.max(max, z[i]);
    }
    double sum = 0;
    double[] out = new double[D + 1];
    for (int i = 0; i < positions.length; i++) {
      double p = Math.exp(z[i] - max);
      sum += p;
      for (int e = 0; e < D; e++) {
        out[e] += p * values[positions[i] * D + e];
      }
    }
    for (int e = 0; e < D; e++) {
      out[e] /= sum;
    }
    out[D] = max + Math.log(sum);
    return out;
  }

  private static double dot(float[] q, float[] keys, int s) {
    double sum = 0;
    for (int e = 0; e < D; e++) {
      sum += (double) q[e] * keys[s * D + e];
    }
    return sum;
  }

  private static float[] gaussian(SplittableRandom r, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (RandomModels.gaussian(r) * scale);
    }
    return v;
  }
}
