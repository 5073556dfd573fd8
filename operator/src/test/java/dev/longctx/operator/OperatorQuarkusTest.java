package dev.longctx.operator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.operator.autoscaler.ContextLoadSource;
import dev.longctx.operator.autoscaler.GrpcContextLoadSource;
import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.kubernetes.client.KubernetesServer;
import io.quarkus.test.kubernetes.client.KubernetesTestServer;
import io.quarkus.test.kubernetes.client.WithKubernetesTestServer;
import jakarta.inject.Inject;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.function.Consumer;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.junit.jupiter.api.Test;

/**
 * The Quarkus application as deployed: QOSDK starts the reconciler against the mock server (CRD
 * created before start), the default beans are wired, and health and metrics are served.
 */
@QuarkusTest
@WithKubernetesTestServer(crud = true, setup = OperatorQuarkusTest.CreateCrd.class)
class OperatorQuarkusTest {

  /** Runs before the application starts, so the operator finds its CRD. */
  public static class CreateCrd implements Consumer<KubernetesServer> {
    @Override
    public void accept(KubernetesServer server) {
      TestModels.createCrd(server.getClient());
    }
  }

  @KubernetesTestServer KubernetesServer server;
  @Inject KubernetesClient client;
  @Inject ContextLoadSource loads;

  @ConfigProperty(name = "quarkus.http.test-port")
  int port;

  @Test
  void theOperatorReconcilesASampleAndServesHealthAndMetrics() throws Exception {
    assertThat(loads).isInstanceOf(GrpcContextLoadSource.class);
    // built from its config defaults; a coordinator whose name does not resolve is no reading
    assertThat(loads.read(TestModels.cpu("nowhere", "q"))).isEmpty();
    client
        .namespaces()
        .resource(new NamespaceBuilder().withNewMetadata().withName("q").endMetadata().build())
        .create();
    client.resource(TestModels.cpu("tiny", "q")).create();
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(30))
        .untilAsserted(
            () -> {
              assertThat(
                      client.apps().statefulSets().inNamespace("q").withName("tiny-worker").get())
                  .extracting(StatefulSet::getSpec)
                  .extracting(s -> s.getReplicas())
                  .isEqualTo(2);
              assertThat(
                      client
                          .resources(LongContextModel.class)
                          .inNamespace("q")
                          .withName("tiny")
                          .get()
                          .getStatus()
                          .getEndpoint())
                  .isEqualTo("tiny.q.svc:9000");
            });

    HttpClient http = HttpClient.newHttpClient();
    var health =
        http.send(
            HttpRequest.newBuilder(URI.create("http://localhost:" + port + "/q/health")).build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(health.statusCode()).as(health.body()).isEqualTo(200);
    var metrics =
        http.send(
            HttpRequest.newBuilder(URI.create("http://localhost:" + port + "/q/metrics")).build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(metrics.statusCode()).isEqualTo(200);
  }
}
