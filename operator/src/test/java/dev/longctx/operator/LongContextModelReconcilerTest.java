package dev.longctx.operator;

import static dev.longctx.api.v1alpha1.LongContextModelStatus.COORDINATOR_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.MODEL_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.WORKERS_READY;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import dev.longctx.api.v1alpha1.AttentionSpec;
import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.LongContextModelStatus.Phase;
import dev.longctx.api.v1alpha1.ModelSource;
import dev.longctx.api.v1alpha1.WorkersSpec;
import dev.longctx.operator.autoscaler.ContextLoad;
import dev.longctx.operator.autoscaler.ContextLoadSource;
import dev.longctx.operator.autoscaler.PodLoad;
import dev.longctx.operator.resources.PoolSize;
import io.fabric8.kubernetes.api.model.Condition;
import io.fabric8.kubernetes.api.model.Event;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.DeploymentBuilder;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.api.model.apps.StatefulSetBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import io.javaoperatorsdk.operator.api.reconciler.UpdateControl;
import io.javaoperatorsdk.operator.api.reconciler.dependent.managed.ManagedWorkflowAndDependentResourceContext;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@code reconcile()} and {@code updateErrorStatus()} alone: JOSDK's {@link Context} and the
 * dependents' workflow are Mockito mocks (what the secondary-resource caches hold is set per test),
 * Events go to the fabric8 mock server so they can be read back. Proves what the reconciler writes
 * into status for each situation, that errors end up in status rather than escaping, and the pool
 * size it hands to the StatefulSet dependent.
 */
@EnableKubernetesMockClient(crud = true)
class LongContextModelReconcilerTest {

  static KubernetesClient client;

  final MutableClock clock = new MutableClock(Instant.parse("2025-01-01T00:00:00Z"));
  ContextLoadSource loads = m -> Optional.empty();
  Context<LongContextModel> context;
  ManagedWorkflowAndDependentResourceContext workflow;
  final Map<Object, Object> workflowValues = new HashMap<>();
  String ns;

  @BeforeEach
  @SuppressWarnings("unchecked")
  void mocks() {
    ns = "u-" + UUID.randomUUID().toString().substring(0, 8);
    context = mock(Context.class);
    workflow = mock(ManagedWorkflowAndDependentResourceContext.class);
    when(context.getClient()).thenReturn(client);
    when(context.managedWorkflowAndDependentResourceContext()).thenReturn(workflow);
    when(context.getSecondaryResource(StatefulSet.class)).thenReturn(Optional.empty());
    when(context.getSecondaryResource(Deployment.class)).thenReturn(Optional.empty());
    // the workflow context is a key-value store the dependents read PoolSize from
    when(workflow.put(any(), any()))
        .thenAnswer(a -> workflowValues.put(a.getArgument(0), a.getArgument(1)));
    when(workflow.get(anyString(), eq(Integer.class)))
        .thenAnswer(a -> Optional.ofNullable((Integer) workflowValues.get(a.getArgument(0))));
  }

  LongContextModelReconciler reconciler() {
    return new LongContextModelReconciler(loads, clock);
  }

  LongContextModel model(LongContextModel m) {
    m.getMetadata().setNamespace(ns);
    m.getMetadata().setGeneration(3L);
    m.getMetadata().setUid(UUID.randomUUID().toString());
    return m;
  }

  void secondary(int stsReplicas, int readyWorkers, int readyCoordinators) {
    when(context.getSecondaryResource(StatefulSet.class))
        .thenReturn(
            Optional.of(
                new StatefulSetBuilder()
                    .withNewSpec()
                    .withReplicas(stsReplicas)
                    .endSpec()
                    .withNewStatus()
                    .withReplicas(stsReplicas)
                    .withReadyReplicas(readyWorkers)
                    .endStatus()
                    .build()));
    when(context.getSecondaryResource(Deployment.class))
        .thenReturn(
            Optional.of(
                new DeploymentBuilder()
                    .withNewStatus()
                    .withReadyReplicas(readyCoordinators)
                    .endStatus()
                    .build()));
  }

  static Condition condition(LongContextModel m, String type) {
    return m.getStatus().condition(type).orElseThrow(() -> new AssertionError("no " + type));
  }

  List<Event> events(String reason) {
    return client.v1().events().inNamespace(ns).list().getItems().stream()
        .filter(e -> reason.equals(e.getReason()))
        .toList();
  }

