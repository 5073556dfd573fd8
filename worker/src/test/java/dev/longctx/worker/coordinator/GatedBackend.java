package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Transformer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The in-process engine with every decode step waiting for a permit the test hands out, so which
 * request holds KV when, and how far a stream has got, is decided by the test and not by timing.
 */
public final class GatedBackend implements ForwardBackend {

  private final LocalBackend local;
  private final List<String> opened = new ArrayList<>();

  /** Decode steps allowed; each step takes one. */
  public final Semaphore steps = new Semaphore(0);

  /** Decode steps taken. */
  public final AtomicInteger decodes = new AtomicInteger();

  public GatedBackend(Transformer transformer) {
    this.local = new LocalBackend(transformer);
  }

  @Override
  public synchronized SequenceRunner open(String requestId, int capacity, int promptTokens) {
    opened.add(requestId);
    SequenceRunner r = local.open(requestId, capacity, promptTokens);
    return new SequenceRunner() {
      @Override
      public float[] prefill(int[] tokens) {
        return r.prefill(tokens);
      }

      @Override
      public float[] decode(int token) {
        steps.acquireUninterruptibly();
        decodes.incrementAndGet();
        return r.decode(token);
      }

      @Override
      public int length() {
        return r.length();
      }

      @Override
      public int shardsUsed() {
        return 1;
      }

      @Override
      public void close() {
        r.close();
      }
    };
  }

  /** Request ids in the order they were admitted. */
  public synchronized List<String> opened() {
    return List.copyOf(opened);
  }

  @Override
  public int shardCount() {
    return 1;
  }
}
