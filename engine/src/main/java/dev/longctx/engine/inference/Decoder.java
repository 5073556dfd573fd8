package dev.longctx.engine.inference;

import dev.longctx.engine.model.LlamaConfig;

/**
 * A decoder forward pass behind which a backend sits: the CPU {@link Transformer} or the CUDA model
 * ({@code dev.longctx.engine.cuda.CudaModel}). {@code S} is the backend's per-sequence state (its
 * KV cache).
 */
public interface Decoder<S> {

  LlamaConfig config();

  /** The longest sequence this model supports. */
  int maxContext();

  /** A new, empty sequence that may grow to {@code maxTokens}. */
  S newSequence(int maxTokens);

  /** Feeds {@code tokens} after the sequence's current end; returns the last token's logits. */
  float[] prefill(S seq, int[] tokens);

  /** Feeds one token; returns its logits. */
  float[] decode(S seq, int token);

  /**
   * Frees what the sequence holds outside the Java heap (the GPU's KV pages); the sequence is not
   * used afterwards. The CPU's cache is garbage-collected, so this does nothing there.
   */
  default void release(S seq) {}
}
