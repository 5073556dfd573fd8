package dev.longctx.worker.coordinator;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
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
 * so a long prefill does not stall the streams of others.
 *
 * <p>Admission (DESIGN.md §5): a request is admitted when the KV tokens it may come to hold (prompt
 * + max tokens) fit beside those reserved by the active requests and fewer than {@code
 * maxActiveRequests} are active. Otherwise it waits in a first-come-first-served queue, whose
 * prompt tokens count as context load (the autoscaler reads them through {@code Admin.GetLoad} and
 * may add shards), and gets {@code RESOURCE_EXHAUSTED} naming the limit only when its queue
 * deadline passes. First-come-first-served means a large request at the head holds back smaller
 * ones behind it rather than being starved by them; the deadline bounds that wait. A request that
 * could never fit the pool gets {@code RESOURCE_EXHAUSTED} at once.
 */
public final class EngineLoop implements AutoCloseable {

  private static final Logger LOG = Logger.getLogger(EngineLoop.class);

  private final ForwardBackend backend;
  private final long capacityTokens;
  private final int maxActiveRequests;
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
    this(backend, capacityTokens, Limits.queueTimeout(queueTimeoutMillis));
  }

  /**
   * How many requests run at once and how long one may wait for admission.
   *
   * @param maxActiveRequests requests stepped concurrently (each holds its KV while active)
   * @param queueTimeoutMillis how long a request may wait in the queue for admission
   */
  public record Limits(int maxActiveRequests, long queueTimeoutMillis) {

    /** Only KV capacity limits how many requests run at once. */
    public static Limits queueTimeout(long queueTimeoutMillis) {
      return new Limits(Integer.MAX_VALUE, queueTimeoutMillis);
    }

    public Limits {
      if (maxActiveRequests < 1) {
        throw new IllegalArgumentException(
            "max active requests must be >= 1, got " + maxActiveRequests);
      }
      if (queueTimeoutMillis < 0) {
        throw new IllegalArgumentException(
            "queue timeout must be >= 0 ms, got " + queueTimeoutMillis);
      }
    }
  }

  /**
   * @param capacityTokens KV tokens the backend may hold for all requests together
   */
  public EngineLoop(ForwardBackend backend, long capacityTokens, Limits limits) {
    this.backend = backend;
    this.capacityTokens = capacityTokens;
    this.maxActiveRequests = limits.maxActiveRequests();
    this.queueTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(limits.queueTimeoutMillis());
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
      if (finished && task.isCancelled()) {
        LOG.infof("request %s: cancelled by the client; its KV is released", task.requestId());
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

  /**
   * Moves queued requests to active in arrival order while they fit; expires those past their
   * deadline (also behind a head that does not fit, so they free their place in time).
   */
  private void admit() {
    long reserved = 0;
    for (GenerationTask t : active) {
      reserved += t.capacity();
    }
    long now = System.nanoTime();
    boolean blocked = false;
    for (Iterator<GenerationTask> it = queue.iterator(); it.hasNext(); ) {
      GenerationTask t = it.next();
      if (t.isCancelled()) {
        it.remove();
        continue;
      }
      if (!blocked
          && reserved + t.capacity() <= capacityTokens
          && active.size() < maxActiveRequests) {
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
        t.failToStart(queueDeadlinePassed(t, reserved));
      } else {
        blocked = true;
      }
    }
  }

  /** The status of a request that waited its whole deadline, naming the limit that held it. */
  private StatusRuntimeException queueDeadlinePassed(GenerationTask t, long reserved) {
    long waitedMillis = TimeUnit.NANOSECONDS.toMillis(queueTimeoutNanos);
    String why;
    if (active.size() >= maxActiveRequests) {
      why =
          "the limit of "
              + maxActiveRequests
              + " concurrent requests stayed reached for "
              + waitedMillis
              + " ms (the queue timeout)";
    } else if (reserved + t.capacity() > capacityTokens) {
      why =
          "no KV capacity for "
              + t.capacity()
              + " tokens (prompt + max tokens) within "
              + waitedMillis
              + " ms (the queue timeout): capacity "
              + capacityTokens
              + " tokens, "
              + reserved
              + " reserved by active requests";
    } else {
      why =
          "requests queued ahead of it held it back for "
              + waitedMillis
              + " ms (the queue timeout)";
    }
    return Status.RESOURCE_EXHAUSTED.withDescription(why).asRuntimeException();
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
