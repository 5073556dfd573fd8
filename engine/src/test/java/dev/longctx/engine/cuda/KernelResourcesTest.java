package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The kernels ship in the jar: always the CUDA C source, and PTX when nvcc was present. */
class KernelResourcesTest {

  @Test
  void sourceShipsForNvrtc() {
    byte[] cu = CudaModule.readResource(CudaModule.RESOURCE_DIR + CudaModule.SOURCE);
    assertThat(cu).isNotNull();
    assertThat(new String(cu, StandardCharsets.UTF_8))
        .contains("extern \"C\" __global__ void matvec(")
        .contains("ATTENTION(attention, float)") // the FP32-cache instantiation of attention_body
        .contains("extern \"C\" __global__ void topk_rows(");
  }

  @Test
  void ptxForSm80AndSm90WhenNvccWasPresent() {
    assumeTrue(nvccOnPath(), "nvcc is not on the PATH: the build shipped no PTX (NVRTC fallback)");
    for (int cc : new int[] {80, 90}) {
      byte[] ptx = CudaModule.readResource(CudaModule.ptxResource(cc));
      assertThat(ptx).as("PTX for sm_%d", cc).isNotNull();
      String text = new String(ptx, StandardCharsets.UTF_8);
      assertThat(text).contains(".target sm_" + cc).contains(".entry matvec(");
    }
  }

  @Test
  void ptxChoiceFollowsComputeCapability() {
    assertThat(CudaModule.ptxResource(90)).endsWith("sm_90.ptx");
    assertThat(CudaModule.ptxResource(100)).endsWith("sm_90.ptx");
    assertThat(CudaModule.ptxResource(86)).endsWith("sm_80.ptx");
    assertThat(CudaModule.ptxResource(75)).isNull();
  }

  private static boolean nvccOnPath() {
    String path = System.getenv("PATH");
    return path != null
        && Arrays.stream(path.split(File.pathSeparator))
            .anyMatch(dir -> new File(dir, "nvcc").canExecute());
  }
}
