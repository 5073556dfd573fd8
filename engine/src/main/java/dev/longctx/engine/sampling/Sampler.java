package dev.longctx.engine.sampling;

import dev.longctx.engine.kernel.Ops;
import java.util.Arrays;

/**
 * Draws the next token from a row of logits under {@link SamplingParams}, in the order repetition
 * penalty → temperature → top-k → top-p → min-p → draw. Greedy ({@code temperature = 0}) is the
 * argmax after the penalty, lowest id on ties.
 *
 * <p>Built for vocabularies of 128K–152K: top-k keeps a bounded heap (O(V + k log k), no full
 * sort); top-p without top-k first drops every token whose probability is below {@code (1 − topP) /
 * V} (such a token has more than topP of the mass above it, so it cannot be in the nucleus) and
 * sorts only the survivors. Ties in probability are broken by the lower token id everywhere, so the
 * candidate order is total and the draws are reproducible.
 *
 * <p>The random stream is SplitMix64 written out here, so a seed gives the same tokens on every
 * JVM. One instance serves one sequence: it keeps scratch buffers and is not thread-safe. The
 * caller's logits are never modified.
 */
public final class Sampler {

  private final SamplingParams params;
  private long state;

  private float[] work = new float[0];
  private long[] keys = new long[0];
  private int[] cand = new int[0];
  private float[] weight = new float[0];
  private int count;
  private double total;

  public Sampler(SamplingParams params) {
    if (params == null) {
      throw new IllegalArgumentException("params must not be null");
    }
    this.params = params;
    this.state = params.seed();
  }

  public SamplingParams params() {
    return params;
  }

  /** The next token for {@code logits} (length = vocabulary size), without repetition history. */
  public int sample(float[] logits) {
    return sample(logits, null, 0);
  }

  /**
   * The next token for {@code logits}; {@code tokens[0 .. tokenCount)} is the sequence so far,
   * whose last {@code repetitionLastN} tokens the repetition penalty looks at.
   */
  public int sample(float[] logits, int[] tokens, int tokenCount) {
    prepare(logits, tokens, tokenCount);
    if (count == 1) {
      return cand[0];
    }
    double u = nextDouble() * total;
    double c = 0;
    int last = cand[0];
    for (int i = 0; i < count; i++) {
      if (weight[i] > 0) {
        c += weight[i];
        last = cand[i];
        if (u < c) {
          return cand[i];
        }
      }
    }
    return last; // u landed in the rounding gap between the two sums of the same weights
  }

  /**
   * Writes into {@code out[0 .. logits.length)} the distribution {@link #sample} draws from for
   * these inputs: zero outside the surviving candidates, renormalized over them (one-hot when
   * greedy). Consumes no randomness.
   */
  public void probabilities(float[] logits, int[] tokens, int tokenCount, float[] out) {
    prepare(logits, tokens, tokenCount);
    Arrays.fill(out, 0, logits.length, 0f);
    for (int i = 0; i < count; i++) {
      out[cand[i]] = (float) (weight[i] / total);
    }
  }

  /**
   * llama.cpp repetition penalty, in place: each distinct token among the last {@code lastN} of
   * {@code tokens[0 .. tokenCount)} has its logit divided by {@code penalty} if positive and
   * multiplied by it otherwise, once however often it occurs.
   */
  public static void applyRepetitionPenalty(
      float[] logits, int[] tokens, int tokenCount, float penalty, int lastN) {
    if (penalty == 1f || lastN == 0 || tokenCount == 0) {
      return;
    }
    int from = Math.max(0, tokenCount - lastN);
    int[] window = Arrays.copyOfRange(tokens, from, tokenCount);
    Arrays.sort(window);
    for (int i = 0; i < window.length; i++) {
      int t = window[i];
      if (i > 0 && t == window[i - 1]) {
        continue;
      }
      if (t < 0 || t >= logits.length) {
        throw new IllegalArgumentException(
            "token " + t + " in the history is outside the vocabulary [0, " + logits.length + ")");
      }
      float l = logits[t];
      logits[t] = l <= 0 ? l * penalty : l / penalty;
    }
  }

