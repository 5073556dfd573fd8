package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.tensor.FloatTensor;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * {@link CudaContext#profile}: each launch of the profiled steps is counted under its kernel with
 * its device time, the steps still do their work, and steps meant for a graph run launch by launch
 * so that the profile sees them. Skips without a CUDA device.
 */
class KernelProfileTest {

  private static final int N = 1000;
  private static final int ROWS = 2048;

  @Test
  void eachLaunchIsCountedUnderItsKernelWithItsDeviceTime() {
    CudaContext cx = CudaTests.context();
    SplittableRandom random = new SplittableRandom(3);
    float[] weights = new float[ROWS * ROWS];
    for (int i = 0; i < weights.length; i++) {
      weights[i] = (float) random.nextDouble(-1, 1);
    }
    try (CudaKernels k = new CudaKernels(cx);
        DeviceBuffer x = cx.upload(filled(N, 1f));
        DeviceBuffer ones = cx.upload(filled(N, 1f));
        DeviceBuffer v = cx.upload(filled(ROWS, 1f));
        DeviceBuffer y = cx.alloc((long) ROWS * Float.BYTES)) {
      DeviceTensor w = DeviceTensor.upload(cx, FloatTensor.ofFloats(weights, ROWS, ROWS), "w");
      try {
        // a step: two small adds, one swiglu, one 2048 × 2048 FP32 matrix-vector product (16 MB
        // read: the longest launch of the step by far, on a device or on the emulation)
        Runnable step =
            () -> {
              k.add(x.address(), ones.address(), N);
              k.swiglu(x.address(), ones.address(), N);
              k.matvec(w, v.address(), y.address(), 1);
              k.add(x.address(), ones.address(), N);
            };
        KernelProfile.Result r = cx.profile(3, step);

        Map<String, Long> launches =
            r.entries().stream()
                .collect(
                    Collectors.toMap(KernelProfile.Entry::name, KernelProfile.Entry::launches));
        assertThat(launches)
            .containsExactlyInAnyOrderEntriesOf(
                Map.of("add_inplace", 6L, "swiglu", 3L, "matvec", 3L));
        assertThat(r.steps()).isEqualTo(3);
        assertThat(r.launches()).isEqualTo(12);
        assertThat(r.entries()).allSatisfy(e -> assertThat(e.microseconds()).isPositive());
        assertThat(r.entries().getFirst().name()).isEqualTo("matvec");
        assertThat(r.entries())
            .extracting(KernelProfile.Entry::microseconds)
            .isSortedAccordingTo((a, b) -> Double.compare(b, a));
        // the span holds every launch
        assertThat(r.spanMicroseconds()).isGreaterThanOrEqualTo(r.launchMicroseconds());

        // the steps did their work: x is what the same launches give when run directly
        float[] profiled = new float[N];
        cx.read(x, 0, profiled, N);
        cx.write(x, 0, filled(N, 1f), N);
        for (int i = 0; i < 3; i++) {
          step.run();
        }
        float[] direct = new float[N];
        cx.read(x, 0, direct, N);
        assertThat(profiled).containsExactly(direct);
        assertThat(direct[0]).isNotEqualTo(1f);

        // the device idles while the host does not launch: that time is outside the launches
        KernelProfile.Result idle =
            cx.profile(
                1,
                () -> {
                  k.add(x.address(), ones.address(), N);
                  sleep(20);
                  k.add(x.address(), ones.address(), N);
                });
        assertThat(idle.outsideMicroseconds()).isGreaterThan(15_000);
        assertThat(idle.launchMicroseconds()).isLessThan(idle.spanMicroseconds() - 15_000);

        // a second profile starts empty
        KernelProfile.Result again = cx.profile(1, () -> k.add(x.address(), ones.address(), N));
        assertThat(again.entries()).hasSize(1);
        assertThat(again.launches()).isEqualTo(1);
        assertThat(again.steps()).isEqualTo(1);
      } finally {
        w.close();
      }
    }
  }

  @Test
  void graphStepsRunLaunchByLaunchWhileProfiled() {
    CudaContext cx = CudaTests.context();
    try (CudaKernels k = new CudaKernels(cx);
        LaunchGraph graph = new LaunchGraph(cx);
        DeviceBuffer x = cx.upload(filled(N, 1f));
        DeviceBuffer ones = cx.upload(filled(N, 1f))) {
      Runnable twice =
          () -> {
            k.add(x.address(), ones.address(), N);
            k.add(x.address(), ones.address(), N);
          };
      KernelProfile.Result r = cx.profile(2, () -> graph.run(twice));
      assertThat(r.entries())
          .singleElement()
          .extracting(KernelProfile.Entry::launches)
          .isEqualTo(4L);
      assertThat(graph.stats()).isEqualTo(new LaunchGraph.Stats(0, 0, 0, 2));
      float[] out = new float[N];
      cx.read(x, 0, out, N);
      assertThat(out).containsOnly(5f);
      // nested profiles, or a profile inside a recorded step, are refused
      assertThatThrownBy(() -> cx.profile(1, () -> cx.profile(1, twice)))
          .isInstanceOf(IllegalStateException.class);
      assertThatThrownBy(() -> graph.run(() -> cx.profile(1, twice)))
          .isInstanceOf(IllegalStateException.class);
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static float[] filled(int n, float v) {
    float[] a = new float[n];
    Arrays.fill(a, v);
    return a;
  }
}
