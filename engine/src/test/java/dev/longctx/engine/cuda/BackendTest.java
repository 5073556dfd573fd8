package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.cuda.Backend.Availability;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** The backend choice (runs without a GPU: the probe is injected, or the real one is asked). */
class BackendTest {

  private static final Supplier<Availability> NONE = () -> Availability.no("no device here");
  private static final Supplier<Availability> ONE = () -> Availability.yes("Test GPU");

  @Test
  void autoPicksCudaOnlyWithADevice() {
    assertThat(Backend.AUTO.select(NONE)).isEqualTo(Backend.CPU);
    assertThat(Backend.AUTO.select(ONE)).isEqualTo(Backend.CUDA);
  }

  @Test
  void cpuNeverProbes() {
    AtomicInteger calls = new AtomicInteger();
    assertThat(
            Backend.CPU.select(
                () -> {
                  calls.incrementAndGet();
                  return Availability.yes("x");
                }))
        .isEqualTo(Backend.CPU);
    assertThat(calls).hasValue(0);
  }

  @Test
  void cudaWithoutADeviceFailsWithTheReason() {
    assertThat(Backend.CUDA.select(ONE)).isEqualTo(Backend.CUDA);
    assertThatThrownBy(() -> Backend.CUDA.select(NONE))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("--backend cuda")
        .hasMessageContaining("no device here");
  }

  @Test
  void parsesNamesAndRejectsOthers() {
    assertThat(Backend.parse("Auto")).isEqualTo(Backend.AUTO);
    assertThat(Backend.parse("cuda")).isEqualTo(Backend.CUDA);
    assertThatThrownBy(() -> Backend.parse("rocm"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("auto, cpu or cuda");
  }

  /** The real probe never throws; on this machine it answers consistently with a real context. */
  @Test
  void realProbeIsConsistentWithOpeningAContext() {
    Availability a = CudaProbe.probe();
    assertThat(a.reason()).isNotBlank();
    if (a.available()) {
      assertThat(Backend.AUTO.select()).isEqualTo(Backend.CUDA);
    } else {
      assertThat(Backend.AUTO.select()).isEqualTo(Backend.CPU);
      assertThatThrownBy(Backend.CUDA::select).hasMessageContaining(a.reason());
      assertThatThrownBy(CudaContext::open).hasMessageContaining("CUDA is not usable");
    }
  }

  @Test
  void gpuPoliciesAreCheckedWithoutADevice() {
    // The CLI asks before it uploads a model: no device, driver or CUDA library is touched.
    CudaModel.requireSupported(AttentionPolicy.dense());
    CudaModel.requireSupported(new AttentionPolicy.SelfExtend(4, 64));
    CudaModel.requireSupported(new AttentionPolicy.IndexerTopK(256));
    CudaModel.requireSupported(new AttentionPolicy.BlockTopK(64, 8));
    for (AttentionPolicy p :
        new AttentionPolicy[] {
          new AttentionPolicy.IndexerTopK(8192), new AttentionPolicy.BlockTopK(4, 5000)
        }) {
      assertThat(CudaModel.supports(p)).isFalse();
      assertThatThrownBy(() -> CudaModel.requireSupported(p))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining(p.name())
          .hasMessageContaining("the GPU top-k selects at most 4096");
    }
  }
}
