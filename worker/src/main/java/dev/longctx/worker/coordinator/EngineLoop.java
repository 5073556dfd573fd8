package dev.longctx.worker.coordinator;

import io.grpc.Status;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.jboss.logging.Logger;

/**
 * The coordinator's scheduler: one engine thread that admits queued requests while KV capacity
 * allows, and runs the active ones step by step in turn (a prefill chunk or one decode step each),
 * so a long prefill does not stall the streams of others. A request that finds no capacity waits in
 * the queue (counted as context load) and gets {@code RESOURCE_EXHAUSTED} after the queue deadline;
 * one that could never fit gets it at once.
 */
public final class EngineLoop implements AutoCloseable {

  private static final Logger LOG = Logger.getLogger(EngineLoop.class);

  private final ForwardBackend backend;
  private final long capacityTokens;
  private final long queueTimeoutNanos;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition work = lock.newCondition();
  private final Deque<GenerationTask> queue = new ArrayDeque<>();
  private final List<GenerationTask> active = new ArrayList<>();
  private final Thread thread;
  private volatile boolean closed;
  private int next;

  /**
   * @param capacityTokens KV tokens the backend may hold for all requests together
   * @param queueTimeoutMillis how long a request may wait for capacity
   */
  public EngineLoop(ForwardBackend backend, long capacityTokens, long queueTimeoutMillis) {
    this.backend = backend;
    this.capacityTokens = capacityTokens;
    this.queueTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(queueTimeoutMillis);
    this.thread = Thread.ofPlatform().name("longctx-engine").daemon().start(this::run);
  }

  public ForwardBackend backend() {
    return backend;
  }

  /** Queues a request; its sink hears everything from the engine thread. */
  public void submit(GenerationTask task) {
    if (task.capacity() > capacityTokens) {
      task.failToStart(
          Status.RESOURCE_EXHAUSTED
              .withDescription(
                  "the request needs "
                      + task.capacity()
                      + " KV tokens (prompt + max tokens), more than the pool's capacity of "
                      + capacityTokens
                      + " tokens")
              .asRuntimeException());
      return;
    }
    lock.lock();
    try {
      if (closed) {
        task.failToStart(Status.UNAVAILABLE.withDescription("shutting down").asRuntimeException());
        return;
      }
      queue.addLast(task);
      work.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** Wakes the loop (a task was cancelled). */
  public void poke() {
    lock.lock();
    try {
      work.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** A consistent reading of the load. */
  public record Snapshot(
      long residentTokens,
      long capacityTokens,
      long queuedTokens,
      int activeRequests,
      int queuedRequests) {}

  public Snapshot snapshot() {
    lock.lock();
    try {
      long resident = 0;
      long queued = 0;
      for (GenerationTask t : active) {
        resident += t.residentTokens();
        queued += t.pendingPrefillTokens();
      }
      for (GenerationTask t : queue) {
        queued += t.spec().prompt().length;
      }
      return new Snapshot(resident, capacityTokens, queued, active.size(), queue.size());
    } finally {
      lock.unlock();
    }
  }

  private void run() {
    while (!closed) {
      GenerationTask task;
      lock.lock();
      try {
        admit();
        while (active.isEmpty() && !closed) {
          long wait =
              queue.isEmpty() ? TimeUnit.SECONDS.toNanos(1) : TimeUnit.MILLISECONDS.toNanos(50);
          work.awaitNanos(wait);
          admit();
        }
        if (closed) {
          break;
        }
        next = next % active.size();
        task = active.get(next);
      } catch (InterruptedException e) {
        break;
      } finally {
        lock.unlock();
      }
      boolean finished;
      try {
        finished = task.step();
      } catch (RuntimeException e) {
        LOG.errorf(e, "request %s failed", task.requestId());
        finished = true;
      }
      lock.lock();
      try {
        if (finished) {
          active.remove(task);
        } else {
          next++;
        }
      } finally {
        lock.unlock();
      }
    }
    lock.lock();
    try {
      for (GenerationTask t : active) {
        t.cancel();
        t.step();
      }
      active.clear();
    } finally {
      lock.unlock();
    }
  }

  /** Moves queued requests to active while they fit; expires those past their deadline. */
  private void admit() {
    long reserved = 0;
    for (GenerationTask t : active) {
      reserved += t.capacity();
    }
    long now = System.nanoTime();
    for (Iterator<GenerationTask> it = queue.iterator(); it.hasNext(); ) {
      GenerationTask t = it.next();
      if (t.isCancelled()) {
        it.remove();
        continue;
      }
      if (reserved + t.capacity() <= capacityTokens) {
        it.remove();
        reserved += t.capacity();
        try {
          t.start(
              t.inContext(
                  () -> backend.open(t.requestId(), t.capacity(), t.spec().prompt().length)));
          active.add(t);
        } catch (RuntimeException e) {
          t.failToStart(e);
        }
      } else if (now - t.arrivalNanos() > queueTimeoutNanos) {
        it.remove();
        t.failToStart(
            Status.RESOURCE_EXHAUSTED
                .withDescription(
                    "no KV capacity for "
                        + t.capacity()
                        + " tokens within "
                        + TimeUnit.NANOSECONDS.toMillis(queueTimeoutNanos)
                        + " ms (capacity "
                        + capacityTokens
                        + " tokens, "
                        + reserved
                        + " reserved)")
                .asRuntimeException());
      }
    }
  }

  @Override
  public void close() {
    lock.lock();
    try {
      closed = true;
      for (GenerationTask t : queue) {
        t.failToStart(Status.UNAVAILABLE.withDescription("shutting down").asRuntimeException());
      }
      queue.clear();
      work.signalAll();
    } finally {
      lock.unlock();
    }
    try {
      thread.join(TimeUnit.SECONDS.toMillis(10));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    backend.close();
  }
}
