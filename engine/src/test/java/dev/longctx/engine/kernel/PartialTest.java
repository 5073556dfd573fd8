package dev.longctx.engine.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.kernel.AttentionTest.Case;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * ALGORITHMS.md §4.8 cases 1 and 2: the LSE merge of sharded attention equals single-shard
 * attention.
 */
class PartialTest {

  static final int HEAD_DIM = 64;

  /** A random partition of {@code [0, len)} into P shards; shard 0 is left empty when P > 1. */
  static int[][] partition(Random r, int len, int shards) {
    List<List<Integer>> parts = new ArrayList<>();
    for (int p = 0; p < shards; p++) {
      parts.add(new ArrayList<>());
    }
    for (int s = 0; s < len; s++) {
      int p = shards == 1 ? 0 : 1 + r.nextInt(shards - 1);
      parts.get(p).add(s);
    }
    int[][] out = new int[shards][];
    for (int p = 0; p < shards; p++) {
      Collections.shuffle(parts.get(p), r);
      out[p] = parts.get(p).stream().mapToInt(Integer::intValue).toArray();
    }
    return out;
  }

  static Partial shard(Case c, int[] keys) {
    float[] out = new float[HEAD_DIM];
    float lse =
        Attention.attendPositions(
            c.q(),
            0,
            c.keys(),
            c.values(),
            0,
            c.stride(),
            keys,
            0,
            keys.length,
            HEAD_DIM,
            c.scale(),
            out,
            0);
    return new Partial(out, lse);
  }

  static Partial dense(Case c) {
    float[] out = new float[HEAD_DIM];
    float lse =
        Attention.attend(
            c.q(), 0, c.keys(), c.values(), 0, c.stride(), c.len(), HEAD_DIM, c.scale(), out, 0);
    return new Partial(out, lse);
  }

  static void assertClose(Partial got, Partial expected, double tol) {
    for (int e = 0; e < HEAD_DIM; e++) {
      assertThat((double) got.output()[e])
          .as("element %d", e)
          .isCloseTo(expected.output()[e], within(tol));
    }
    assertThat((double) got.lse())
        .isCloseTo(expected.lse(), within(tol * Math.max(1, Math.abs(expected.lse()))));
  }

  @Test
  void mergeOfRandomDisjointShardsEqualsSingleShardAttention() {
    Random r = new Random(31);
    for (int len : new int[] {1, 17, 1000, 4097}) {
      Case c = Case.random(r, len, HEAD_DIM, 2);
      Partial expected = dense(c);
      for (int shards : new int[] {1, 2, 3, 4, 7, 8}) {
        List<Partial> parts = new ArrayList<>();
        for (int[] keys : partition(r, len, shards)) {
          parts.add(shard(c, keys));
        }
        if (shards > 1) {
          assertThat(parts.get(0).isEmpty()).isTrue();
        }
        assertClose(Partial.merge(parts), expected, 1e-5);
        // §4.8 case 2: the pairwise streaming form, in a shuffled order, equals the batch merge.
        Collections.shuffle(parts, r);
        Partial streamed = parts.get(0);
        for (int p = 1; p < parts.size(); p++) {
          streamed = streamed.mergeWith(parts.get(p));
        }
        assertClose(streamed, Partial.merge(parts), 1e-6);
      }
    }
  }

  @Test
  void shardWhoseLseIsEightyBelowTheOthersStillMergesExactly() {
    Random r = new Random(32);
    int len = 600;
    Case c = Case.random(r, len, HEAD_DIM, 1);
    // Keys 500.. point against q: their scores sit about 80 below the rest.
    double qq = 0;
    for (int e = 0; e < HEAD_DIM; e++) {
      qq += (double) c.q()[e] * c.q()[e];
    }
    for (int s = 500; s < len; s++) {
      for (int e = 0; e < HEAD_DIM; e++) {
        c.keys()[s * c.stride() + e] = (float) (-80 / c.scale() / qq * c.q()[e]);
      }
    }
    int[][] shards = {AttentionTest.range(250), new int[250], new int[100]};
    for (int s = 0; s < 250; s++) {
      shards[1][s] = 250 + s;
    }
    for (int s = 0; s < 100; s++) {
      shards[2][s] = 500 + s;
    }
    List<Partial> parts = new ArrayList<>();
    for (int[] keys : shards) {
      parts.add(shard(c, keys));
    }
    assertThat(parts.get(0).lse() - parts.get(2).lse()).isGreaterThan(75);
    assertClose(Partial.merge(parts), dense(c), 1e-5);
    assertClose(parts.get(2).mergeWith(parts.get(0)).mergeWith(parts.get(1)), dense(c), 1e-5);
  }

  @Test
  void emptyPartialsAreTheIdentityAndAllEmptyStaysEmpty() {
    Partial a = new Partial(new float[] {1, 2}, 0.5f);
    Partial empty = Partial.empty(2);
    assertThat(Partial.merge(empty, a, empty).output()).containsExactly(1, 2);
    assertThat(Partial.merge(empty, a).lse()).isEqualTo(0.5f);
    assertThat(empty.mergeWith(a).output()).containsExactly(1, 2);
    assertThat(a.mergeWith(empty).lse()).isEqualTo(0.5f);
    Partial none = Partial.merge(empty, Partial.empty(2));
    assertThat(none.isEmpty()).isTrue();
    assertThat(none.output()).containsExactly(0, 0);
    assertThat(empty.mergeWith(empty).isEmpty()).isTrue();
  }

  @Test
  void mergeHeadsEqualsPerHeadMerge() {
    Random r = new Random(33);
    int heads = 5;
    int shards = 3;
    float[][] outs = new float[shards][];
    float[][] lses = new float[shards][heads];
    for (int p = 0; p < shards; p++) {
      outs[p] = OpsTest.gaussian(r, heads * HEAD_DIM, 1, 0);
      for (int h = 0; h < heads; h++) {
        lses[p][h] = (float) (10 * r.nextGaussian());
      }
    }
    lses[1][2] = Float.NEGATIVE_INFINITY;
    float[] out = new float[heads * HEAD_DIM];
    float[] lse = new float[heads];
    Partial.mergeHeads(outs, lses, heads, HEAD_DIM, out, lse);
    for (int h = 0; h < heads; h++) {
      List<Partial> parts = new ArrayList<>();
      for (int p = 0; p < shards; p++) {
        parts.add(
            new Partial(
                java.util.Arrays.copyOfRange(outs[p], h * HEAD_DIM, (h + 1) * HEAD_DIM),
                lses[p][h]));
      }
      Partial m = Partial.merge(parts);
      assertThat(java.util.Arrays.copyOfRange(out, h * HEAD_DIM, (h + 1) * HEAD_DIM))
          .containsExactly(m.output());
      assertThat(lse[h]).isEqualTo(m.lse());
    }
  }

  @Test
  void rejectsNaNOrPositiveInfinityLse() {
    assertThatThrownBy(() -> new Partial(new float[1], Float.NaN))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("lse must be finite or -Infinity");
    assertThatThrownBy(() -> new Partial(new float[1], Float.POSITIVE_INFINITY))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(
            () -> Partial.merge(new Partial(new float[1], 0f), new Partial(new float[2], 0f)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("output length");
  }
}
