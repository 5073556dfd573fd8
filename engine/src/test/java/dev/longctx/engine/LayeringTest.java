package dev.longctx.engine;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/** DESIGN.md §2: the engine is a plain library; serving and Kubernetes live elsewhere. */
class LayeringTest {

  @Test
  void engineImportsNoServingOrKubernetesClasses() {
    JavaClasses engine =
        new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("dev.longctx.engine");
    noClasses()
        .that()
        .resideInAPackage("dev.longctx.engine..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage(
            "io.quarkus..",
            "io.grpc..",
            "com.google.protobuf..",
            "io.fabric8..",
            "io.javaoperatorsdk..",
            "jakarta.enterprise..",
            "dev.longctx.worker..",
            "dev.longctx.operator..")
        .check(engine);
  }
}