  /** Leaves the surviving candidates in {@code cand/weight[0 .. count)} with their sum in total. */
  private void prepare(float[] logits, int[] tokens, int tokenCount) {
    int v = logits.length;
    if (v == 0) {
      throw new IllegalArgumentException("logits must not be empty");
    }
    ensureCapacity(v);
    float[] x = work;
    System.arraycopy(logits, 0, x, 0, v);
    applyRepetitionPenalty(
        x, tokens, tokenCount, params.repetitionPenalty(), params.repetitionLastN());
    if (params.isGreedy()) {
      single(Ops.argmax(x, 0, v));
      return;
    }
    if (params.temperature() != 1f) {
      Ops.scale(x, 0, v, 1f / params.temperature());
    }
    float max = Ops.max(x, 0, v);
    if (Float.isInfinite(max)) {
      // +∞ after a tiny temperature, or nothing finite at all: the argmax is the only choice.
      single(Ops.argmax(x, 0, v));
      return;
    }
    int k = params.topK();
    boolean sorted;
    if (k > 0 && k < v) {
      selectTopK(x, v, k);
      total = 0;
      for (int i = 0; i < k; i++) {
        int id = (int) keys[i];
        cand[i] = id;
        weight[i] = (float) Math.exp(x[id] - max);
        total += weight[i];
      }
      count = k;
      sorted = true;
    } else {
      total = Ops.expSub(x, 0, v, max);
      if (params.topP() < 1f) {
        // Only tokens with p >= (1 − topP) / V can be in the nucleus (see the class comment).
        float cut = (float) ((1 - params.topP()) / v * total);
        int n = 0;
        for (int i = 0; i < v; i++) {
          if (x[i] >= cut && x[i] > 0) {
            keys[n++] = sortKey(x[i], i);
          }
        }
        Arrays.sort(keys, 0, n);
        for (int i = 0; i < n; i++) {
          int id = (int) keys[i];
          cand[i] = id;
          weight[i] = x[id];
        }
        count = n;
        sorted = true;
      } else {
        for (int i = 0; i < v; i++) {
          cand[i] = i;
        }
        System.arraycopy(x, 0, weight, 0, v);
        count = v;
        sorted = false;
      }
    }
    if (params.topP() < 1f) {
      // Smallest prefix whose mass reaches topP of the (top-k) distribution; llama.cpp semantics.
      double target = params.topP() * total;
      double c = 0;
      int m = 0;
      while (m < count) {
        c += weight[m++];
        if (c >= target) {
          break;
        }
      }
      count = m;
      total = c;
    }
    if (params.minP() > 0) {
      float threshold = params.minP() * Ops.max(weight, 0, count);
      int m = 0;
      double c = 0;
      for (int i = 0; i < count; i++) {
        if (weight[i] >= threshold) {
          cand[m] = cand[i];
          weight[m] = weight[i];
          c += weight[i];
          m++;
        } else if (sorted) {
          break;
        }
      }
      count = m;
      total = c;
    }
  }

  private void single(int id) {
    cand[0] = Math.max(id, 0);
    weight[0] = 1f;
    count = 1;
    total = 1;
  }

  /**
   * Leaves in {@code keys[0 .. k)}, sorted, the k smallest sort keys: a bounded max-heap, where
   * almost every token is rejected by one comparison with the root.
   */
  private void selectTopK(float[] x, int v, int k) {
    long[] heap = keys;
    int size = 0;
    for (int i = 0; i < v; i++) {
      long key = sortKey(x[i], i);
      if (size < k) {
        int j = size++;
        while (j > 0) {
          int parent = (j - 1) >>> 1;
          if (heap[parent] >= key) {
            break;
          }
          heap[j] = heap[parent];
          j = parent;
        }
        heap[j] = key;
      } else if (key < heap[0]) {
        int j = 0;
        while (true) {
          int child = 2 * j + 1;
          if (child >= k) {
            break;
          }
          if (child + 1 < k && heap[child + 1] > heap[child]) {
            child++;
          }
          if (heap[child] <= key) {
            break;
          }
          heap[j] = heap[child];
          j = child;
        }
        heap[j] = key;
      }
    }
    Arrays.sort(heap, 0, k);
  }

  /**
   * A long whose ascending order is descending {@code value}, then ascending {@code id}: the float
   * bits mapped to a monotone int, complemented, in the high half; the id in the low half.
   */
  static long sortKey(float value, int id) {
    int bits = Float.floatToRawIntBits(value);
    int monotone = bits ^ ((bits >> 31) & 0x7fffffff);
    return ((long) ~monotone << 32) | id;
  }

  private void ensureCapacity(int v) {
    if (work.length < v) {
      work = new float[v];
      keys = new long[v];
      cand = new int[v];
      weight = new float[v];
    }
  }

  /** SplitMix64 (Steele, Lea, Flood 2014): the next 53 random bits as a double in [0, 1). */
  private double nextDouble() {
    long z = (state += 0x9E3779B97F4A7C15L);
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    z ^= z >>> 31;
    return (z >>> 11) * 0x1.0p-53;
  }
}
