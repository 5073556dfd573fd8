package dev.longctx.engine.attention;

import java.util.Arrays;
import java.util.List;

/**
 * Deterministic top-k selection and its exact distributed form (ALGORITHMS.md §1.2 step 11, §4.5).
 *
 * <p>Order ≻: a ranks above b iff {@code score_a > score_b}, or the scores are equal and {@code
 * pos_a < pos_b} (global position). NaN counts as −∞ and −∞ entries are never selected, so "the
 * top-k" of a set is unique and every shard computes the same one.
 */
public final class TopK {

  private TopK() {}

  /**
   * A candidate list sorted by ≻ (best first): {@code scores[i]} belongs to global position {@code
   * positions[i]}.
   */
  public record Candidates(float[] scores, int[] positions) {
    public Candidates {
      if (scores.length != positions.length) {
        throw new IllegalArgumentException(
            "scores and positions differ in length: " + scores.length + " vs " + positions.length);
      }
    }

    public int size() {
      return scores.length;
    }

    /** The selected positions padded to {@code k} with −1 (the FlashMLA / vLLM convention). */
    public int[] padded(int k) {
      int[] out = new int[k];
      Arrays.fill(out, -1);
      System.arraycopy(positions, 0, out, 0, Math.min(k, positions.length));
      return out;
    }
  }

  /** Whether (sa, pa) ≻ (sb, pb). Scores must already have NaN mapped to −∞. */
  public static boolean ranksAbove(float sa, int pa, float sb, int pb) {
    return sa > sb || (sa == sb && pa < pb);
  }

  /**
   * The top-min(k, valid) of {@code scores[0..n)} at positions {@code positions[i]} (or {@code i}
   * when positions is null), sorted by ≻. A bounded min-heap: O(n log k).
   */
  public static Candidates select(float[] scores, int[] positions, int n, int k) {
    if (k < 0) {
      throw new IllegalArgumentException("k must be >= 0, got " + k);
    }
    int cap = Math.min(k, n);
    float[] hs = new float[cap];
    int[] hp = new int[cap];
    int size = 0;
    for (int i = 0; i < n; i++) {
      float s = scores[i];
      if (Float.isNaN(s) || s == Float.NEGATIVE_INFINITY) {
        continue;
      }
      int p = positions == null ? i : positions[i];
      if (size < cap) {
        // sift up: the heap root is the worst under ≻
        int c = size++;
        while (c > 0) {
          int parent = (c - 1) >>> 1;
          if (!ranksAbove(hs[parent], hp[parent], s, p)) {
            break;
          }
          hs[c] = hs[parent];
          hp[c] = hp[parent];
          c = parent;
        }
        hs[c] = s;
        hp[c] = p;
      } else if (cap > 0 && ranksAbove(s, p, hs[0], hp[0])) {
        siftDown(hs, hp, size, s, p);
      }
    }
    // Heap-sort in place: repeatedly move the worst to the end, giving best-first order.
    for (int end = size - 1; end > 0; end--) {
      float ws = hs[0];
      int wp = hp[0];
      siftDown(hs, hp, end, hs[end], hp[end]);
      hs[end] = ws;
      hp[end] = wp;
    }
    return new Candidates(Arrays.copyOf(hs, size), Arrays.copyOf(hp, size));
  }

  /** Places (s, p) at the root of the min-heap [0, size) and restores the heap property. */
  private static void siftDown(float[] hs, int[] hp, int size, float s, int p) {
    int c = 0;
    while (true) {
      int l = 2 * c + 1;
      if (l >= size) {
        break;
      }
      int worst = l;
      int r = l + 1;
      if (r < size && ranksAbove(hs[l], hp[l], hs[r], hp[r])) {
        worst = r;
      }
      if (!ranksAbove(s, p, hs[worst], hp[worst])) {
        break;
      }
      hs[c] = hs[worst];
      hp[c] = hp[worst];
      c = worst;
    }
    hs[c] = s;
    hp[c] = p;
  }

