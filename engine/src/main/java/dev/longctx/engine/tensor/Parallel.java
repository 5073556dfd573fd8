package dev.longctx.engine.tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/** The engine's compute threads. One pool, sized once by the CLI or the serving layer. */
public final class Parallel {

  /** A body over the half-open index range {@code [start, end)}. */
  @FunctionalInterface
  public interface RangeBody {
    void run(int start, int end);
  }

  private static volatile ForkJoinPool pool = new ForkJoinPool(defaultThreads());
  private static volatile int threads = defaultThreads();

  private Parallel() {}

  private static int defaultThreads() {
    return Math.max(1, Runtime.getRuntime().availableProcessors());
  }

  /** Number of compute threads. */
  public static int threads() {
    return threads;
  }

  /** Resizes the pool; takes effect for the next parallel call. */
  public static synchronized void setThreads(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("threads must be >= 1, got " + n);
    }
    if (n != threads) {
      ForkJoinPool old = pool;
      pool = new ForkJoinPool(n);
      threads = n;
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
    int t = threads;
    if (t == 1 || n <= grain) {
      body.run(0, n);
      return;
    }
    int units = (n + grain - 1) / grain;
    int chunks = Math.min(t, units);
    List<RecursiveAction> tasks = new ArrayList<>(chunks);
    for (int i = 0; i < chunks; i++) {
      int start = Math.min(n, (int) ((long) units * i / chunks) * grain);
      int end = Math.min(n, (int) ((long) units * (i + 1) / chunks) * grain);
      tasks.add(
          new RecursiveAction() {
            @Override
            protected void compute() {
              body.run(start, end);
            }
          });
    }
    pool.invoke(
        new RecursiveAction() {
          @Override
          protected void compute() {
            invokeAll(tasks);
          }
        });
  }
}
