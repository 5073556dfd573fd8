package dev.longctx.api.v1alpha1;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.crdv2.generator.CRDGenerator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The CRD YAML is generated from the API types and committed (under {@code crds/} and, for
 * kustomize, {@code deploy/base/crd/}). This test regenerates it and fails when a committed copy
 * differs. To refresh the copies: {@code ./mvnw -pl crds test -Dlongctx.crd.update=true}.
 */
class CrdFreshnessTest {

  static final String FILE = "longcontextmodels.longctx.dev-v1.yml";

  /** The committed copies, relative to the crds module directory. */
  static final List<Path> COMMITTED =
      List.of(Path.of(FILE), Path.of("..", "deploy", "base", "crd", FILE));

  static String generate() throws IOException {
    Path out = Files.createDirectories(Path.of("target", "crd-generated"));
    new CRDGenerator()
        .customResourceClasses(LongContextModel.class)
        .forCRDVersions("v1")
        .inOutputDir(out.toFile())
        .generate();
    return Files.readString(out.resolve(FILE));
  }

  @Test
  void committedCrdYamlMatchesTheApiTypes() throws IOException {
    String generated = generate();
    boolean update = Boolean.getBoolean("longctx.crd.update");
    for (Path committed : COMMITTED) {
      if (update) {
        Files.createDirectories(committed.toAbsolutePath().getParent());
        Files.writeString(committed, generated);
      }
      assertThat(committed)
          .as(
              "%s is stale or missing: regenerate with ./mvnw -pl crds test"
                  + " -Dlongctx.crd.update=true and commit it",
              committed)
          .exists();
      assertThat(Files.readString(committed))
          .as(
              "%s is stale: regenerate with ./mvnw -pl crds test -Dlongctx.crd.update=true"
                  + " and commit it",
              committed)
          .isEqualTo(generated);
    }
  }
}
