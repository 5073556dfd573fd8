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
    boolean grouped = cache.hasGroupKeys();
    float[] k = new float[resident * kvDim];
    float[] v = new float[resident * kvDim];
    float[] gk = grouped ? new float[resident * kvDim] : null;
    for (int l = 0; l < cache.layers(); l++) {
      for (int src = 0; src < resident; src++) {
        cache.copyKeys(l, src, false, k, src * kvDim);
        cache.copyValues(l, src, v, src * kvDim);
        if (grouped) {
          cache.copyKeys(l, src, true, gk, src * kvDim);
        }
      }
      for (int p = resident; p < depth; p += resident) {
        int n = Math.min(resident, depth - p);
        for (int t = 0; t < n; t++) {
          cache.put(l, p + t, k, t * kvDim, v, t * kvDim);
          if (grouped) {
            cache.putGroupKeys(l, p + t, gk, t * kvDim);
          }
        }
        if (attention != null) {
          attention.append(l, p, n, k, gk, null);
        }
      }
    }
    cache.setLength(depth);
  }
}
