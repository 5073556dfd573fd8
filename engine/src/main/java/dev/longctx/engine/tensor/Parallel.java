package dev.longctx.engine.tensor;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The engine's compute threads: one persistent pool, sized once by the CLI or the serving layer.
 *
 * <p>Decode calls a parallel matmul about a hundred times per token, each well under a millisecond,
 * so the pool is built for low dispatch latency: {@code threads - 1} daemon workers plus the
 * calling thread; an idle worker spins for {@link #SPIN_NANOS} before it parks; chunks are claimed
 * from an atomic counter, so a core stolen by another process slows one chunk, not a whole static
 * share. One job runs at a time: a call made while the pool is busy (a nested call from inside a
 * body, or a second caller thread) runs serially in its own thread instead of waiting.
 */
public final class Parallel {

  /** A body over the half-open index range {@code [start, end)}. */
  @FunctionalInterface
  public interface RangeBody {
    void run(int start, int end);
  }

  /** How long an idle worker spins before it parks (a decode step's gaps are shorter). */
  static final long SPIN_NANOS = 100_000;

  /** How long a caller spins for the last chunks of its own call before it starts yielding. */
  static final long WAIT_SPIN_NANOS = 20_000;

  private static volatile Pool pool = new Pool(defaultThreads());

  private Parallel() {}

  private static int defaultThreads() {
    return Math.max(1, Runtime.getRuntime().availableProcessors());
  }

  /** Number of compute threads (the caller included). */
  public static int threads() {
    return pool.threads;
  }

  /** Resizes the pool; takes effect for the next parallel call. */
  public static synchronized void setThreads(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("threads must be >= 1, got " + n);
    }
    Pool old = pool;
    if (n != old.threads) {
      pool = new Pool(n);
      old.shutdown();
    }
  }

  /** Splits {@code [0, n)} into about one contiguous chunk per thread and runs them in parallel. */
  public static void forRange(int n, RangeBody body) {
    forRange(n, 1, body);
  }

  /**
   * Splits {@code [0, n)} into at most one chunk per thread, each a multiple of {@code grain}
   * (except the last), and runs them in parallel.
   */
  public static void forRange(int n, int grain, RangeBody body) {
    int units = ceilDiv(n, grain);
    int chunks = Math.min(pool.threads, units);
    int unitsPerChunk = chunks == 0 ? 1 : ceilDiv(units, chunks);
    forChunks(n, unitsPerChunk * grain, body);
  }

  /**
   * Runs {@code body} over consecutive chunks of {@code chunk} indices of {@code [0, n)} (the last
   * may be shorter), claimed dynamically by the pool's threads. Use a chunk several times smaller
   * than {@code n / threads()} for load balance.
   */
  public static void forChunks(int n, int chunk, RangeBody body) {
    if (chunk < 1) {
      throw new IllegalArgumentException("chunk must be >= 1, got " + chunk);
    }
    if (n <= 0) {
      return;
    }
    Pool p = pool;
    if (p.threads == 1 || n <= chunk || !p.lock.tryLock()) {
      for (int start = 0; start < n; start += chunk) {
        body.run(start, Math.min(n, start + chunk));
      }
      return;
    }
    try {
      p.run(new Job(n, chunk, body));
    } finally {
      p.lock.unlock();
    }
  }

  private static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }

  /**
   * One parallel call: chunks are claimed through {@code next} and counted through {@code done}.
   */
  private static final class Job {
    final int n;
    final int chunk;
    final int total;
    final RangeBody body;
    final AtomicInteger next = new AtomicInteger();
    final AtomicInteger done = new AtomicInteger();
    final AtomicReference<Throwable> failure = new AtomicReference<>();

    Job(int n, int chunk, RangeBody body) {
      this.n = n;
      this.chunk = chunk;
      this.total = ceilDiv(n, chunk);
      this.body = body;
    }

    /** Claims and runs chunks until none is left. */
    void work() {
      int c;
      while ((c = next.getAndIncrement()) < total) {
        int start = c * chunk;
        try {
          if (failure.get() == null) {
            body.run(start, Math.min(n, start + chunk));
          }
        } catch (Throwable t) {
          failure.compareAndSet(null, t);
        } finally {
          done.incrementAndGet();
        }
      }
    }
  }

  private static final class Pool {
    final int threads;
    final ReentrantLock lock = new ReentrantLock();
    final Worker[] workers;
    volatile Job job;
    volatile long generation;
    volatile boolean stopped;

    Pool(int threads) {
      this.threads = threads;
      this.workers = new Worker[threads - 1];
      for (int i = 0; i < workers.length; i++) {
        workers[i] = new Worker(this, i);
        workers[i].start();
      }
    }

    void run(Job j) {
      job = j;
      generation++; // only the lock holder writes
      for (Worker w : workers) {
        if (w.parked) {
          LockSupport.unpark(w);
        }
      }
      j.work();
      // Wait for chunks still running elsewhere: spin briefly, then yield, so that on an
      // oversubscribed machine a descheduled worker gets the core back instead of our spinning.
      long yieldAfter = 0;
      int spins = 0;
      while (j.done.get() < j.total) {
        if ((++spins & 63) != 0) {
          Thread.onSpinWait();
        } else if (yieldAfter == 0) {
          yieldAfter = System.nanoTime() + WAIT_SPIN_NANOS;
        } else if (System.nanoTime() > yieldAfter) {
          Thread.yield();
        }
      }
      job = null;
      Throwable t = j.failure.get();
      if (t instanceof RuntimeException re) {
        throw re;
      } else if (t instanceof Error e) {
        throw e;
      } else if (t != null) {
        throw new RuntimeException(t);
      }
    }

    void shutdown() {
      stopped = true;
      for (Worker w : workers) {
        LockSupport.unpark(w);
      }
    }
  }

  private static final class Worker extends Thread {
    final Pool pool;
    volatile boolean parked;

    Worker(Pool pool, int index) {
      super("longctx-compute-" + (index + 1));
      this.pool = pool;
      setDaemon(true);
    }

    @Override
    public void run() {
      long seen = pool.generation;
      while (!pool.stopped) {
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        int spins = 0;
        while (pool.generation == seen && !pool.stopped) {
          if ((++spins & 63) != 0 || System.nanoTime() < spinUntil) {
            Thread.onSpinWait();
          } else {
            parked = true;
            if (pool.generation == seen && !pool.stopped) {
              LockSupport.park(this);
            }
            parked = false;
          }
        }
        seen = pool.generation;
        Job j = pool.job;
        if (j != null) {
          j.work();
        }
      }
    }
  }
}
