import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/**
 * Runs the CUDA backend's JUnit tests without Maven (the device machine has only the runtime and
 * jars that docs/tools/gpu-check.sh carries) and prints one table row per test. Exits 1 when a
 * test failed, else 0 (a skipped GPU test prints why CUDA was not usable).
 */
public final class GpuCheck {

  public static void main(String[] args) {
    String[] classes = {
      "dev.longctx.engine.cuda.BackendTest",
      "dev.longctx.engine.cuda.KernelResourcesTest",
      "dev.longctx.engine.cuda.CudaOpsTest",
      "dev.longctx.engine.cuda.CudaModelTest",
      "dev.longctx.engine.cuda.LaunchGraphTest",
      "dev.longctx.engine.cuda.KernelProfileTest",
      "dev.longctx.engine.cuda.CudaKvRangeTest",
      "dev.longctx.engine.cuda.CudaSelectorTest"
    };
    LauncherDiscoveryRequestBuilder builder = LauncherDiscoveryRequestBuilder.request();
    for (String c : classes) {
      builder.selectors(selectClass(c));
    }
    LauncherDiscoveryRequest request = builder.build();
    AtomicInteger passed = new AtomicInteger();
    AtomicInteger failed = new AtomicInteger();
    AtomicInteger skipped = new AtomicInteger();
    System.out.println("| test | result | detail |");
    System.out.println("| --- | --- | --- |");
    TestExecutionListener listener =
        new TestExecutionListener() {
          @Override
          public void executionFinished(TestIdentifier id, TestExecutionResult result) {
            if (!id.isTest()) {
              if (result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                row(id, result.getStatus().toString(), result.getThrowable().orElse(null));
              }
              return;
            }
            switch (result.getStatus()) {
              case SUCCESSFUL -> passed.incrementAndGet();
              case ABORTED -> skipped.incrementAndGet();
              case FAILED -> failed.incrementAndGet();
            }
            row(id, result.getStatus().toString(), result.getThrowable().orElse(null));
          }

          @Override
          public void executionSkipped(TestIdentifier id, String reason) {
            skipped.incrementAndGet();
            System.out.printf("| %s | SKIPPED | %s |%n", name(id), reason);
          }
        };
    Launcher launcher = LauncherFactory.create();
    launcher.execute(request, listener);
    System.out.printf(
        "%npassed %d, failed %d, skipped %d%n", passed.get(), failed.get(), skipped.get());
    System.exit(failed.get() > 0 ? 1 : 0);
  }

  private static String name(TestIdentifier id) {
    if (id.getSource().orElse(null) instanceof MethodSource m) {
      String cls = m.getClassName().substring(m.getClassName().lastIndexOf('.') + 1);
      return cls + "." + m.getMethodName() + " " + id.getDisplayName();
    }
    return id.getDisplayName();
  }

  private static void row(TestIdentifier id, String status, Throwable t) {
    String detail = t == null ? "" : t.toString().replace('\n', ' ').replace("|", "\\|");
    int limit = status.equals("FAILED") ? 2000 : 240;
    if (detail.length() > limit) {
      detail = detail.substring(0, limit) + "…";
    }
    System.out.printf("| %s | %s | %s |%n", name(id), status, detail);
  }
}
