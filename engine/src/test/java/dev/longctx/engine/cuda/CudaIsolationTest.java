package dev.longctx.engine.cuda;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/**
 * DESIGN.md §2: the CUDA bindings stay optional. Only the cuda package touches them, and not its
 * {@link Backend} choice, which CPU callers load.
 */
class CudaIsolationTest {

  private static final JavaClasses ENGINE =
      new ClassFileImporter()
          .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
          .importPackages("dev.longctx.engine");

  @Test
  void onlyTheCudaPackageUsesTheBindings() {
    noClasses()
        .that()
        .resideOutsideOfPackage("dev.longctx.engine.cuda..")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("org.bytedeco..")
        .check(ENGINE);
  }

  @Test
  void theBackendChoiceLoadsNoBindings() {
    noClasses()
        .that()
        .haveNameMatching("dev\\.longctx\\.engine\\.cuda\\.Backend(\\$.*)?")
        .should()
        .dependOnClassesThat()
        .resideInAnyPackage("org.bytedeco..")
        .check(ENGINE);
  }
}
