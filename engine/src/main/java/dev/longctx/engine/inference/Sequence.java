package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.SequenceAttention;

/**
 * One sequence being generated: its KV cache, its attention policy with that policy's state, and
 * reusable activation buffers.
 */
public final class Sequence {

  private final KvCache cache;
  private final AttentionPolicy policy;
  private final SequenceAttention attention;
  private TransformerLayers.Activations activations;

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

  TransformerLayers.Activations activations(TransformerLayers layers, int tokens) {
    activations = layers.ensure(activations, tokens);
    return activations;
  }
}
