package dev.longctx.operator;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/** DESIGN.md §2: the operator never imports engine or worker internals. */
class LayeringTest {

  static final JavaClasses CLASSES =
      new ClassFileImporter()
          .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
          .importPackages("dev.longctx.operator", "dev.longctx.api");

  @Test
  void operatorImportsNoEngineOrWorkerClass() {
    noClasses()
        .that()
        .resideInAnyPackage("dev.longctx.operator..", "dev.longctx.api..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("dev.longctx.engine..", "dev.longctx.worker..")
        .check(CLASSES);
  }

  @Test
  void apiTypesDependOnNoOperatorFramework() {
    noClasses()
        .that()
        .resideInAPackage("dev.longctx.api..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("dev.longctx.operator..", "io.javaoperatorsdk..", "io.quarkus..")
        .check(CLASSES);
  }
}
