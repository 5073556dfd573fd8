package dev.longctx.engine.kernel;

import java.util.Arrays;
import java.util.List;

/**
 * The attention of one (query, head) over a subset of the keys: the normalized output {@code O_r}
 * and the log-sum-exp {@code LSE_r} of its scores (ALGORITHMS.md §4.2). An empty subset is {@code O
 * = 0, LSE = −∞}. Partials over disjoint key sets merge exactly into the attention over their
 * union, independent of order and of how the keys were split.
 *
 * <p>The output array is held, not copied (a record of an array compares by reference).
 *
 * @param output the normalized attention output, length d_v
 * @param lse natural-log log-sum-exp of the scaled scores; −∞ for an empty key set, never NaN or +∞
 *     (convert foreign conventions first, ALGORITHMS.md §4.2 "Rules")
 */
public record Partial(float[] output, float lse) {

  public Partial {
    if (output == null) {
      throw new IllegalArgumentException("output must not be null");
    }
    if (Float.isNaN(lse) || lse == Float.POSITIVE_INFINITY) {
      throw new IllegalArgumentException("lse must be finite or -Infinity, got " + lse);
    }
  }

  /** The partial of an empty key set: output 0, LSE −∞. */
  public static Partial empty(int dim) {
    return new Partial(new float[dim], Float.NEGATIVE_INFINITY);
  }

  public boolean isEmpty() {
    return lse == Float.NEGATIVE_INFINITY;
  }

  /** {@link #merge(List)} of the arguments. */
  public static Partial merge(Partial... parts) {
    return merge(Arrays.asList(parts));
  }

  /**
   * Batch log-sum-exp merge (ALGORITHMS.md §4.2): {@code M = max_r LSE_r}, {@code w_r = exp(LSE_r −
   * M)}, {@code O = Σ w_r·O_r / Σ w_r}, {@code LSE = M + ln Σ w_r}. Weights are formed in double;
   * empty partials get weight 0, and if all are empty the result is empty.
   */
  public static Partial merge(List<Partial> parts) {
    if (parts.isEmpty()) {
      throw new IllegalArgumentException("parts must not be empty");
    }
    int dim = parts.get(0).output.length;
    float[] outputs = new float[parts.size() * dim];
    float[] lses = new float[parts.size()];
    for (int r = 0; r < parts.size(); r++) {
      Partial p = parts.get(r);
      if (p.output.length != dim) {
        throw new IllegalArgumentException(
            "output length of part " + r + " is " + p.output.length + ", expected " + dim);
      }
      System.arraycopy(p.output, 0, outputs, r * dim, dim);
      lses[r] = p.lse;
    }
    float[] out = new float[dim];
    float lse = merge(outputs, lses, parts.size(), dim, out, 0);
    return new Partial(out, lse);
  }

  /**
   * Struct-of-arrays batch merge of {@code parts} partials of one head: partial r's output is
   * {@code outputs[r * dim .. (r + 1) * dim)} and its LSE {@code lses[r]}. Writes the merged output
   * to {@code out[outOffset ..]} and returns the merged LSE (ALGORITHMS.md §4.2).
   */
  public static float merge(
      float[] outputs, float[] lses, int parts, int dim, float[] out, int outOffset) {
    double max = Double.NEGATIVE_INFINITY;
    for (int r = 0; r < parts; r++) {
      max = Math.max(max, checkLse(lses[r]));
    }
    Arrays.fill(out, outOffset, outOffset + dim, 0f);
    if (max == Double.NEGATIVE_INFINITY) {
      return Float.NEGATIVE_INFINITY;
    }
    double total = 0;
    for (int r = 0; r < parts; r++) {
      total += Math.exp(lses[r] - max);
    }
    for (int r = 0; r < parts; r++) {
      double w = Math.exp(lses[r] - max) / total;
      if (w != 0) {
        Ops.addScaled(out, outOffset, outputs, r * dim, dim, (float) w);
      }
    }
    return (float) (max + Math.log(total));
  }

  /**
   * Merges, for each of {@code heads} heads, the partials of {@code shardOutputs.length} shards:
   * shard r holds head h's output at {@code shardOutputs[r][h * dim ..]} and its LSE at {@code
   * shardLses[r][h]} (the o_tok message of ALGORITHMS.md §4.1). Writes head h's merged output to
   * {@code out[h * dim ..]} and its LSE to {@code lseOut[h]}.
   */
  public static void mergeHeads(
      float[][] shardOutputs,
      float[][] shardLses,
      int heads,
      int dim,
      float[] out,
      float[] lseOut) {
    int shards = shardOutputs.length;
    if (shards == 0 || shardLses.length != shards) {
      throw new IllegalArgumentException(
          "need one LSE array per output array and at least one shard, got "
              + shards
              + " outputs and "
              + shardLses.length
              + " LSE arrays");
    }
    for (int h = 0; h < heads; h++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int r = 0; r < shards; r++) {
        max = Math.max(max, checkLse(shardLses[r][h]));
      }
      int o = h * dim;
      Arrays.fill(out, o, o + dim, 0f);
      if (max == Double.NEGATIVE_INFINITY) {
        lseOut[h] = Float.NEGATIVE_INFINITY;
        continue;
      }
      double total = 0;
      for (int r = 0; r < shards; r++) {
        total += Math.exp(shardLses[r][h] - max);
      }
      for (int r = 0; r < shards; r++) {
        double w = Math.exp(shardLses[r][h] - max) / total;
        if (w != 0) {
          Ops.addScaled(out, o, shardOutputs[r], o, dim, (float) w);
        }
      }
      lseOut[h] = (float) (max + Math.log(total));
    }
  }

  private static float checkLse(float lse) {
    if (Float.isNaN(lse) || lse == Float.POSITIVE_INFINITY) {
      throw new IllegalArgumentException("lse must be finite or -Infinity, got " + lse);
    }
    return lse;
  }

  /**
   * Pairwise streaming merge, the form used in ring loops (ALGORITHMS.md §4.2): {@code O ← O −
   * sigmoid(LSE_b − LSE)·(O − O_b)}, {@code LSE ← max + log1p(exp(−|LSE − LSE_b|))}. Returns a new
   * partial; empty operands are the identity.
   */
  public Partial mergeWith(Partial other) {
    if (other.output.length != output.length) {
      throw new IllegalArgumentException(
          "output lengths differ: " + output.length + " vs " + other.output.length);
    }
    if (other.isEmpty()) {
      return new Partial(output.clone(), lse);
    }
    if (isEmpty()) {
      return new Partial(other.output.clone(), other.lse);
    }
    double diff = (double) other.lse - lse;
    float b = (float) (1.0 / (1.0 + Math.exp(-diff))); // sigmoid(LSE_b − LSE): weight of other
    float[] merged = new float[output.length];
    for (int i = 0; i < merged.length; i++) {
      merged[i] = output[i] - b * (output[i] - other.output[i]);
    }
    double lseMerged = Math.max(lse, other.lse) + Math.log1p(Math.exp(-Math.abs(diff)));
    return new Partial(merged, (float) lseMerged);
  }
}
