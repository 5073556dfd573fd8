package dev.longctx.engine.inference;

import dev.longctx.engine.model.LlamaConfig;

/** One sequence being generated: its KV cache and reusable activation buffers. */
public final class Sequence {

  private final KvCache cache;
  private Transformer.Scratch scratch;

  Sequence(KvCache cache) {
    this.cache = cache;
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
