package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.longctx.engine.TestData;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The kernels' logic without a GPU: docs/tools/cuda-emulate compiles longctx.cu as C++ against a
 * CPU emulation of blocks, barriers and warp shuffles and checks every kernel against float64
 * references (top-k order, paged dense and sparse attention with LSE, matvec for each weight type,
 * RMSNorm, RoPE, softmax/argmax, indexer scores, the FP16/BF16 conversions). Skips without g++ 12+.
 */
class CudaEmulationTest {

  @Test
  void kernelsMatchFloat64ReferencesUnderCpuEmulation() throws IOException, InterruptedException {
    assumeTrue(
        onPath("g++"), "g++ is not on the PATH: the CPU emulation of the kernels is skipped");
    Path script = TestData.repositoryRoot().resolve("docs/tools/cuda-emulate/run.sh");
    Process p = new ProcessBuilder("bash", script.toString()).redirectErrorStream(true).start();
    String output;
    try (var in = p.getInputStream()) {
      output = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    assertThat(p.waitFor(5, TimeUnit.MINUTES)).as("the emulation finishes").isTrue();
    assertThat(p.exitValue()).as(output).isZero();
    assertThat(output).contains("all ok: 0 failure(s)").doesNotContain("FAIL");
  }

  private static int gccMajor() throws IOException, InterruptedException {
    Process p = new ProcessBuilder("g++", "-dumpversion").redirectErrorStream(true).start();
    String v;
    try (var in = p.getInputStream()) {
      v = new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
    }
    p.waitFor();
    try {
      return Integer.parseInt(v.split("\\.")[0]);
    } catch (NumberFormatException e) {
      return 0;
    }
  }

  private static boolean onPath(String tool) {
    String path = System.getenv("PATH");
    return path != null
        && Arrays.stream(path.split(File.pathSeparator))
            .anyMatch(dir -> new File(dir, tool).canExecute());
  }
}
