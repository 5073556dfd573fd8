package dev.longctx.operator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Every overlay under deploy/ renders with {@code kubectl kustomize}; skipped without kubectl. */
class KustomizeRenderTest {

  static boolean kubectlPresent() {
    String path = System.getenv().getOrDefault("PATH", "");
    for (String dir : path.split(java.io.File.pathSeparator)) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, "kubectl"))) {
        return true;
      }
    }
    return false;
  }

  @ParameterizedTest
  @ValueSource(strings = {"cpu", "gpu"})
  void overlayRenders(String overlay) throws IOException, InterruptedException {
    assumeTrue(kubectlPresent(), "kubectl is not on PATH: skipping the kustomize render check");
    Process p =
        new ProcessBuilder("kubectl", "kustomize", "../deploy/overlays/" + overlay)
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(out).isZero();
    assertThat(out)
        .contains("kind: CustomResourceDefinition")
        .contains("name: longcontextmodels.longctx.dev")
        .contains("kind: ClusterRole")
        .contains("kind: Deployment")
        .contains("namespace: longctx-system")
        .contains("longctx.dev/profile: " + overlay);
  }
}
