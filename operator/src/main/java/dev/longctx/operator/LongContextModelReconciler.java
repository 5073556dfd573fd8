package dev.longctx.operator;

import static dev.longctx.api.v1alpha1.LongContextModelStatus.COORDINATOR_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.MODEL_READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.READY;
import static dev.longctx.api.v1alpha1.LongContextModelStatus.WORKERS_READY;

import dev.longctx.api.v1alpha1.AutoscalingSpec;
import dev.longctx.api.v1alpha1.ContextLoadStatus;
import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.LongContextModelStatus;
import dev.longctx.api.v1alpha1.LongContextModelStatus.Phase;
import dev.longctx.api.v1alpha1.ScalingDecision;
import dev.longctx.operator.autoscaler.Autoscaler;
import dev.longctx.operator.autoscaler.ContextLoad;
import dev.longctx.operator.autoscaler.ContextLoadSource;
import dev.longctx.operator.resources.ConfigMapDependent;
import dev.longctx.operator.resources.CoordinatorDeploymentDependent;
import dev.longctx.operator.resources.CoordinatorServiceDependent;
import dev.longctx.operator.resources.ModelCachePvcDependent;
import dev.longctx.operator.resources.ModelMount;
import dev.longctx.operator.resources.Names;
import dev.longctx.operator.resources.PoolSize;
import dev.longctx.operator.resources.ServiceAccountDependent;
import dev.longctx.operator.resources.ShardNetworkPolicyDependent;
import dev.longctx.operator.resources.WorkerPdbDependent;
import dev.longctx.operator.resources.WorkerServiceDependent;
import dev.longctx.operator.resources.WorkerStatefulSetDependent;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import io.javaoperatorsdk.operator.api.reconciler.ControllerConfiguration;
import io.javaoperatorsdk.operator.api.reconciler.ErrorStatusUpdateControl;
import io.javaoperatorsdk.operator.api.reconciler.Reconciler;
import io.javaoperatorsdk.operator.api.reconciler.UpdateControl;
import io.javaoperatorsdk.operator.api.reconciler.Workflow;
import io.javaoperatorsdk.operator.api.reconciler.dependent.Dependent;
import jakarta.inject.Inject;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.jboss.logging.Logger;

/**
 * Reconciles a {@link LongContextModel}: observe (what exists) → validate (the spec) → decide (pool
 * size, by the fixed count or the autoscaler) → reconcile the dependents → report (conditions,
 * phase, endpoint, load, Events). The dependents' workflow is invoked explicitly so that the pool
 * size is decided before the StatefulSet's desired state is computed.
 */
@Workflow(
    explicitInvocation = true,
    dependents = {
      @Dependent(name = "config", type = ConfigMapDependent.class),
      @Dependent(name = "service-account", type = ServiceAccountDependent.class),
      @Dependent(
          name = "model-cache",
          type = ModelCachePvcDependent.class,
          reconcilePrecondition = ModelCachePvcDependent.Enabled.class),
      @Dependent(name = "worker-service", type = WorkerServiceDependent.class),
      @Dependent(
          name = "workers",
          type = WorkerStatefulSetDependent.class,
          dependsOn = {"config", "service-account", "worker-service"}),
      @Dependent(
          name = "coordinator",
          type = CoordinatorDeploymentDependent.class,
          dependsOn = {"config", "service-account"}),
      @Dependent(name = "coordinator-service", type = CoordinatorServiceDependent.class),
      @Dependent(name = "worker-pdb", type = WorkerPdbDependent.class),
      @Dependent(name = "shard-network-policy", type = ShardNetworkPolicyDependent.class),
    })
@ControllerConfiguration(name = LongContextModelReconciler.NAME)
public class LongContextModelReconciler implements Reconciler<LongContextModel> {

  public static final String NAME = "longcontextmodel";

  /** Re-check interval while something is not ready yet. */
  static final Duration NOT_READY_RECHECK = Duration.ofSeconds(10);

  private static final Logger LOG = Logger.getLogger(LongContextModelReconciler.class);

  private final ContextLoadSource loads;
  private final Clock clock;

  @Inject
  public LongContextModelReconciler(ContextLoadSource loads, Clock clock) {
    this.loads = loads;
    this.clock = clock;
  }

