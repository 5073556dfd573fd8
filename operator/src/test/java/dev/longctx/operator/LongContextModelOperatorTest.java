package dev.longctx.operator;

import static dev.longctx.api.v1alpha1.LongContextModelStatus.COORDINATOR_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.MODEL_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.WORKERS_READY;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.LongContextModelStatus.Phase;
import dev.longctx.operator.autoscaler.ContextLoad;
import dev.longctx.operator.autoscaler.PodLoad;
import dev.longctx.operator.resources.Names;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.NamespaceBuilder;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaim;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.javaoperatorsdk.operator.Operator;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The operator against the fabric8 mock API server in CRUD mode, with the CRD created first and
 * {@link FakeKubelet} standing in for the controllers a real cluster runs. Plain JOSDK (no Quarkus
 * boot) so that a test can stop the operator and start a fresh one.
 */
@EnableKubernetesMockClient(crud = true)
class LongContextModelOperatorTest {

  static KubernetesClient client;

  final MutableClock clock = new MutableClock(Instant.parse("2025-01-01T00:00:00Z"));
  final FakeContextLoadSource loads = new FakeContextLoadSource();
  Operator operator;
  String ns;

  @BeforeAll
  static void crd() {
    TestModels.createCrd(client);
  }

  @BeforeEach
  void start() {
    ns = "t-" + UUID.randomUUID().toString().substring(0, 8);
    client
        .namespaces()
        .resource(new NamespaceBuilder().withNewMetadata().withName(ns).endMetadata().build())
        .create();
    operator = startOperator();
  }

  Operator startOperator() {
    Operator op =
        new Operator(
            o ->
                o.withKubernetesClient(client)
                    .withCloseClientOnStop(false)
                    // as quarkus.operator-sdk.enable-ssa=false in application.properties
                    .withSSABasedCreateUpdateMatchForDependentResources(false)
                    .withUseSSAToPatchPrimaryResource(false)
                    .withReconciliationTerminationTimeout(Duration.ofSeconds(2)));
    op.register(new LongContextModelReconciler(loads, clock));
    op.start();
    return op;
  }

  @AfterEach
  void stop() {
    if (operator != null) {
      operator.stop();
    }
  }

  LongContextModel get(String name) {
    return client.resources(LongContextModel.class).inNamespace(ns).withName(name).get();
  }

  <T extends HasMetadata> T get(Class<T> type, String name) {
    return client.resources(type).inNamespace(ns).withName(name).get();
  }

  List<Event> events(String reason) {
    return client.v1().events().inNamespace(ns).list().getItems().stream()
        .filter(e -> reason.equals(e.getReason()))
        .toList();
  }

