package dev.longctx.e2e.kube;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Objects;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * On a failed test, writes what a person needs to see why: every LongContextModel of the test
 * namespace with its status, the namespace's Events in time order, and the logs of every container
 * of every pod there (the operator's own logs too). To stderr and to {@code
 * target/kube-e2e/<namespace>/}.
 */
final class ClusterDump implements TestWatcher {

  private final KubernetesClient client;
  private final String namespace;
  private final String operatorNamespace;

  ClusterDump(KubernetesClient client, String namespace, String operatorNamespace) {
    this.client = client;
    this.namespace = namespace;
    this.operatorNamespace = operatorNamespace;
  }

  @Override
  public void testFailed(ExtensionContext context, Throwable cause) {
    Path dir = Path.of("target", "kube-e2e", namespace);
    StringBuilder all = new StringBuilder();
    try {
      Files.createDirectories(dir);
      for (LongContextModel m :
          client.resources(LongContextModel.class).inNamespace(namespace).list().getItems()) {
        write(dir, "lcm-" + m.getMetadata().getName() + ".yaml", Serialization.asYaml(m), all);
      }
      StringBuilder events = new StringBuilder();
      client.v1().events().inNamespace(namespace).list().getItems().stream()
          .sorted(
              Comparator.comparing(
                  (Event e) -> Objects.toString(e.getLastTimestamp(), ""),
                  Comparator.naturalOrder()))
          .forEach(
              e ->
                  events.append(
                      "%s %s %s/%s %s: %s%n"
                          .formatted(
                              e.getLastTimestamp(),
                              e.getType(),
                              e.getInvolvedObject().getKind(),
                              e.getInvolvedObject().getName(),
                              e.getReason(),
                              e.getMessage())));
      write(dir, "events.txt", events.toString(), all);
      for (String ns : new String[] {namespace, operatorNamespace}) {
        for (Pod p : client.pods().inNamespace(ns).list().getItems()) {
          StringBuilder logs = new StringBuilder();
          logs.append("phase ").append(p.getStatus().getPhase()).append('\n');
          for (var c : p.getSpec().getContainers()) {
            logs.append("---- container ").append(c.getName()).append('\n');
            try {
              logs.append(
                  client
                      .pods()
                      .inNamespace(ns)
                      .withName(p.getMetadata().getName())
                      .inContainer(c.getName())
                      .tailingLines(300)
                      .getLog());
            } catch (RuntimeException e) {
              logs.append("(no log: ").append(e.getMessage()).append(")\n");
            }
          }
          write(dir, "pod-" + ns + "-" + p.getMetadata().getName() + ".log", logs.toString(), all);
        }
      }
    } catch (IOException | RuntimeException e) {
      all.append("dumping the cluster state failed: ").append(e).append('\n');
    }
    System.err.printf(
        "==== %s failed; cluster state of namespace %s (also in %s)%n%s",
        context.getDisplayName(), namespace, dir.toAbsolutePath(), all);
  }

  private static void write(Path dir, String file, String text, StringBuilder all)
      throws IOException {
    Files.writeString(dir.resolve(file), text);
    all.append("==== ").append(file).append('\n').append(text).append('\n');
  }
}
