package dev.longctx.operator;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

/** DESIGN.md §2: the operator never imports engine or worker internals. */
@AnalyzeClasses(packages = "dev.longctx", importOptions = ImportOption.DoNotIncludeTests.class)
class LayeringTest {

  @ArchTest
  static final ArchRule operatorDoesNotUseEngineOrWorker =
      noClasses()
          .that()
          .resideInAnyPackage("dev.longctx.operator..", "dev.longctx.api..")
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage("dev.longctx.engine..", "dev.longctx.worker..");

  @ArchTest
  static final ArchRule apiTypesDoNotDependOnTheOperator =
      noClasses()
          .that()
          .resideInAPackage("dev.longctx.api..")
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage("dev.longctx.operator..", "io.javaoperatorsdk..", "io.quarkus..");
}
