package dev.longctx.engine;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * Locates {@code ../shared/data} relative to the repository root. Where it is absent, tests skip
 * with a message, except under {@code CI=true}, where a missing data folder is a failure.
 */
public final class TestData {

  private TestData() {}

  /** The repository root: the nearest ancestor of the working directory holding {@code mvnw}. */
  public static Path repositoryRoot() {
    Path dir = Path.of("").toAbsolutePath();
    for (Path p = dir; p != null; p = p.getParent()) {
      if (Files.exists(p.resolve("mvnw"))) {
        return p;
      }
    }
    return dir;
  }

  /** {@code ../shared/data} (or {@code $LONGCTX_DATA}) if present; otherwise skip or fail. */
  public static Path dataDir() {
    String override = System.getenv("LONGCTX_DATA");
    Path data =
        override != null
            ? Path.of(override)
            : repositoryRoot().resolve("..").resolve("shared").resolve("data").normalize();
    if (!Files.isDirectory(data)) {
      String message = "shared test data not found at " + data;
      if ("true".equals(System.getenv("CI"))) {
        fail(message + " (CI=true requires it)");
      }
      Assumptions.abort(message + "; skipping");
    }
    return data;
  }

  /** A file under the data folder; skips or fails like {@link #dataDir()} when it is missing. */
  public static Path file(String relative) {
    Path p = dataDir().resolve(relative);
    if (!Files.exists(p)) {
      String message = "shared test data file not found: " + p;
      if ("true".equals(System.getenv("CI"))) {
        fail(message + " (CI=true requires it)");
      }
      Assumptions.abort(message + "; skipping");
    }
    return p;
  }
}
