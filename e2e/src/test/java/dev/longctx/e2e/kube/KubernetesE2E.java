package dev.longctx.e2e.kube;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The operator scenario on a real cluster (kind or k3d from {@code e2e/kind/up.sh}, with the
 * operator installed from {@code deploy/overlays/cpu} and the worker image carrying stories260K):
 * apply the CPU sample, wait for Ready, stream a completion through the coordinator Service from a
 * client pod, scale through the {@code /scale} subresource, delete, and see every owned object go.
 * On failure {@link ClusterDump} prints the resource's status, the Events and the pod logs.
 *
 * <p>Runs under {@code -Pkube-e2e} only, and skips with a message when KUBECONFIG is not set or
 * CI=true (CI has no cluster).
 */
class KubernetesE2E {

  static final String OPERATOR_NAMESPACE = "longctx-system";
  static final Path SAMPLE = Path.of("..", "deploy", "samples", "cpu-stories260k.yaml");
  static final Duration READY_TIMEOUT = Duration.ofMinutes(10);
  static final String PROMPT = "Once upon a time";
  static final int MAX_TOKENS = 24;

  static KubernetesClient client;
  static String ns;

  @RegisterExtension final ClusterDump dump = new ClusterDump(client, ns, OPERATOR_NAMESPACE);

  @BeforeAll
  static void cluster() {
    skipUnless(Boolean.getBoolean("longctx.e2e.kube"), "runs under -Pkube-e2e only");
    skipUnless(
        !"true".equalsIgnoreCase(System.getenv("CI")),
        "CI=true: CI has no Kubernetes cluster; run e2e/kind/up.sh and -Pkube-e2e locally");
    String kubeconfig = System.getenv("KUBECONFIG");
    skipUnless(
        kubeconfig != null && !kubeconfig.isBlank(),
        "KUBECONFIG is not set; e2e/kind/up.sh creates a cluster and prints the export");
    client = new KubernetesClientBuilder().build();
    assertThat(
            client
                .apiextensions()
                .v1()
                .customResourceDefinitions()
                .withName("longcontextmodels.longctx.dev")
                .get())
        .as("the CRD is installed (e2e/kind/up.sh, or kubectl apply -k deploy/overlays/cpu)")
        .isNotNull();
    Deployment operator =
        client
            .apps()
            .deployments()
            .inNamespace(OPERATOR_NAMESPACE)
            .withName("longctx-operator")
            .get();
    assertThat(operator).as("the operator runs in %s", OPERATOR_NAMESPACE).isNotNull();
    ns = "longctx-e2e-" + UUID.randomUUID().toString().substring(0, 6);
    client
        .namespaces()
        .resource(new NamespaceBuilder().withNewMetadata().withName(ns).endMetadata().build())
        .create();
  }

  static void skipUnless(boolean condition, String message) {
    if (!condition) {
      System.err.println("KubernetesE2E skipped: " + message);
    }
    assumeTrue(condition, message);
  }

  @AfterAll
  static void cleanUp() {
    if (client != null) {
      if (ns != null && System.getenv("LONGCTX_E2E_KEEP") == null) {
        client.namespaces().withName(ns).delete();
      }
      client.close();
    }
  }

  @Test
  void theCpuSampleServesAStreamScalesAndIsRemovedWithEverythingItOwns() throws Exception {
    LongContextModel sample =
        Serialization.unmarshal(Files.readString(SAMPLE), LongContextModel.class);
    sample.getMetadata().setNamespace(ns);
    String name = sample.getMetadata().getName();
    var resource = client.resources(LongContextModel.class).inNamespace(ns).withName(name);
    client.resource(sample).create();

    // Ready, with every part of the status filled in
    LongContextModel ready = waitFor("Ready", READY_TIMEOUT, () -> readyOrNull(resource.get(), 2));
    assertThat(ready.getStatus().getObservedGeneration())
        .isEqualTo(ready.getMetadata().getGeneration());
    assertThat(ready.getStatus().getEndpoint()).isEqualTo(name + "." + ns + ".svc:9000");
    assertThat(ready.getStatus().getWorkers().getSummary()).isEqualTo("2/2");
    StatefulSet workers =
        client.apps().statefulSets().inNamespace(ns).withName(name + "-worker").get();
    assertThat(workers.getStatus().getReadyReplicas()).isEqualTo(2);

    // one streamed completion through the coordinator Service
    complete(ready, "before-scaling");

    // scale through the /scale subresource, as HPA or `kubectl scale lcm` would
    resource.scale(3);
    LongContextModel scaled =
        waitFor("3 workers ready", READY_TIMEOUT, () -> readyOrNull(resource.get(), 3));
    assertThat(scaled.getSpec().getWorkers().getReplicas()).isEqualTo(3);
    assertThat(
            client
                .apps()
                .statefulSets()
                .inNamespace(ns)
                .withName(name + "-worker")
                .get()
                .getSpec()
                .getReplicas())
        .isEqualTo(3);
    complete(scaled, "after-scaling");

    // deleting the resource removes what it owns (owner references, the API server's GC)
    resource.delete();
    waitFor(
        "owned objects removed",
        Duration.ofMinutes(3),
        () ->
            client.apps().statefulSets().inNamespace(ns).withName(name + "-worker").get() == null
                    && client
                            .apps()
                            .deployments()
                            .inNamespace(ns)
                            .withName(name + "-coordinator")
                            .get()
                        == null
                    && client.services().inNamespace(ns).withName(name).get() == null
                    && client.configMaps().inNamespace(ns).withName(name + "-engine").get() == null
                ? Boolean.TRUE
                : null);
  }