  /**
   * The exact P-way merge of per-shard top-k lists (ALGORITHMS.md §4.5 step 3): each list must be
   * sorted by ≻ and be the top-min(k, |V_r|) of its shard under the same order; the result is then
   * the global top-min(k, |∪V_r|), identical on every rank that runs it.
   */
  public static Candidates merge(List<Candidates> lists, int k) {
    int total = 0;
    for (Candidates c : lists) {
      total += c.size();
    }
    int cap = Math.min(k, total);
    float[] s = new float[cap];
    int[] p = new int[cap];
    int[] head = new int[lists.size()];
    for (int out = 0; out < cap; out++) {
      int best = -1;
      for (int r = 0; r < lists.size(); r++) {
        Candidates c = lists.get(r);
        if (head[r] < c.size()
            && (best < 0
                || ranksAbove(
                    c.scores[head[r]],
                    c.positions[head[r]],
                    lists.get(best).scores[head[best]],
                    lists.get(best).positions[head[best]]))) {
          best = r;
        }
      }
      Candidates c = lists.get(best);
      s[out] = c.scores[head[best]];
      p[out] = c.positions[head[best]];
      head[best]++;
    }
    return new Candidates(s, p);
  }

  // ---------------------------------------------------------------------------------------------
  // The threshold exchange (ALGORITHMS.md §4.5 "optional bandwidth reduction"): each shard sends a
  // few sampled scores of its local list instead of the list; the coordinator derives a score τ
  // such that the lists' entries scoring ≥ τ hold the global top-k; the shards then send only
  // those, and their merge is the same top-k.

  /** How many samples summarize a local list of {@code n} entries: min(points, n). */
  public static int summarySize(int n, int points) {
    return Math.min(points, n);
  }

  /**
   * The rank (1-based) sample {@code j} of a summary stands for: ⌈(j + 1)·n / samples⌉, so the
   * samples spread evenly over the list and the last one is its worst entry (rank n).
   */
  public static int summaryRank(int j, int n, int points) {
    int samples = summarySize(n, points);
    return (int) (((long) (j + 1) * n + samples - 1) / samples);
  }

  /**
   * The sampled scores of a local list sorted by ≻: entry {@link #summaryRank}(j) − 1 for each j,
   * so at least that many of the list's entries score ≥ sample j.
   */
  public static float[] summary(Candidates list, int points) {
    int n = list.size();
    float[] out = new float[summarySize(n, points)];
    for (int j = 0; j < out.length; j++) {
      out[j] = list.scores[summaryRank(j, n, points) - 1];
    }
    return out;
  }

  /**
   * A score τ such that the entries scoring ≥ τ of the local lists (the top-min(k, |V_r|) of each
   * shard, of sizes {@code sizes}, summarized by {@link #summary} with {@code points}) hold the
   * global top-k: the highest sampled score at which the samples alone already guarantee k entries
   * at or above it (so the k-th best scores at least that). −∞ (every entry) when the lists hold k
   * or fewer in all. The entries above τ number at most k plus, per shard, the gap between two of
   * its samples (about size / points).
   */
  public static float threshold(List<float[]> summaries, int[] sizes, int points, int k) {
    long total = 0;
    int samples = 0;
    for (int r = 0; r < sizes.length; r++) {
      total += sizes[r];
      samples += summaries.get(r).length;
    }
    if (total <= k) {
      return Float.NEGATIVE_INFINITY;
    }
    // every sample as (score, shard, rank), best score first
    float[] score = new float[samples];
    int[] shard = new int[samples];
    int[] rank = new int[samples];
    Integer[] order = new Integer[samples];
    int u = 0;
    for (int r = 0; r < sizes.length; r++) {
      float[] sum = summaries.get(r);
      for (int j = 0; j < sum.length; j++) {
        score[u] = sum[j];
        shard[u] = r;
        rank[u] = summaryRank(j, sizes[r], points);
        order[u] = u;
        u++;
      }
    }
    Arrays.sort(order, (a, b) -> Float.compare(score[b], score[a]));
    // guaranteed[r]: entries of shard r known to score ≥ the current x (its highest rank so far)
    int[] guaranteed = new int[sizes.length];
    long sum = 0;
    for (int i = 0; i < samples; ) {
      float x = score[order[i]];
      // every sample scoring x counts before x is tried
      for (; i < samples && score[order[i]] == x; i++) {
        int r = shard[order[i]];
        if (rank[order[i]] > guaranteed[r]) {
          sum += rank[order[i]] - guaranteed[r];
          guaranteed[r] = rank[order[i]];
        }
      }
      if (sum >= k) {
        return x;
      }
    }
    // unreachable: at the lowest sample every list counts whole, and total > k
    return Float.NEGATIVE_INFINITY;
  }

  /** The prefix of a list sorted by ≻ whose entries score ≥ {@code tau}. */
  public static Candidates above(Candidates list, float tau) {
    int n = 0;
    while (n < list.size() && list.scores[n] >= tau) {
      n++;
    }
    return n == list.size()
        ? list
        : new Candidates(Arrays.copyOf(list.scores, n), Arrays.copyOf(list.positions, n));
  }
}
