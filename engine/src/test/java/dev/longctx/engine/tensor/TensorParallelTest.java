package dev.longctx.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The compute pool that every tensor kernel runs on. */
class TensorParallelTest {

  @AfterEach
  void restore() {
    Parallel.setThreads(2);
  }

  @Test
  void everyIndexRunsExactlyOnceForAnyThreadCountAndChunk() {
    for (int threads : new int[] {1, 2, 3}) {
      Parallel.setThreads(threads);
      for (int n : new int[] {0, 1, 7, 64, 1000}) {
        for (int chunk : new int[] {1, 3, 64, 5000}) {
          AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(n, 1));
          for (int rep = 0; rep < 20; rep++) {
            Parallel.forChunks(
                n,
                chunk,
                (s, e) -> {
                  assertThat(e - s).isLessThanOrEqualTo(chunk);
                  for (int i = s; i < e; i++) {
                    hits.incrementAndGet(i);
                  }
                });
          }
          for (int i = 0; i < n; i++) {
            assertThat(hits.get(i))
                .as("threads=%d n=%d chunk=%d i=%d", threads, n, chunk, i)
                .isEqualTo(20);
          }
        }
      }
    }
  }

  @Test
  void forRangeChunksAreMultiplesOfTheGrain() {
    Parallel.setThreads(2);
    AtomicIntegerArray hits = new AtomicIntegerArray(100);
    Parallel.forRange(
        100,
        8,
        (s, e) -> {
          assertThat(s % 8).isZero();
          for (int i = s; i < e; i++) {
            hits.incrementAndGet(i);
          }
        });
    for (int i = 0; i < 100; i++) {
      assertThat(hits.get(i)).isEqualTo(1);
    }
  }

  @Test
  void aBodyFailureReachesTheCallerAndThePoolKeepsWorking() {
    Parallel.setThreads(2);
    assertThatThrownBy(
            () ->
                Parallel.forChunks(
                    100,
                    1,
                    (s, e) -> {
                      if (s == 57) {
                        throw new IllegalStateException("boom");
                      }
                    }))
        .isInstanceOf(IllegalStateException.class)
        .hasMessage("boom");
    AtomicIntegerArray hits = new AtomicIntegerArray(10);
    Parallel.forChunks(10, 1, (s, e) -> hits.incrementAndGet(s));
    for (int i = 0; i < 10; i++) {
      assertThat(hits.get(i)).isEqualTo(1);
    }
  }

  @Test
  void nestedCallsRunInlineInsteadOfDeadlocking() {
    Parallel.setThreads(2);
    AtomicIntegerArray hits = new AtomicIntegerArray(16 * 16);
    Parallel.forChunks(
        16, 1, (s, e) -> Parallel.forChunks(16, 1, (s2, e2) -> hits.incrementAndGet(s * 16 + s2)));
    for (int i = 0; i < 256; i++) {
      assertThat(hits.get(i)).isEqualTo(1);
    }
  }
}