  /** The resource when Ready is True and {@code workers} are ready, otherwise null. */
  static LongContextModel readyOrNull(LongContextModel m, int workers) {
    if (m == null || m.getStatus() == null) {
      return null;
    }
    boolean ready =
        m.getStatus().getConditions().stream()
            .filter(c -> "Ready".equals(c.getType()))
            .map(Condition::getStatus)
            .anyMatch("True"::equals);
    return ready && m.getStatus().getWorkers().getReady() == workers ? m : null;
  }

  /**
   * Runs the worker image's {@code longctx client} in a pod against the coordinator Service (the
   * in-cluster path a user's client takes) and checks the stream: the prompt echoed, new text, and
   * the final usage line of a greedy completion of at most {@link #MAX_TOKENS} tokens.
   */
  void complete(LongContextModel m, String label) throws IOException {
    String pod = m.getMetadata().getName() + "-client-" + label;
    client
        .pods()
        .inNamespace(ns)
        .resource(
            new PodBuilder()
                .withNewMetadata()
                .withName(pod)
                .endMetadata()
                .withNewSpec()
                .withRestartPolicy("Never")
                .addNewContainer()
                .withName("client")
                .withImage(m.getSpec().getWorkers().getImage())
                .withImagePullPolicy("IfNotPresent")
                .withArgs(
                    "client",
                    "--server",
                    m.getStatus().getEndpoint(),
                    "--prompt",
                    PROMPT,
                    "--max-tokens",
                    Integer.toString(MAX_TOKENS),
                    "--temperature",
                    "0",
                    "--timeout",
                    "120")
                .endContainer()
                .endSpec()
                .build())
        .create();
    Pod done =
        waitFor(
            "client pod " + pod + " finished",
            Duration.ofMinutes(4),
            () -> {
              Pod p = client.pods().inNamespace(ns).withName(pod).get();
              String phase = p == null ? null : p.getStatus().getPhase();
              return "Succeeded".equals(phase) || "Failed".equals(phase) ? p : null;
            });
    String log = client.pods().inNamespace(ns).withName(pod).getLog();
    assertThat(done.getStatus().getPhase()).as("client pod log:%n%s", log).isEqualTo("Succeeded");
    // stdout is the prompt and the streamed text on one line; stderr (the JVM's incubator-module
    // warning, the usage line) shares the pod log
    String completion =
        log.lines()
            .filter(l -> l.startsWith(PROMPT))
            .findFirst()
            .orElseThrow(() -> new AssertionError("no line starting with the prompt in:\n" + log));
    assertThat(completion.substring(PROMPT.length())).as("generated text").isNotBlank();
    Matcher usage =
        Pattern.compile("completion (\\d+) tokens \\| shards (\\d+) .*finish: (\\w+)").matcher(log);
    assertThat(usage.find()).as("usage line in:%n%s", log).isTrue();
    assertThat(Integer.parseInt(usage.group(1))).isBetween(1, MAX_TOKENS);
    assertThat(Integer.parseInt(usage.group(2))).isGreaterThanOrEqualTo(1);
    assertThat(usage.group(3)).isIn("length", "end_of_text", "stop");
    client.pods().inNamespace(ns).withName(pod).delete();
  }

  /**
   * Polls every 2 s until {@code probe} gives non-null, failing with {@code what} after timeout.
   */
  static <T> T waitFor(String what, Duration timeout, Supplier<T> probe) {
    long deadline = System.nanoTime() + timeout.toNanos();
    RuntimeException last = null;
    while (System.nanoTime() < deadline) {
      try {
        T t = probe.get();
        if (t != null) {
          return t;
        }
      } catch (RuntimeException e) {
        last = e; // API hiccups while the cluster settles
      }
      try {
        Thread.sleep(2000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted waiting for " + what, e);
      }
    }
    throw new AssertionError(
        "timed out after %ds waiting for %s%s"
            .formatted(
                timeout.toSeconds(),
                what,
                Objects.isNull(last) ? "" : " (last error: " + last + ")"),
        last);
  }
}
