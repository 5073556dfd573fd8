import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.platform.engine.FilterResult;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.PostDiscoveryFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/**
 * Runs the CUDA backend's JUnit tests without Maven (the device machine has only the runtime and
 * jars that docs/tools/gpu-check.sh carries) and prints one table row per test. Exits 1 when a
 * test failed, else 0 (a skipped GPU test prints why CUDA was not usable).
 *
 * <p>Arguments, if any, narrow the run to those classes of dev.longctx.engine.cuda, or to one
 * method of a class as {@code Class#method} (every invocation of a parameterized test); CI runs a
 * few of them on the CPU emulation to check the bundle itself.
 */
public final class GpuCheck {

  private static final String PACKAGE = "dev.longctx.engine.cuda.";

  public static void main(String[] args) {
    String[] classes = {
      "BackendTest",
      "KernelResourcesTest",
      "CudaOpsTest",
      "CudaModelTest",
      "LaunchGraphTest",
      "KernelProfileTest",
      "CudaKvRangeTest",
      "CudaSelectorTest"
    };
    Map<String, Set<String>> methods = new LinkedHashMap<>(); // class -> methods, empty: all
    for (String arg : args.length > 0 ? args : classes) {
      int hash = arg.indexOf('#');
      String cls = PACKAGE + (hash < 0 ? arg : arg.substring(0, hash));
      Set<String> some = methods.computeIfAbsent(cls, c -> new HashSet<>());
      if (hash >= 0) {
        some.add(arg.substring(hash + 1));
      }
    }
    LauncherDiscoveryRequestBuilder builder = LauncherDiscoveryRequestBuilder.request();
    for (String c : methods.keySet()) {
      builder.selectors(selectClass(c));
    }
    builder.filters(
        (PostDiscoveryFilter)
            descriptor -> {
              if (descriptor.getSource().orElse(null) instanceof MethodSource m) {
                Set<String> some = methods.getOrDefault(m.getClassName(), Set.of());
                return some.isEmpty() || some.contains(m.getMethodName())
                    ? FilterResult.included("selected")
                    : FilterResult.excluded("not selected");
              }
              return FilterResult.included("a container");
            });
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
    if (passed.get() + failed.get() + skipped.get() == 0) {
      System.out.println("no test matched " + String.join(" ", args));
      System.exit(1);
    }
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
