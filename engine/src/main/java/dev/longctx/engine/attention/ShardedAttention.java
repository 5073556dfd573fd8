package dev.longctx.engine.attention;

import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Partial;
import java.util.List;

/**
 * Primitives of sequence-sharded attention, used in-process here and by the coordinator later
 * (ALGORITHMS.md §4): the attention of a query head over any subset of the cached keys as a {@link
 * Partial} (output, LSE), the exact LSE merge of partials (§4.2), the round-robin token→shard map
 * (§4.5 "Setting"), and the exact distributed top-k (§4.5, {@link TopK#merge}).
 */
public final class ShardedAttention {

  private ShardedAttention() {}

  /**
   * Attention of the query head at {@code q[qOffset ..]} over the keys at {@code positions} only
   * (key p at {@code keys[base + p·stride]}); an empty set gives output 0, LSE −∞.
   */
  public static Partial attend(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int[] positions,
      int headDim,
      float scale) {
    float[] out = new float[headDim];
    float lse =
        Attention.attendPositions(
            q,
            qOffset,
            keys,
            values,
            base,
            stride,
            positions,
            0,
            positions.length,
            headDim,
            scale,
            out,
            0);
    return new Partial(out, lse);
  }

  /** Exact merge of the partials of disjoint key sets (ALGORITHMS.md §4.2). */
  public static Partial merge(List<Partial> partials) {
    return Partial.merge(partials);
  }

  /** Round-robin owner of global token s: {@code (s / I) mod P} (ALGORITHMS.md §4.5). */
  public static int shardOf(int s, int shards, int interleave) {
    return (s / interleave) % shards;
  }

  /** Local slot of global token s on its owner: {@code (s / (I·P))·I + (s mod I)}. */
  public static int localSlot(int s, int shards, int interleave) {
    return (s / (interleave * shards)) * interleave + (s % interleave);
  }

  /** Inverse of {@link #localSlot}: {@code ((l / I)·P + r)·I + (l mod I)}. */
  public static int globalPosition(int local, int shard, int shards, int interleave) {
    return ((local / interleave) * shards + shard) * interleave + (local % interleave);
  }
}
