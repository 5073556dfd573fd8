package dev.longctx.engine.attention;

import dev.longctx.engine.kernel.Lanes;
import dev.longctx.engine.kernel.Ops;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Per-block key summaries of one layer for block top-k and for the own-heads selector's page
 * pruning (ALGORITHMS.md §3.1, §3.3): per block of {@code blockSize} consecutive tokens and per KV
 * head, the element-wise min and max (Quest's bounds) and, when kept, the sum of the keys (MoBA's
 * mean-pooled representative is sum / count), updated incrementally as tokens are appended. A
 * partially filled last block summarizes its real tokens only.
 */
final class BlockSummaries {

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

  private final int kvDim;
  private final int headDim;
  private final int blockSize;
  private final boolean keepSum;
  private float[] sum;
  private float[] min;
  private float[] max;
  private int blocks;

  BlockSummaries(int kvHeads, int headDim, int blockSize, int tokens) {
    this(kvHeads, headDim, blockSize, tokens, true);
  }

  /** Summaries without the key sums when {@code keepSum} is false (Quest bounds only). */
  BlockSummaries(int kvHeads, int headDim, int blockSize, int tokens, boolean keepSum) {
    this.kvDim = kvHeads * headDim;
    this.headDim = headDim;
    this.blockSize = blockSize;
    this.keepSum = keepSum;
    this.blocks = 0;
    sum = new float[0];
    min = new float[0];
    max = new float[0];
    reserve(tokens);
  }

  int blockSize() {
    return blockSize;
  }

  void reserve(int tokens) {
    int need = (tokens + blockSize - 1) / blockSize;
    if (need > blocks) {
      int b = Math.max(need, blocks * 2);
      if (keepSum) {
        sum = Arrays.copyOf(sum, b * kvDim);
      }
      min = Arrays.copyOf(min, b * kvDim);
      max = Arrays.copyOf(max, b * kvDim);
      blocks = b;
    }
  }

  long bytesAllocated() {
    return (keepSum ? 3L : 2L) * blocks * kvDim * Float.BYTES;
  }

  /** Folds token {@code pos}'s keys ({@code kvDim} floats at {@code k[off]}) into its block. */
  void put(int pos, float[] k, int off) {
    int b = pos / blockSize;
    int base = b * kvDim;
    if (pos % blockSize == 0) {
      if (keepSum) {
        System.arraycopy(k, off, sum, base, kvDim);
      }
      System.arraycopy(k, off, min, base, kvDim);
      System.arraycopy(k, off, max, base, kvDim);
      return;
    }
    for (int i = 0; i < kvDim; i++) {
      float v = k[off + i];
      if (keepSum) {
        sum[base + i] += v;
      }
      min[base + i] = Math.min(min[base + i], v);
      max[base + i] = Math.max(max[base + i], v);
    }
  }

  /**
   * Adds to {@code out[b]}, for complete blocks {@code b < count}, the score of the query head at
   * {@code q[qOffset ..]} against KV head {@code kvHead}: MoBA {@code ⟨q, mean⟩} (no 1/√d, §3.1) or
   * the Quest bound {@code Σ_i max(q_i·m_i, q_i·M_i)} (§3.3).
   */
  void addScores(
      AttentionPolicy.BlockScore kind, float[] q, int qOffset, int kvHead, int count, float[] out) {
    if (kind == AttentionPolicy.BlockScore.QUEST) {
      for (int b = 0; b < count; b++) {
        out[b] += bound(q, qOffset, b * kvDim + kvHead * headDim);
      }
      return;
    }
    if (!keepSum) {
      throw new IllegalStateException("these summaries keep no key sums");
    }
    float inv = 1f / blockSize;
    for (int b = 0; b < count; b++) {
      out[b] += inv * Ops.dot(q, qOffset, sum, b * kvDim + kvHead * headDim, headDim);
    }
  }

  /**
   * {@code out[outOffset + b − from] = scale · U(b)}, the Quest bound of blocks {@code b ∈ [from,
   * to)} (the last may be partial) for the query head at {@code q[qOffset ..]} against KV head
   * {@code kvHead}: for every key k of the block, {@code scale·q·k ≤} this (ALGORITHMS.md §3.3).
   */
  void bounds(
      float[] q,
      int qOffset,
      int kvHead,
      int from,
      int to,
      float scale,
      float[] out,
      int outOffset) {
    for (int b = from; b < to; b++) {
      out[outOffset + b - from] = scale * bound(q, qOffset, b * kvDim + kvHead * headDim);
    }
  }

  /** {@code Σ_i max(q_i·m_i, q_i·M_i)} for the summary row at {@code base}. */
  private float bound(float[] q, int qOffset, int base) {
    float acc = 0;
    int d = 0;
    int bound = F.loopBound(headDim);
    if (bound > 0) {
      FloatVector a = FloatVector.zero(F);
      for (; d < bound; d += F.length()) {
        FloatVector qv = FloatVector.fromArray(F, q, qOffset + d);
        FloatVector lo = qv.mul(FloatVector.fromArray(F, min, base + d));
        FloatVector hi = qv.mul(FloatVector.fromArray(F, max, base + d));
        a = a.add(lo.max(hi));
      }
      acc = Lanes.sum(a);
    }
    for (; d < headDim; d++) {
      float qd = q[qOffset + d];
      acc += Math.max(qd * min[base + d], qd * max[base + d]);
    }
    return acc;
  }
}