  @Override
  public UpdateControl<LongContextModel> reconcile(
      LongContextModel model, Context<LongContextModel> context) {
    Instant now = Instant.now(clock);
    long generation = generation(model);
    LongContextModelStatus status = model.statusOrInit();

    // validate
    List<String> errors = SpecValidator.validate(model);
    if (!errors.isEmpty()) {
      String message = String.join("; ", errors);
      boolean alreadyReported =
          status.getPhase() == Phase.Failed
              && status.getObservedGeneration() == generation
              && status.condition(READY).map(c -> message.equals(c.getMessage())).orElse(false);
      status.setPhase(Phase.Failed);
      status.setObservedGeneration(generation);
      Conditions.set(status.getConditions(), READY, false, "InvalidSpec", message, generation, now);
      if (!alreadyReported) {
        Events.record(context.getClient(), clock, model, Events.WARNING, "InvalidSpec", message);
      }
      return UpdateControl.patchStatus(model);
    }

    // observe and decide
    Optional<StatefulSet> sts = context.getSecondaryResource(StatefulSet.class);
    int workers = decideWorkers(model, context, sts, now);
    PoolSize.set(context, workers);

    // reconcile the dependents
    context.managedWorkflowAndDependentResourceContext().reconcileManagedWorkflow();

    // report
    sts = context.getSecondaryResource(StatefulSet.class);
    Optional<Deployment> coordinator = context.getSecondaryResource(Deployment.class);
    boolean ready = report(model, workers, sts, coordinator, generation, now);
    UpdateControl<LongContextModel> control = UpdateControl.patchStatus(model);
    if (model.getSpec().getAutoscaling() != null) {
      Duration poll = Duration.ofSeconds(model.getSpec().getAutoscaling().getPollIntervalSeconds());
      control.rescheduleAfter(ready ? poll : min(poll, NOT_READY_RECHECK));
    } else if (!ready) {
      control.rescheduleAfter(NOT_READY_RECHECK);
    }
    return control;
  }

  @Override
  public ErrorStatusUpdateControl<LongContextModel> updateErrorStatus(
      LongContextModel model, Context<LongContextModel> context, Exception e) {
    String message = e.getClass().getSimpleName() + ": " + e.getMessage();
    LOG.warnf(e, "reconciling %s failed", model.getMetadata().getName());
    long generation = generation(model);
    var status = model.statusOrInit();
    Conditions.set(
        status.getConditions(),
        READY,
        false,
        "ReconcileError",
        message,
        generation,
        Instant.now(clock));
    if (status.getPhase() == Phase.Ready) {
      status.setPhase(Phase.Degraded);
    }
    Events.record(context.getClient(), clock, model, Events.WARNING, "ReconcileError", message);
    return ErrorStatusUpdateControl.patchStatus(model);
  }

  /** The pool size: the fixed count, or the autoscaler's decision recorded in status. */
  int decideWorkers(
      LongContextModel model,
      Context<LongContextModel> context,
      Optional<StatefulSet> sts,
      Instant now) {
    AutoscalingSpec a = model.getSpec().getAutoscaling();
    var status = model.getStatus();
    if (a == null) {
      status.getAutoscaler().setPendingScaleDownTo(0);
      status.getAutoscaler().setPendingSince("");
      return model.getSpec().getWorkers().replicasOrDefault();
    }
    int current =
        sts.map(s -> s.getSpec().getReplicas()).filter(r -> r != null).orElse(a.getMinReplicas());
    Set<String> live =
        IntStream.range(0, current)
            .mapToObj(i -> Names.workerPod(model, i))
            .collect(Collectors.toSet());
    Optional<ContextLoad> load = readLoad(model);
    var policy =
        new Autoscaler.Policy(
            a.getMinReplicas(),
            a.getMaxReplicas(),
            model.getSpec().getWorkers().getKvCacheTokens(),
            a.getTargetContextLoad(),
            Duration.ofSeconds(a.getScaleDownDelaySeconds()),
            Duration.ofSeconds(a.getStaleAfterSeconds()));
    var d = Autoscaler.decide(policy, current, load, live, now, pending(status));

    load.ifPresent(l -> status.setContextLoad(loadStatus(l, live)));
    status
        .getAutoscaler()
        .setPendingScaleDownTo(d.pending().map(Autoscaler.Pending::replicas).orElse(0));
    status.getAutoscaler().setPendingSince(d.pending().map(p -> p.since().toString()).orElse(""));
    if (d.kind().changesReplicas()) {
      String reason =
          switch (d.kind()) {
            case SCALE_UP -> "ScaleUp";
            case SCALE_DOWN -> "ScaleDown";
            default -> "Clamp";
          };
      String message = "workers %d -> %d: %s".formatted(current, d.replicas(), d.message());
      ScalingDecision last = new ScalingDecision();
      last.setTime(now.toString());
      last.setFrom(current);
      last.setTo(d.replicas());
      last.setReason(reason);
      last.setMessage(d.message());
      status.getAutoscaler().setLastDecision(last);
      Events.record(context.getClient(), clock, model, Events.NORMAL, reason, message);
      LOG.infof(
          "%s/%s: %s", model.getMetadata().getNamespace(), model.getMetadata().getName(), message);
    }
    return d.replicas();
  }

  private Optional<ContextLoad> readLoad(LongContextModel model) {
    try {
      return loads.read(model);
    } catch (RuntimeException e) {
      // Missing load never scales down; the next poll tries again.
      LOG.warnf("reading the context load of %s failed: %s", model.getMetadata().getName(), e);
      return Optional.empty();
    }
  }

