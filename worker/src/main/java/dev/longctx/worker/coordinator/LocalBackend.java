package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.Transformer;

/**
 * Runs every sequence in this process on one engine {@link Decoder} (one shard): the CPU {@link
 * Transformer} or the GPU's {@code CudaModel}.
 */
public final class LocalBackend implements ForwardBackend {

  private final Decoder<?> decoder;

  public LocalBackend(Decoder<?> decoder) {
    this.decoder = decoder;
  }

  @Override
  public SequenceRunner open(String requestId, int capacity, int promptTokens) {
    return runner(decoder, capacity);
  }

  private static <S> SequenceRunner runner(Decoder<S> decoder, int capacity) {
    S seq = decoder.newSequence(capacity);
    return new SequenceRunner() {
      private boolean closed;
      private int length;

      @Override
      public float[] prefill(int[] tokens) {
        float[] logits = decoder.prefill(seq, tokens);
        length += tokens.length;
        return logits;
      }

      @Override
      public float[] decode(int token) {
        float[] logits = decoder.decode(seq, token);
        length++;
        return logits;
      }

      @Override
      public int length() {
        return closed ? 0 : length;
      }

      @Override
      public int shardsUsed() {
        return 1;
      }

      @Override
      public void close() {
        if (!closed) {
          closed = true;
          decoder.release(seq); // KV pages (CPU pool or device memory) go back at once
        }
      }
    };
  }

  @Override
  public int shardCount() {
    return 1;
  }
}
