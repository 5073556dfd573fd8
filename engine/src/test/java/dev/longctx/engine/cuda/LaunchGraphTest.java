package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * {@link LaunchGraph}: recorded steps replayed as one graph launch, their nodes updated where only
 * arguments changed, rebuilt where the kernels changed, and a step that is not only launches run
 * directly (once). Skips without a CUDA device.
 */
class LaunchGraphTest {

  private static final int N = 1000;

  /** Kernels, a graph and three buffers of N floats: x = 1, y = 10, ones = 1. */
  private static final class Fixture implements AutoCloseable {
    final CudaContext cx = CudaTests.context();
    final CudaKernels k = new CudaKernels(cx);
    final LaunchGraph graph = new LaunchGraph(cx);
    final DeviceBuffer x = cx.upload(filled(1f));
    final DeviceBuffer y = cx.upload(filled(10f));
    final DeviceBuffer ones = cx.upload(filled(1f));

    float[] read(DeviceBuffer b) {
      float[] out = new float[N];
      cx.read(b, 0, out, N);
      return out;
    }

    @Override
    public void close() {
      for (AutoCloseable c : new AutoCloseable[] {ones, y, x, graph, k}) {
        try {
          c.close();
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      }
    }
  }

  private static float[] filled(float v) {
    float[] a = new float[N];
    java.util.Arrays.fill(a, v);
    return a;
  }

  @Test
  void stepsReplayUpdateAndRebuild() {
    try (Fixture f = new Fixture()) {
      // x += 1 twice a step, three steps: one graph built, launched three times
      Runnable twice =
          () -> {
            f.k.add(f.x.address(), f.ones.address(), N);
            f.k.add(f.x.address(), f.ones.address(), N);
          };
      for (int i = 0; i < 3; i++) {
        f.graph.run(twice);
      }
      assertThat(f.read(f.x)).containsOnly(7f);
      assertThat(f.graph.stats()).isEqualTo(new LaunchGraph.Stats(3, 0, 1, 0));
      // the same kernels with other arguments (the second adds into y, over fewer elements):
      // that node is updated in place, not rebuilt
      f.graph.run(
          () -> {
            f.k.add(f.x.address(), f.ones.address(), N);
            f.k.add(f.y.address(), f.ones.address(), N / 2);
          });
      float[] ys = f.read(f.y);
      assertThat(f.read(f.x)).containsOnly(8f);
      assertThat(ys[0]).isEqualTo(11f);
      assertThat(ys[N / 2 - 1]).isEqualTo(11f);
      assertThat(ys[N / 2]).isEqualTo(10f);
      assertThat(f.graph.stats()).isEqualTo(new LaunchGraph.Stats(4, 1, 1, 0));
      // a third launch: the graph is rebuilt
      f.graph.run(
          () -> {
            twice.run();
            f.k.swiglu(f.y.address(), f.ones.address(), N);
          });
      assertThat(f.read(f.x)).containsOnly(10f);
      assertThat(f.graph.stats()).isEqualTo(new LaunchGraph.Stats(5, 1, 2, 0));
    }
  }

  /** Launches another thread makes while a step is being recorded are its own: made at once. */
  @Test
  void anotherThreadsLaunchesDuringARecordingAreMadeAtOnce() {
    try (Fixture f = new Fixture()) {
      float[] seenByOther = new float[N];
      f.graph.run(
          () -> {
            f.k.add(f.x.address(), f.ones.address(), N);
            Thread other =
                new Thread(
                    () -> {
                      f.k.add(f.y.address(), f.ones.address(), N);
                      f.cx.read(f.y, 0, seenByOther, N); // waits for its own launch
                    });
            other.start();
            try {
              other.join();
            } catch (InterruptedException e) {
              throw new IllegalStateException(e);
            }
          });
      assertThat(seenByOther).containsOnly(11f);
      assertThat(f.read(f.x)).containsOnly(2f);
      assertThat(f.graph.stats()).isEqualTo(new LaunchGraph.Stats(1, 0, 1, 0));
    }
  }

  /** A graph closed after its context (a sequence released late) closes quietly. */
  @Test
  void aGraphOutlivingItsContextClosesQuietly() {
    CudaTests.context(); // skips without a device
    CudaContext own = CudaContext.open();
    LaunchGraph graph = new LaunchGraph(own);
    try (CudaKernels k = new CudaKernels(own);
        DeviceBuffer x = own.upload(filled(1f))) {
      graph.run(() -> k.add(x.address(), x.address(), N));
      float[] out = new float[N];
      own.read(x, 0, out, N);
      assertThat(out).containsOnly(2f);
    }
    own.close();
    graph.close();
    assertThat(graph.stats().replays()).isEqualTo(1);
  }

  /**
   * A copy inside a step cannot be recorded: nothing of the recorded attempt runs, the step runs
   * directly once (the write lands before the add, the add runs once).
   */
  @Test
  void aStepThatCopiesRunsDirectlyOnce() {
    try (Fixture f = new Fixture()) {
      f.graph.run(
          () -> {
            f.k.add(f.x.address(), f.ones.address(), N);
            f.cx.write(f.x, 0, filled(5f), N);
            f.k.add(f.x.address(), f.ones.address(), N);
          });
      assertThat(f.read(f.x)).containsOnly(6f);
      assertThat(f.graph.stats()).isEqualTo(new LaunchGraph.Stats(0, 0, 0, 1));
      // the context launches directly again after the step
      f.k.add(f.x.address(), f.ones.address(), N);
      assertThat(f.read(f.x)).containsOnly(7f);
    }
  }
}
