package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.model.LlamaConfig;

/**
 * One sequence being generated: its KV cache, its attention policy with that policy's state, and
 * reusable activation buffers.
 */
public final class Sequence {

  private final KvCache cache;
  private final AttentionPolicy policy;
  private final SequenceAttention attention;
  private Transformer.Scratch scratch;

  Sequence(KvCache cache) {
    this(cache, AttentionPolicy.dense(), null);
  }

  Sequence(KvCache cache, AttentionPolicy policy, SequenceAttention attention) {
    this.cache = cache;
    this.policy = policy;
    this.attention = attention;
  }

  /** The attention policy this sequence runs under. */
  public AttentionPolicy policy() {
    return policy;
  }

  /** State and computation of a non-dense policy, or null for plain dense attention. */
  SequenceAttention attention() {
    return attention;
  }

  /**
   * Bytes this sequence's attention state holds now: the KV cache (with SelfExtend's grouped keys)
   * plus selector keys or block summaries.
   */
  public long bytesAllocated() {
    return cache.bytesAllocated() + (attention == null ? 0 : attention.bytesAllocated());
  }

  public KvCache cache() {
    return cache;
  }

  /** Tokens fed so far. */
  public int length() {
    return cache.length();
  }

  Transformer.Scratch scratch(LlamaConfig config, int tokens) {
    if (scratch == null || scratch.capacity < tokens) {
      scratch = new Transformer.Scratch(config, Math.max(tokens, 1));
    }
    return scratch;
  }
}
