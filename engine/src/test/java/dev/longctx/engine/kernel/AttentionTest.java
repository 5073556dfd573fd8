package dev.longctx.engine.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The tiled online-softmax attention against a float64 two-pass softmax reference. */
class AttentionTest {

  static final int KV_HEADS = 3;

  /** A GQA cache {@code [len][KV_HEADS][headDim]} and 8 query heads of one token. */
  record Case(float[] q, float[] keys, float[] values, int len, int headDim) {
    static Case random(Random r, int len, int headDim, double qSigma) {
      return new Case(
          OpsTest.gaussian(r, 8 * headDim, qSigma, 0),
          OpsTest.gaussian(r, len * KV_HEADS * headDim, 1, 0),
          OpsTest.gaussian(r, len * KV_HEADS * headDim, 1, 0.1),
          len,
          headDim);
    }

    int base(int kvHead) {
      return kvHead * headDim;
    }

    int stride() {
      return KV_HEADS * headDim;
    }

    float scale() {
      return (float) (1 / Math.sqrt(headDim));
    }
  }

  /**
   * Output (first headDim entries) and LSE (last entry) of softmax attention over the keys listed.
   */
  static double[] reference(Case c, int qHead, int kvHead, int[] keys) {
    int d = c.headDim;
    double[] z = new double[keys.length];
    double max = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < keys.length; j++) {
      int k = c.base(kvHead) + keys[j] * c.stride();
      double dot = 0;
      for (int e = 0; e < d; e++) {
        dot += (double) c.q[qHead * d + e] * c.keys[k + e];
      }
      z[j] = c.scale() * dot;
      max = Math.max(max, z[j]);
    }
    double[] out = new double[d + 1];
    if (keys.length == 0) {
      out[d] = Double.NEGATIVE_INFINITY;
      return out;
    }
    double sum = 0;
    for (int j = 0; j < keys.length; j++) {
      double w = Math.exp(z[j] - max);
      sum += w;
      int v = c.base(kvHead) + keys[j] * c.stride();
      for (int e = 0; e < d; e++) {
        out[e] += w * c.values[v + e];
      }
    }
    for (int e = 0; e < d; e++) {
      out[e] /= sum;
    }
    out[d] = max + Math.log(sum);
    return out;
  }

  static int[] range(int n) {
    int[] a = new int[n];
    for (int i = 0; i < n; i++) {
      a[i] = i;
    }
    return a;
  }

  static void assertMatches(float[] out, int outOffset, float lse, double[] ref, String what) {
    int d = ref.length - 1;
    for (int e = 0; e < d; e++) {
      assertThat((double) out[outOffset + e])
          .as("%s element %d", what, e)
          .isCloseTo(ref[e], within(1e-5));
    }
    assertThat((double) lse)
        .as("%s lse", what)
        .isCloseTo(ref[d], within(1e-5 * Math.max(1, Math.abs(ref[d]))));
  }

  @Test
  void matchesTwoPassFloat64ReferenceOverLengthsHeadDimsAndGqaStrides() {
    Random r = new Random(21);
    for (int headDim : new int[] {16, 64, 128, 20}) {
      for (int len : new int[] {1, 17, 1000, 4097}) {
        // qSigma 3 makes the softmax peaky (scores ~N(0, 9)), so the running max moves often.
        for (double qSigma : new double[] {1, 3}) {
          Case c = Case.random(r, len, headDim, qSigma);
          int qHead = 5;
          int kvHead = qHead / 3; // 8 query heads over 3 KV heads, GQA-style
          float[] out = new float[headDim + 2];
          float lse =
              Attention.attend(
                  c.q,
                  qHead * headDim,
                  c.keys,
                  c.values,
                  c.base(kvHead),
                  c.stride(),
                  len,
                  headDim,
                  c.scale(),
                  out,
                  2);
          assertMatches(
              out,
              2,
              lse,
              reference(c, qHead, kvHead, range(len)),
              "d=" + headDim + " len=" + len + " q~" + qSigma);
          assertThat(out[0]).isZero();
        }
      }
    }
  }

  @Test
  void risingScoresRescaleTheAccumulatorEveryTile() {
    Random r = new Random(22);
    int headDim = 64;
    int len = 1000;
    Case c = Case.random(r, len, headDim, 1);
    // k_s = (s / 50)·q + noise: each tile has a new, larger maximum.
    for (int s = 0; s < len; s++) {
      for (int e = 0; e < headDim; e++) {
        c.keys[s * c.stride() + e] = (float) (s / 50.0 * c.q[e] * 0.2 + 0.1 * r.nextGaussian());
      }
    }
    float[] out = new float[headDim];
    float lse =
        Attention.attend(c.q, 0, c.keys, c.values, 0, c.stride(), len, headDim, c.scale(), out, 0);
    assertMatches(out, 0, lse, reference(c, 0, 0, range(len)), "rising");
  }

  @Test
  void emptyKeySetGivesZeroOutputAndNegativeInfinityLse() {
    float[] out = {1, 2, 3, 4};
    float lse =
        Attention.attend(new float[4], 0, new float[0], new float[0], 0, 4, 0, 4, 0.5f, out, 0);
    assertThat(lse).isEqualTo(Float.NEGATIVE_INFINITY);
    assertThat(out).containsOnly(0f);
  }

  @Test
  void subsetAttentionOverAllPositionsEqualsFullAttention() {
    Random r = new Random(23);
    for (int len : new int[] {1, 17, 1000, 4097}) {
      int headDim = 64;
      Case c = Case.random(r, len, headDim, 2);
      float[] full = new float[headDim];
      float lseFull =
          Attention.attend(
              c.q, 64, c.keys, c.values, c.base(1), c.stride(), len, headDim, c.scale(), full, 0);
      float[] subset = new float[headDim];
      int[] all = range(len);
      float lseSubset =
          Attention.attendPositions(
              c.q,
              64,
              c.keys,
              c.values,
              c.base(1),
              c.stride(),
              all,
              0,
              len,
              headDim,
              c.scale(),
              subset,
              0);
      // Same keys in the same tiles: bit-identical.
      assertThat(subset).containsExactly(full, within(1e-6f));
      assertThat(lseSubset).isCloseTo(lseFull, within(1e-6f));

      List<Integer> shuffled = new ArrayList<>();
      for (int s = 0; s < len; s++) {
        shuffled.add(s);
      }
      Collections.shuffle(shuffled, r);
      int[] perm = new int[len + 2];
      for (int s = 0; s < len; s++) {
        perm[2 + s] = shuffled.get(s);
      }
      float lsePerm =
          Attention.attendPositions(
              c.q,
              64,
              c.keys,
              c.values,
              c.base(1),
              c.stride(),
              perm,
              2,
              len,
              headDim,
              c.scale(),
              subset,
              0);
      assertMatches(subset, 0, lsePerm, reference(c, 1, 1, all), "shuffled len=" + len);
    }
  }

  @Test
  void subsetAttentionMatchesReferenceOverThatSubset() {
    Random r = new Random(24);
    int len = 3000;
    int headDim = 128;
    Case c = Case.random(r, len, headDim, 1.5);
    int[] chosen = r.ints(0, len).distinct().limit(333).toArray();
    float[] out = new float[headDim];
    float lse =
        Attention.attendPositions(
            c.q,
            0,
            c.keys,
            c.values,
            c.base(2),
            c.stride(),
            chosen,
            0,
            chosen.length,
            headDim,
            c.scale(),
            out,
            0,
            new Attention.Scratch());
    assertMatches(out, 0, lse, reference(c, 0, 2, chosen), "subset");
  }

  @Test
  void callerScratchAndWindowOffsetGiveTheSameResult() {
    Random r = new Random(25);
    int headDim = 64;
    int len = 500;
    Case c = Case.random(r, len, headDim, 1);
    int window = 123;
    float[] a = new float[headDim];
    float lseA =
        Attention.attend(
            c.q,
            0,
            c.keys,
            c.values,
            c.base(0) + window * c.stride(),
            c.stride(),
            len - window,
            headDim,
            c.scale(),
            a,
            0);
    Attention.Scratch scratch = new Attention.Scratch();
    float[] b = new float[headDim];
    float lseB =
        Attention.attend(
            c.q,
            0,
            c.keys,
            c.values,
            c.base(0) + window * c.stride(),
            c.stride(),
            len - window,
            headDim,
            c.scale(),
            b,
            0,
            scratch);
    // The same arithmetic, but possibly at another JIT tier (the Vector API's interpreted
    // fallback and its C2 intrinsics may reduce lanes in another order): equal to float rounding.
    assertThat(b).containsExactly(a, within(1e-6f));
    assertThat(lseB).isCloseTo(lseA, within(1e-6f));
    int[] tail = new int[len - window];
    for (int s = 0; s < tail.length; s++) {
      tail[s] = window + s;
    }
    assertMatches(a, 0, lseA, reference(c, 0, 0, tail), "window");
  }

  @Test
  void groupedQueryHeadsInOnePassEqualOneCallPerHead() {
    Random r = new Random(26);
    for (int headDim : new int[] {64, 20}) {
      for (int len : new int[] {1, 17, 1000}) {
        Case c = Case.random(r, len, headDim, 2);
        int kvHead = 1;
        int group = 3; // query heads 3, 4, 5 share KV head 1
        float[] out = new float[group * headDim + 1];
        float[] lse = new float[group + 1];
        Attention.attendGroup(
            c.q,
            3 * headDim,
            group,
            c.keys,
            c.values,
            c.base(kvHead),
            c.stride(),
            len,
            headDim,
            c.scale(),
            out,
            1,
            lse,
            1);
        int[] chosen = r.ints(0, len).distinct().limit(Math.max(1, len / 3)).toArray();
        float[] outSubset = new float[group * headDim];
        float[] lseSubset = new float[group];
        Attention.attendGroupPositions(
            c.q,
            3 * headDim,
            group,
            c.keys,
            c.values,
            c.base(kvHead),
            c.stride(),
            chosen,
            0,
            chosen.length,
            headDim,
            c.scale(),
            outSubset,
            0,
            lseSubset,
            0);
        for (int g = 0; g < group; g++) {
          float[] single = new float[headDim];
          float lseSingle =
              Attention.attend(
                  c.q,
                  (3 + g) * headDim,
                  c.keys,
                  c.values,
                  c.base(kvHead),
                  c.stride(),
                  len,
                  headDim,
                  c.scale(),
                  single,
                  0);
          assertThat(Arrays.copyOfRange(out, 1 + g * headDim, 1 + (g + 1) * headDim))
              .containsExactly(single, within(1e-6f));
          assertThat(lse[1 + g]).isCloseTo(lseSingle, within(1e-6f));
          float lseSub =
              Attention.attendPositions(
                  c.q,
                  (3 + g) * headDim,
                  c.keys,
                  c.values,
                  c.base(kvHead),
                  c.stride(),
                  chosen,
                  0,
                  chosen.length,
                  headDim,
                  c.scale(),
                  single,
                  0);
          assertThat(Arrays.copyOfRange(outSubset, g * headDim, (g + 1) * headDim))
              .containsExactly(single, within(1e-6f));
          assertThat(lseSubset[g]).isCloseTo(lseSub, within(1e-6f));
          assertMatches(
              single, 0, lseSub, reference(c, 3 + g, kvHead, chosen), "group subset head " + g);
        }
      }
    }
  }

  @Test
  void pagedCacheMatchesTheFloat64ReferenceAcrossPageBoundaries() {
    Random r = new Random(27);
    int headDim = 64;
    int len = 300;
    Case c = Case.random(r, len, headDim, 2);
    int kvHead = 2;
    int group = 2; // query heads 4, 5
    for (int shift : new int[] {0, 3, 5, 8}) {
      // The same cache cut into pages of 2^shift tokens, shuffled in memory (a page table maps).
      int pageTokens = 1 << shift;
      int stride = c.stride();
      float[][] keyPages = new float[(len + pageTokens - 1) / pageTokens][];
      float[][] valuePages = new float[keyPages.length][];
      for (int p = 0; p < keyPages.length; p++) {
        keyPages[p] = new float[pageTokens * stride];
        valuePages[p] = new float[pageTokens * stride];
        int n = Math.min(pageTokens, len - p * pageTokens) * stride;
        System.arraycopy(c.keys, p * pageTokens * stride, keyPages[p], 0, n);
        System.arraycopy(c.values, p * pageTokens * stride, valuePages[p], 0, n);
      }
      int from = 7;
      int to = 293;
      float[] out = new float[group * headDim];
      float[] lse = new float[group];
      Attention.attendGroupPaged(
          c.q,
          4 * headDim,
          group,
          keyPages,
          valuePages,
          shift,
          c.base(kvHead),
          stride,
          from,
          to,
          headDim,
          c.scale(),
          out,
          0,
          lse,
          0);
      int[] keys = IntStream.range(from, to).toArray();
      int[] chosen = r.ints(0, len).distinct().limit(90).toArray();
      float[] outSubset = new float[group * headDim];
      float[] lseSubset = new float[group];
      Attention.attendGroupPagedPositions(
          c.q,
          4 * headDim,
          group,
          keyPages,
          valuePages,
          shift,
          c.base(kvHead),
          stride,
          chosen,
          0,
          chosen.length,
          headDim,
          c.scale(),
          outSubset,
          0,
          lseSubset,
          0);
      for (int g = 0; g < group; g++) {
        assertMatches(
            out, g * headDim, lse[g], reference(c, 4 + g, kvHead, keys), "pages 2^" + shift);
        assertMatches(
            outSubset,
            g * headDim,
            lseSubset[g],
            reference(c, 4 + g, kvHead, chosen),
            "subset, pages 2^" + shift);
      }
    }
  }
}
