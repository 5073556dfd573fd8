package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * The GPU benchmark's own code runs to the end on its toy shapes (`CudaBench --tiny`): every table
 * prints, no section fails and no optional measurement (two heads a block, the pipelined kernel,
 * CUDA graphs, int8 activations) comes back NaN. A device run of `gpu-check.sh` has minutes of a
 * lent GPU; a bench that breaks there wastes them, so the bench is checked wherever the CUDA tests
 * run (the CPU emulation included). The numbers themselves are not checked: this is not a timing.
 */
class CudaBenchTest {

  @Test
  void everyTableOfTheToyBenchPrintsWithoutAFailure() {
    CudaTests.context(); // skips without a device
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream stdout = System.out;
    PrintStream stderr = System.err;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
      System.setOut(o);
      System.setErr(e);
      CudaBench.main(new String[] {"--tiny"});
    } finally {
      System.setOut(stdout);
      System.setErr(stderr);
    }
    String tables = out.toString(StandardCharsets.UTF_8);
    String errors = err.toString(StandardCharsets.UTF_8);
    stdout.println(tables);
    assertThat(tables)
        .as("the bench's tables")
        .contains("| copy bandwidth")
        .contains("| matvec | type | µs")
        .contains("| Q4_K × int8 x")
        .contains("| model | type | weights | test")
        .contains("tg4 @ d16, CUDA graph")
        .contains("Q4_K_M")
        .contains("| kernel | launches / token")
        .contains("| context | dense decode µs/token")
        .contains("F16 KV: pipelined prefill TFLOP/s")
        .contains("decode per token against context")
        .doesNotContain("failed")
        .doesNotContain("NaN");
    assertThat(errors)
        .as("the bench's errors")
        .doesNotContain("failed")
        .doesNotContain("Exception");
  }
}