  @Test
  void aNewModelIsPendingWithEveryConditionFalseAndIsRecheckedSoon() {
    LongContextModel m = model(TestModels.cpu("tiny", ns));

    UpdateControl<LongContextModel> control = reconciler().reconcile(m, context);

    verify(workflow, times(1)).reconcileManagedWorkflow();
    assertThat(PoolSize.get(context, m)).isEqualTo(2);
    assertThat(control.isPatchStatus()).isTrue();
    assertThat(control.isPatchResource()).as("the spec is never written").isFalse();
    assertThat(control.getScheduleDelay()).contains(10_000L);
    var s = m.getStatus();
    assertThat(s.getPhase()).isEqualTo(Phase.Pending);
    assertThat(s.getObservedGeneration()).isEqualTo(3);
    assertThat(s.getWorkers().getDesired()).isEqualTo(2);
    assertThat(s.getWorkers().getSummary()).isEqualTo("0/2");
    assertThat(s.getEndpoint()).isEqualTo("tiny." + ns + ".svc:9000");
    for (String type : List.of(MODEL_READY, WORKERS_READY, COORDINATOR_READY, READY)) {
      Condition c = condition(m, type);
      assertThat(c.getStatus()).as(type).isEqualTo("False");
      assertThat(c.getObservedGeneration()).as(type).isEqualTo(3);
      assertThat(c.getLastTransitionTime()).as(type).isEqualTo("2025-01-01T00:00:00Z");
    }
    assertThat(condition(m, READY).getMessage())
        .isEqualTo("waiting for: ModelReady, WorkersReady, CoordinatorReady");
  }

