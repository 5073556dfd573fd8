package dev.longctx.engine.attention;

import java.util.Arrays;

/**
 * Per-block key summaries of one layer for block top-k (ALGORITHMS.md §3.1, §3.3): per block of
 * {@code blockSize} consecutive tokens and per KV head, the sum of the keys (MoBA's mean-pooled
 * representative is sum / count) and the element-wise min and max (Quest's bounds), updated
 * incrementally as tokens are appended.
 */
final class BlockSummaries {

  private final int kvDim;
  private final int headDim;
  private final int blockSize;
  private float[] sum;
  private float[] min;
  private float[] max;
  private int blocks;

  BlockSummaries(int kvHeads, int headDim, int blockSize, int tokens) {
    this.kvDim = kvHeads * headDim;
    this.headDim = headDim;
    this.blockSize = blockSize;
    this.blocks = 0;
    sum = new float[0];
    min = new float[0];
    max = new float[0];
    reserve(tokens);
  }

  void reserve(int tokens) {
    int need = (tokens + blockSize - 1) / blockSize;
    if (need > blocks) {
      int b = Math.max(need, blocks * 2);
      sum = Arrays.copyOf(sum, b * kvDim);
      min = Arrays.copyOf(min, b * kvDim);
      max = Arrays.copyOf(max, b * kvDim);
      blocks = b;
    }
  }

  long bytesAllocated() {
    return 3L * blocks * kvDim * Float.BYTES;
  }

  /** Folds token {@code pos}'s keys ({@code kvDim} floats at {@code k[off]}) into its block. */
  void put(int pos, float[] k, int off) {
    int b = pos / blockSize;
    int base = b * kvDim;
    boolean first = pos % blockSize == 0;
    for (int i = 0; i < kvDim; i++) {
      float v = k[off + i];
      if (first) {
        sum[base + i] = v;
        min[base + i] = v;
        max[base + i] = v;
      } else {
        sum[base + i] += v;
        min[base + i] = Math.min(min[base + i], v);
        max[base + i] = Math.max(max[base + i], v);
      }
    }
  }

  /**
   * Adds to {@code out[b]}, for complete blocks {@code b < count}, the score of the query head at
   * {@code q[qOffset ..]} against KV head {@code kvHead}: MoBA {@code ⟨q, mean⟩} (no 1/√d, §3.1) or
   * the Quest bound {@code Σ_i max(q_i·m_i, q_i·M_i)} (§3.3).
   */
  void addScores(
      AttentionPolicy.BlockScore kind, float[] q, int qOffset, int kvHead, int count, float[] out) {
    float inv = 1f / blockSize;
    for (int b = 0; b < count; b++) {
      int base = b * kvDim + kvHead * headDim;
      float acc = 0;
      if (kind == AttentionPolicy.BlockScore.MEAN) {
        for (int d = 0; d < headDim; d++) {
          acc += q[qOffset + d] * sum[base + d];
        }
        acc *= inv;
      } else {
        for (int d = 0; d < headDim; d++) {
          float qd = q[qOffset + d];
          acc += Math.max(qd * min[base + d], qd * max[base + d]);
        }
      }
      out[b] += acc;
    }
  }
}