  private static Optional<Autoscaler.Pending> pending(LongContextModelStatus status) {
    var a = status.getAutoscaler();
    if (a.getPendingScaleDownTo() <= 0 || a.getPendingSince().isBlank()) {
      return Optional.empty();
    }
    try {
      return Optional.of(
          new Autoscaler.Pending(a.getPendingScaleDownTo(), Instant.parse(a.getPendingSince())));
    } catch (DateTimeParseException e) {
      return Optional.empty();
    }
  }

  private static ContextLoadStatus loadStatus(ContextLoad l, Set<String> live) {
    var s = new ContextLoadStatus();
    long resident = l.residentOn(live);
    long capacity = l.capacityOn(live);
    s.setResidentTokens(resident);
    s.setQueuedTokens(l.queuedTokens());
    s.setCapacityTokens(capacity);
    s.setUtilization(
        capacity == 0 ? 0 : Math.round(1000.0 * (resident + l.queuedTokens()) / capacity) / 1000.0);
    s.setObservedAt(l.observedAt().toString());
    return s;
  }

  /** Writes conditions, phase, workers and endpoints; returns whether everything is ready. */
  boolean report(
      LongContextModel model,
      int desired,
      Optional<StatefulSet> sts,
      Optional<Deployment> coordinator,
      long generation,
      Instant now) {
    var status = model.getStatus();
    var c = status.getConditions();
    int current = sts.map(s -> s.getStatus()).map(s -> s.getReplicas()).orElse(0);
    int readyWorkers =
        sts.map(s -> s.getStatus()).map(s -> s.getReadyReplicas()).filter(r -> r != null).orElse(0);
    int wantCoordinators = model.getSpec().getCoordinator().getReplicas();
    int readyCoordinators =
        coordinator
            .map(d -> d.getStatus())
            .map(s -> s.getReadyReplicas())
            .filter(r -> r != null)
            .orElse(0);

    var w = status.getWorkers();
    w.setDesired(desired);
    w.setCurrent(current);
    w.setReady(readyWorkers);
    w.setSummary(readyWorkers + "/" + desired);
    w.setSelector(Names.selectorString(model, Names.WORKER));

    String modelPath = ModelMount.of(model, model.getSpec().getWorkers().getImage()).modelPath();
    boolean modelReady = readyWorkers > 0;
    Conditions.set(
        c,
        MODEL_READY,
        modelReady,
        modelReady ? "Loaded" : "Loading",
        modelReady
            ? "%s loaded from %s on %d worker(s)"
                .formatted(modelPath, model.getSpec().getModel().getUri(), readyWorkers)
            : (model.getSpec().getModel().scheme().downloads() ? "fetching " : "loading ")
                + model.getSpec().getModel().getUri()
                + " into "
                + modelPath,
        generation,
        now);
    boolean workersReady = desired > 0 && readyWorkers >= desired;
    Conditions.set(
        c,
        WORKERS_READY,
        workersReady,
        workersReady ? "AllReady" : (desired == 0 ? "ScaledToZero" : "NotReady"),
        "%d of %d workers ready".formatted(readyWorkers, desired),
        generation,
        now);
    boolean coordinatorReady = readyCoordinators >= wantCoordinators;
    Conditions.set(
        c,
        COORDINATOR_READY,
        coordinatorReady,
        coordinatorReady ? "AllReady" : "NotReady",
        "%d of %d coordinators ready".formatted(readyCoordinators, wantCoordinators),
        generation,
        now);
    boolean ready = modelReady && workersReady && coordinatorReady;
    Conditions.set(
        c,
        READY,
        ready,
        ready ? "Serving" : "NotReady",
        ready
            ? "serving on " + Names.endpoint(model)
            : "waiting for: "
                + String.join(
                    ", ",
                    java.util.stream.Stream.of(
                            modelReady ? null : MODEL_READY,
                            workersReady ? null : WORKERS_READY,
                            coordinatorReady ? null : COORDINATOR_READY)
                        .filter(s -> s != null)
                        .toList()),
        generation,
        now);
    if (ready) {
      status.setPhase(Phase.Ready);
    } else if (coordinatorReady && readyWorkers > 0) {
      status.setPhase(Phase.Degraded);
    } else if (sts.isPresent()) {
      status.setPhase(Phase.Loading);
    } else {
      status.setPhase(Phase.Pending);
    }
    status.setObservedGeneration(generation);
    status.setEndpoint(Names.endpoint(model));
    status.setHttpEndpoint(
        "http://%s.%s.svc:%d"
            .formatted(
                Names.coordinatorService(model),
                model.getMetadata().getNamespace(),
                model.getSpec().getService().getHttpPort()));
    return ready;
  }

  private static long generation(LongContextModel m) {
    Long g = m.getMetadata().getGeneration();
    return g == null ? 0 : g;
  }

  private static Duration min(Duration a, Duration b) {
    return a.compareTo(b) <= 0 ? a : b;
  }
}