  @Test
  void everythingReadyIsPhaseReadyWithAllConditionsTrueAndNoRecheck() {
    LongContextModel m = model(TestModels.cpu("tiny", ns));
    secondary(2, 2, 1);

    UpdateControl<LongContextModel> control = reconciler().reconcile(m, context);

    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Ready);
    for (String type : List.of(MODEL_READY, WORKERS_READY, COORDINATOR_READY, READY)) {
      assertThat(condition(m, type).getStatus()).as(type).isEqualTo("True");
    }
    assertThat(condition(m, READY).getMessage()).isEqualTo("serving on tiny." + ns + ".svc:9000");
    assertThat(control.getScheduleDelay()).isEmpty();
  }

  @Test
  void someWorkersReadyIsDegraded() {
    LongContextModel m = model(TestModels.cpu("tiny", ns));
    secondary(2, 1, 1);

    reconciler().reconcile(m, context);

    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Degraded);
    assertThat(condition(m, WORKERS_READY).getMessage()).isEqualTo("1 of 2 workers ready");
    assertThat(condition(m, MODEL_READY).getStatus()).isEqualTo("True");
  }

  @Test
  void anInvalidSpecIsReportedInStatusOnceAsAnEventAndNothingIsReconciled() {
    LongContextModel m = model(TestModels.cpu("bad", ns));
    m.getSpec().getModel().setUri("hf://just-org");
    m.getSpec().getWorkers().setKvCacheTokens(0);
    m.getSpec().getWorkers().setKvCacheType(WorkersSpec.KvCacheType.F16); // on CPU workers
    m.getSpec().getWorkers().setCudaGraphs(true); // on CPU workers
    m.getSpec().getWorkers().setInt8Activations(true); // on CPU workers
    m.getSpec().getModel().setFormat(ModelSource.Format.LLAMA2C);
    m.getSpec().getAttention().setIndexer(AttentionSpec.Indexer.MODEL); // dense, llama2.c file

    UpdateControl<LongContextModel> control = reconciler().reconcile(m, context);

    assertThat(control.isPatchStatus()).isTrue();
    verify(workflow, never()).reconcileManagedWorkflow();
    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Failed);
    Condition ready = condition(m, READY);
    assertThat(ready.getStatus()).isEqualTo("False");
    assertThat(ready.getReason()).isEqualTo("InvalidSpec");
    assertThat(ready.getMessage())
        .contains("spec.model.uri 'hf://just-org' must be hf://org/repo[/file]")
        .contains("spec.workers.kvCacheTokens must be >= 1, got 0")
        .contains("spec.workers.kvCacheType f16 needs GPU workers (spec.workers.gpu > 0)")
        .contains("spec.workers.cudaGraphs needs GPU workers (spec.workers.gpu > 0)")
        .contains("spec.workers.int8Activations needs GPU workers (spec.workers.gpu > 0)")
        .contains("spec.attention.indexer model applies to method indexer-topk")
        .contains(
            "spec.attention.indexer model needs a GGUF model file with indexer tensors;"
                + " spec.model.format is llama2c");
    assertThat(events("InvalidSpec"))
        .singleElement()
        .satisfies(
            e -> {
              assertThat(e.getType()).isEqualTo("Warning");
              assertThat(e.getMessage()).isEqualTo(ready.getMessage());
              assertThat(e.getInvolvedObject().getUid()).isEqualTo(m.getMetadata().getUid());
            });

    // the same error at the same generation is not announced again on every retry
    reconciler().reconcile(m, context);
    assertThat(events("InvalidSpec")).hasSize(1);
  }

  @Test
  void aDistilledIndexerNeedsItsFileAndTheFileItsIndexer() {
    LongContextModel m = model(TestModels.cpu("ix", ns));
    m.getSpec().getAttention().setMethod(AttentionSpec.Method.INDEXER_TOPK);
    m.getSpec().getAttention().setIndexer(AttentionSpec.Indexer.FILE); // no indexerFile
    reconciler().reconcile(m, context);
    assertThat(condition(m, READY).getMessage())
        .contains("spec.attention.indexer file needs spec.attention.indexerFile");

    LongContextModel other = model(TestModels.cpu("ix2", ns));
    other.getSpec().getAttention().setIndexerFile("ix.gguf"); // with indexer own-heads
    reconciler().reconcile(other, context);
    assertThat(condition(other, READY).getMessage())
        .contains("spec.attention.indexerFile applies only to spec.attention.indexer file");
    verify(workflow, never()).reconcileManagedWorkflow();
  }

  @Test
  void loadAboveTargetScalesUpAtOnceAndRecordsTheDecision() {
    LongContextModel m = model(TestModels.autoscaled("auto", ns));
    secondary(1, 1, 1);
    // 1 pod of 1000 tokens, target 0.5: 1200 resident + 300 queued needs ceil(1500/500) = 3
    loads =
        x ->
            Optional.of(
                ContextLoad.of(
                    Instant.now(clock), 300, List.of(new PodLoad("auto-worker-0", 1200, 1000))));

    UpdateControl<LongContextModel> control = reconciler().reconcile(m, context);

    assertThat(PoolSize.get(context, m)).isEqualTo(3);
    var s = m.getStatus();
    assertThat(s.getWorkers().getDesired()).isEqualTo(3);
    var d = s.getAutoscaler().getLastDecision();
    assertThat(d.getReason()).isEqualTo("ScaleUp");
    assertThat(d.getFrom()).isEqualTo(1);
    assertThat(d.getTo()).isEqualTo(3);
    assertThat(d.getTime()).isEqualTo("2025-01-01T00:00:00Z");
    assertThat(s.getContextLoad().getResidentTokens()).isEqualTo(1200);
    assertThat(s.getContextLoad().getQueuedTokens()).isEqualTo(300);
    assertThat(s.getContextLoad().getUtilization()).isEqualTo(1.5);
    assertThat(events("ScaleUp"))
        .singleElement()
        .extracting(Event::getMessage)
        .asString()
        .startsWith("workers 1 -> 3: ");
    // not ready at 3: re-checked within the poll interval (1 s in this model)
    assertThat(control.getScheduleDelay()).contains(1_000L);
  }

  @Test
  void aLoadSourceThatThrowsHoldsThePoolAndDoesNotEscape() {
    LongContextModel m = model(TestModels.autoscaled("auto", ns));
    secondary(2, 2, 1);
    loads =
        x -> {
          throw new IllegalStateException("coordinator went away");
        };

    reconciler().reconcile(m, context);

    assertThat(PoolSize.get(context, m)).isEqualTo(2);
    assertThat(m.getStatus().getAutoscaler().getLastDecision().getReason()).isEmpty();
    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Ready);
    assertThat(events("ScaleDown")).isEmpty();
  }

  @Test
  void aFailingWorkflowGoesToJosdkAndUpdateErrorStatusWritesItIntoStatus() {
    LongContextModel m = model(TestModels.cpu("tiny", ns));
    secondary(2, 2, 1);
    LongContextModelReconciler r = reconciler();
    r.reconcile(m, context);
    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Ready);

    var failure = new KubernetesClientException("statefulsets.apps is forbidden");
    when(workflow.reconcileManagedWorkflow()).thenThrow(failure);
    // JOSDK catches what reconcile throws, retries, and asks updateErrorStatus for the status
    assertThatThrownBy(() -> r.reconcile(m, context)).isSameAs(failure);
    clock.advance(Duration.ofSeconds(5));
    var control = r.updateErrorStatus(m, context, failure);

    assertThat(control.getResource()).containsSame(m);
    assertThat(m.getStatus().getPhase()).isEqualTo(Phase.Degraded);
    Condition ready = condition(m, READY);
    assertThat(ready.getStatus()).isEqualTo("False");
    assertThat(ready.getReason()).isEqualTo("ReconcileError");
    assertThat(ready.getMessage())
        .isEqualTo("KubernetesClientException: statefulsets.apps is forbidden");
    assertThat(ready.getLastTransitionTime()).isEqualTo("2025-01-01T00:00:05Z");
    assertThat(events("ReconcileError")).hasSize(1);
  }
}