  void awaitReady(String name) {
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(30))
        .pollInterval(Duration.ofMillis(200))
        .untilAsserted(
            () -> {
              FakeKubelet.makeReady(client, ns);
              assertThat(get(name).getStatus().getPhase()).isEqualTo(Phase.Ready);
            });
  }

  @Test
  void applyingASampleCreatesEveryResourceWithTheRightSpec() {
    LongContextModel m = client.resource(TestModels.cpu("tiny", ns)).create();
    awaitReady("tiny");

    StatefulSet sts = get(StatefulSet.class, "tiny-worker");
    assertThat(sts.getSpec().getReplicas()).isEqualTo(2);
    assertThat(sts.getSpec().getServiceName()).isEqualTo("tiny-worker");
    var pod = sts.getSpec().getTemplate().getSpec();
    var c = pod.getContainers().getFirst();
    assertThat(c.getArgs())
        .containsExactly("serve", "--role", "shard", "--config", "/etc/longctx/engine.properties");
    assertThat(c.getPorts()).extracting(p -> p.getContainerPort()).containsExactly(9100, 8080);
    assertThat(c.getReadinessProbe().getHttpGet().getPath()).isEqualTo("/q/health/ready");
    assertThat(c.getStartupProbe().getFailureThreshold()).isEqualTo(180);
    assertThat(c.getEnv())
        .anySatisfy(
            e -> {
              assertThat(e.getName()).isEqualTo("LONGCTX_MODEL_PATH");
              assertThat(e.getValue()).isEqualTo("/models/stories260K.bin");
            });
    assertThat(pod.getInitContainers()).as("file:// needs no download").isEmpty();
    assertThat(pod.getServiceAccountName()).isEqualTo("tiny");
    assertThat(pod.getTerminationGracePeriodSeconds()).isEqualTo(120L);

    Service headless = get(Service.class, "tiny-worker");
    assertThat(headless.getSpec().getClusterIP()).isEqualTo("None");
    Service front = get(Service.class, "tiny");
    assertThat(front.getSpec().getPorts()).extracting(p -> p.getPort()).containsExactly(9000, 8080);
    Deployment coordinator = get(Deployment.class, "tiny-coordinator");
    assertThat(coordinator.getSpec().getTemplate().getSpec().getContainers().getFirst().getArgs())
        .contains("coordinator");
    ConfigMap cm = get(ConfigMap.class, "tiny-engine");
    assertThat(cm.getData().get("engine.properties"))
        .contains("shards.service=tiny-worker." + ns + ".svc.cluster.local")
        .contains("shards.port=9100")
        .contains("model.format=llama2c")
        .contains("engine.backend=cpu");
    NetworkPolicy np = get(NetworkPolicy.class, "tiny-worker-shard-port");
    assertThat(
            np.getSpec()
                .getIngress()
                .getFirst()
                .getFrom()
                .getFirst()
                .getPodSelector()
                .getMatchLabels())
        .containsEntry(Names.LABEL_COMPONENT, Names.COORDINATOR);
    assertThat(
            get(PodDisruptionBudget.class, "tiny-worker").getSpec().getMaxUnavailable().getIntVal())
        .isEqualTo(1);
    assertThat(get(ServiceAccount.class, "tiny").getAutomountServiceAccountToken()).isFalse();

    // Deleting the resource removes everything through owner references (the API server's
    // garbage collector, which the mock server lacks, does the removal).
    List<HasMetadata> owned =
        List.of(
            sts,
            headless,
            front,
            coordinator,
            cm,
            np,
            get(PodDisruptionBudget.class, "tiny-worker"),
            get(ServiceAccount.class, "tiny"));
    for (HasMetadata o : owned) {
      assertThat(o.getMetadata().getOwnerReferences())
          .as("owner of %s %s", o.getKind(), o.getMetadata().getName())
          .singleElement()
          .satisfies(
              r -> {
                assertThat(r.getUid()).isEqualTo(m.getMetadata().getUid());
                assertThat(r.getKind()).isEqualTo("LongContextModel");
              });
    }

    var status = get("tiny").getStatus();
    assertThat(status.getConditions())
        .extracting(cond -> cond.getType() + "=" + cond.getStatus())
        .containsExactlyInAnyOrder(
            MODEL_READY + "=True",
            WORKERS_READY + "=True",
            COORDINATOR_READY + "=True",
            READY + "=True");
    assertThat(status.getEndpoint()).isEqualTo("tiny." + ns + ".svc:9000");
    assertThat(status.getWorkers().getSummary()).isEqualTo("2/2");
    assertThat(status.getObservedGeneration()).isEqualTo(get("tiny").getMetadata().getGeneration());
  }

  @Test
  void unchangedResourcesAreNotUpdated() {
    client.resource(TestModels.cpu("still", ns)).create();
    awaitReady("still");
    Map<String, String> before = versions();
    // More reconciliations: a status change of the workers and a label on the resource.
    client
        .resources(LongContextModel.class)
        .inNamespace(ns)
        .withName("still")
        .edit(
            m -> {
              m.getMetadata().getLabels().put("touched", "yes");
              return m;
            });
    FakeKubelet.makeReady(client, ns);
    await()
        .ignoreExceptions()
        .pollDelay(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(5))
        .until(() -> true);
    assertThat(versions()).isEqualTo(before);
  }

  Map<String, String> versions() {
    return List.of(
            get(ConfigMap.class, "still-engine"),
            get(Service.class, "still"),
            get(Service.class, "still-worker"),
            get(NetworkPolicy.class, "still-worker-shard-port"),
            get(PodDisruptionBudget.class, "still-worker"))
        .stream()
        .collect(
            Collectors.toMap(
                o -> o.getKind() + "/" + o.getMetadata().getName(),
                o -> o.getMetadata().getResourceVersion()));
  }

  @Test
  void updatingTheModelRollsOutANewWorkerGeneration() {
    client.resource(TestModels.cpu("roll", ns)).create();
    awaitReady("roll");
    String generation =
        get(StatefulSet.class, "roll-worker")
            .getSpec()
            .getTemplate()
            .getMetadata()
            .getAnnotations()
            .get(Names.MODEL_GENERATION);

    client
        .resources(LongContextModel.class)
        .inNamespace(ns)
        .withName("roll")
        .edit(
            m -> {
              m.getSpec().getModel().setUri("hf://longctx/tiny-models/stories15M.gguf");
              m.getSpec().getModel().setFormat(dev.longctx.api.v1alpha1.ModelSource.Format.GGUF);
              m.getSpec().getModel().setCredentialsSecret("hf-token");
              m.getSpec().getModel().getCache().setEnabled(true);
              m.getSpec().getWorkers().setReplicas(3);
              return m;
            });

    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(30))
        .untilAsserted(
            () -> {
              StatefulSet sts = get(StatefulSet.class, "roll-worker");
              assertThat(sts.getSpec().getReplicas()).isEqualTo(3);
              var template = sts.getSpec().getTemplate();
              assertThat(template.getMetadata().getAnnotations().get(Names.MODEL_GENERATION))
                  .isNotEqualTo(generation);
              var fetch = template.getSpec().getInitContainers().getFirst();
              assertThat(fetch.getArgs())
                  .contains("fetch", "hf://longctx/tiny-models/stories15M.gguf");
              assertThat(fetch.getEnvFrom().getFirst().getSecretRef().getName())
                  .isEqualTo("hf-token");
              assertThat(template.getSpec().getVolumes())
                  .filteredOn(v -> v.getPersistentVolumeClaim() != null)
                  .extracting(v -> v.getPersistentVolumeClaim().getClaimName())
                  .containsExactly("roll-model-cache");
              assertThat(get(PersistentVolumeClaim.class, "roll-model-cache")).isNotNull();
              assertThat(get(ConfigMap.class, "roll-engine").getData().get("engine.properties"))
                  .contains("model.path=/models/stories15M.gguf");
            });
    awaitReady("roll");
    assertThat(get("roll").getStatus().getWorkers().getSummary()).isEqualTo("3/3");
  }

  @Test
  void anInvalidResourceIsReportedInStatusAndAsAnEvent() {
    LongContextModel bad = TestModels.autoscaled("bad", ns);
    bad.getSpec().getWorkers().setReplicas(2); // exclusive with autoscaling
    bad.getSpec().getContext().getSelfExtend().setGroupSize(3); // does not divide 1024
    client.resource(bad).create();

    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () -> {
              var status = get("bad").getStatus();
              assertThat(status).isNotNull();
              assertThat(status.getPhase()).isEqualTo(Phase.Failed);
              var ready = status.condition(READY).orElseThrow();
              assertThat(ready.getStatus()).isEqualTo("False");
              assertThat(ready.getReason()).isEqualTo("InvalidSpec");
              assertThat(ready.getMessage())
                  .contains("mutually exclusive")
                  .contains("groupSize (3) must divide neighborWindow (1024)");
              assertThat(events("InvalidSpec")).isNotEmpty();
            });
    assertThat(get(StatefulSet.class, "bad-worker"))
        .as("nothing is created for an invalid spec")
        .isNull();
  }

  static ContextLoad reading(Instant at, long resident, int pods) {
    return ContextLoad.of(
        at,
        0,
        IntStream.range(0, pods)
            .mapToObj(i -> new PodLoad("auto-worker-" + i, resident / pods, 1000))
            .toList());
  }

  @Test
  void aFakeLoadDrivesScaleUpAndADelayedScaleDown() {
    client.resource(TestModels.autoscaled("auto", ns)).create();
    awaitReady("auto");
    assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas()).isEqualTo(1);

    // 1600 tokens over 500 per worker (1000 x 0.5): 4 workers, at once.
    loads.set("auto", reading(clock.instant(), 1600, 1));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas())
                    .isEqualTo(4));
    awaitReady("auto");
    assertThat(events("ScaleUp"))
        .singleElement()
        .satisfies(e -> assertThat(e.getMessage()).contains("workers 1 -> 4"));
    assertThat(get("auto").getStatus().getAutoscaler().getLastDecision().getTo()).isEqualTo(4);

    // Load drops to 1 worker's worth: the pool waits for scaleDownDelaySeconds (60 s).
    loads.set("auto", reading(clock.instant(), 200, 4));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get("auto").getStatus().getAutoscaler().getPendingScaleDownTo())
                    .isEqualTo(1));
    clock.advance(Duration.ofSeconds(30));
    loads.set("auto", reading(clock.instant(), 200, 4));
    await()
        .ignoreExceptions()
        .pollDelay(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(5))
        .until(() -> true);
    assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas())
        .as("before the delay")
        .isEqualTo(4);

    clock.advance(Duration.ofSeconds(31));
    loads.set("auto", reading(clock.instant(), 200, 4));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas())
                    .isEqualTo(1));
    assertThat(events("ScaleDown"))
        .singleElement()
        .satisfies(e -> assertThat(e.getMessage()).contains("workers 4 -> 1"));

    // A stale reading never scales down, a missing one neither.
    loads.clear("auto");
    clock.advance(Duration.ofSeconds(300));
    await()
        .ignoreExceptions()
        .pollDelay(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(5))
        .until(() -> true);
    assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas()).isEqualTo(1);
  }

  @Test
  void theOperatorRestartingMidwayConvergesToTheSameState() {
    client.resource(TestModels.autoscaled("auto", ns)).create();
    awaitReady("auto");
    loads.set("auto", reading(clock.instant(), 1600, 1));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas())
                    .isEqualTo(4));
    awaitReady("auto");
    loads.set("auto", reading(clock.instant(), 200, 4));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get("auto").getStatus().getAutoscaler().getPendingScaleDownTo())
                    .isEqualTo(1));
    String pendingSince = get("auto").getStatus().getAutoscaler().getPendingSince();

    // Stop mid-way through the scale-down delay; a fresh operator (no memory) takes over.
    operator.stop();
    client.resources(ConfigMap.class).inNamespace(ns).withName("auto-engine").delete();
    operator = startOperator();

    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(() -> assertThat(get(ConfigMap.class, "auto-engine")).isNotNull());
    assertThat(get("auto").getStatus().getAutoscaler().getPendingSince())
        .as("the pending scale-down keeps its start")
        .isEqualTo(pendingSince);
    assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas()).isEqualTo(4);

    clock.advance(Duration.ofSeconds(61));
    loads.set("auto", reading(clock.instant(), 200, 4));
    await()
        .ignoreExceptions()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(
            () ->
                assertThat(get(StatefulSet.class, "auto-worker").getSpec().getReplicas())
                    .isEqualTo(1));
    awaitReady("auto");
  }
}
