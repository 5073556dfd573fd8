package dev.longctx.worker.coordinator;

/**
 * The forward pass of one request's sequence, wherever its KV lives: in this process, or spread
 * over shards by sequence range. Not thread-safe; one engine step at a time.
 */
public interface SequenceRunner extends AutoCloseable {

  /** Feeds {@code tokens} after the sequence's current end; returns the last token's logits. */
  float[] prefill(int[] tokens);

  /**
   * {@link #prefill(int[])}, told whether the logits are needed: a prompt chunk before the last may
   * skip computing and moving them (an empty array then).
   */
  default float[] prefill(int[] tokens, boolean wantLogits) {
    return prefill(tokens);
  }

  /** Feeds one token; returns its logits. */
  float[] decode(int token);

  /** Tokens whose KV the sequence holds. */
  int length();

  /** Shards holding the sequence's KV (1 in a single process). */
  int shardsUsed();

  /** Frees the sequence's KV everywhere; idempotent. */
  @Override
  void close();
}
