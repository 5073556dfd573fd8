package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.SequenceAttention;

/**
 * For benchmarks only: grows a sequence to a given depth without running the model, so decode at
 * 32K context can be timed on a machine where a 32K prefill takes many minutes. The tokens already
 * resident (a real prefill of a short chunk) are replicated cyclically: position p gets the keys,
 * values (and SelfExtend grouped keys, and selector state) of position {@code p mod r}, r the
 * resident length. The cache then has the right size, layout and value scale, and decode reads
 * exactly what it would read after a real prefill; its content is not a real context (keys carry
 * their source positions' rotations), so outputs and selections are meaningless.
 */
public final class SyntheticContext {

  private SyntheticContext() {}

  /** Extends {@code seq} (holding r ≥ 1 real tokens) to {@code depth} tokens by replication. */
  public static void extend(Sequence seq, int depth) {
    KvCache cache = seq.cache();
    int resident = cache.length();
    if (resident < 1) {
      throw new IllegalArgumentException("a synthetic context replicates resident tokens: none");
    }
    if (depth <= resident) {
      return;
    }
    if (seq.policy() instanceof AttentionPolicy.IndexerTopK t
        && !(t.indexer() instanceof IndexerSource.OwnHeads)) {
      throw new IllegalArgumentException(
          "a synthetic context supports the own-heads indexer only: a "
              + t.indexer().name()
              + " indexer's keys need the layers' real inputs");
    }
    cache.reserve(depth);
    SequenceAttention attention = seq.attention();
    if (attention != null) {
      attention.reserve(depth);
    }
    int kvDim = cache.kvDim();
    for (int l = 0; l < cache.layers(); l++) {
      float[] keys = cache.keys(l);
      float[] values = cache.values(l);
      float[] groupKeys = cache.groupKeys(l);
      for (int p = resident; p < depth; p += resident) {
        int n = Math.min(resident, depth - p);
        System.arraycopy(keys, 0, keys, p * kvDim, n * kvDim);
        System.arraycopy(values, 0, values, p * kvDim, n * kvDim);
        if (groupKeys != null) {
          System.arraycopy(groupKeys, 0, groupKeys, p * kvDim, n * kvDim);
        }
      }
      if (attention != null) {
        attention.append(l, resident, depth - resident, keys, groupKeys, null);
      }
    }
    cache.setLength(depth);
  }
}
