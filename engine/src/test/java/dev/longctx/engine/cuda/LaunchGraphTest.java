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

  private static float[] read(CudaContext cx, DeviceBuffer b) {
    float[] out = new float[N];
    cx.read(b, 0, out, N);
    return out;
  }

  private static float[] filled(float v) {
    float[] a = new float[N];
    java.util.Arrays.fill(a, v);
    return a;
  }

  @Test
  void stepsReplayUpdateAndRebuild() {
    CudaContext cx = CudaTests.context();
    try (CudaKernels k = new CudaKernels(cx);
        LaunchGraph graph = new LaunchGraph(cx);
        DeviceBuffer x = cx.upload(filled(1f));
        DeviceBuffer y = cx.upload(filled(10f));
        DeviceBuffer ones = cx.upload(filled(1f))) {
      // x += 1 twice a step, three steps: one graph built, launched three times
      Runnable twice =
          () -> {
            k.add(x.address(), ones.address(), N);
            k.add(x.address(), ones.address(), N);
          };
      for (int i = 0; i < 3; i++) {
        graph.run(twice);
      }
      assertThat(read(cx, x)).containsOnly(7f);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(3, 0, 1, 0));
      // the same kernels with other arguments (the second adds into y, over fewer elements):
      // that node is updated in place, not rebuilt
      graph.run(
          () -> {
            k.add(x.address(), ones.address(), N);
            k.add(y.address(), ones.address(), N / 2);
          });
      float[] ys = read(cx, y);
      assertThat(read(cx, x)).containsOnly(8f);
      assertThat(ys[0]).isEqualTo(11f);
      assertThat(ys[N / 2 - 1]).isEqualTo(11f);
      assertThat(ys[N / 2]).isEqualTo(10f);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(4, 1, 1, 0));
      // a third launch: the graph is rebuilt
      graph.run(
          () -> {
            twice.run();
            k.swiglu(y.address(), ones.address(), N);
          });
      assertThat(read(cx, x)).containsOnly(10f);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(5, 1, 2, 0));
    }
  }

  /** Launches another thread makes while a step is being recorded are its own: made at once. */
  @Test
  void anotherThreadsLaunchesDuringARecordingAreMadeAtOnce() {
    CudaContext cx = CudaTests.context();
    try (CudaKernels k = new CudaKernels(cx);
        LaunchGraph graph = new LaunchGraph(cx);
        DeviceBuffer x = cx.upload(filled(1f));
        DeviceBuffer y = cx.upload(filled(10f));
        DeviceBuffer ones = cx.upload(filled(1f))) {
      float[] seenByOther = new float[N];
      graph.run(
          () -> {
            k.add(x.address(), ones.address(), N);
            Thread other =
                new Thread(
                    () -> {
                      k.add(y.address(), ones.address(), N);
                      cx.read(y, 0, seenByOther, N); // waits for its own launch
                    });
            other.start();
            try {
              other.join();
            } catch (InterruptedException e) {
              throw new IllegalStateException(e);
            }
          });
      assertThat(seenByOther).containsOnly(11f);
      assertThat(read(cx, x)).containsOnly(2f);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(1, 0, 1, 0));
    }
  }

  /**
   * A copy inside a step cannot be recorded: nothing of the recorded attempt runs, the step runs
   * directly once (the write lands before the add, the add runs once).
   */
  @Test
  void aStepThatCopiesRunsDirectlyOnce() {
    CudaContext cx = CudaTests.context();
    try (CudaKernels k = new CudaKernels(cx);
        LaunchGraph graph = new LaunchGraph(cx);
        DeviceBuffer x = cx.upload(filled(1f));
        DeviceBuffer ones = cx.upload(filled(1f))) {
      graph.run(
          () -> {
            k.add(x.address(), ones.address(), N);
            cx.write(x, 0, filled(5f), N);
            k.add(x.address(), ones.address(), N);
          });
      assertThat(read(cx, x)).containsOnly(6f);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(0, 0, 0, 1));
      // the context launches directly again after the step
      k.add(x.address(), ones.address(), N);
      assertThat(read(cx, x)).containsOnly(7f);
    }
  }
}
