package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;

/** Runs every sequence in this process on the engine's {@link Transformer} (one shard). */
public final class LocalBackend implements ForwardBackend {

  private final Transformer transformer;

  public LocalBackend(Transformer transformer) {
    this.transformer = transformer;
  }

  @Override
  public SequenceRunner open(String requestId, int capacity, int promptTokens) {
    Sequence seq = transformer.newSequence(capacity);
    return new SequenceRunner() {
      private boolean closed;

      @Override
      public float[] prefill(int[] tokens) {
        return transformer.prefill(seq, tokens);
      }

      @Override
      public float[] decode(int token) {
        return transformer.decode(seq, token);
      }

      @Override
      public int length() {
        return closed ? 0 : seq.length();
      }

      @Override
      public int shardsUsed() {
        return 1;
      }

      @Override
      public void close() {
        if (!closed) {
          closed = true;
          transformer.release(seq); // the KV pages go back to the pool at once
        }
      }
    };
  }

  @Override
  public int shardCount() {
    return 1;
  }
}
