package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.kubernetes.api.model.Condition;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Observed state of a {@link LongContextModel}, written only by the operator. */
public class LongContextModelStatus {

  /** Condition types, rolled up into {@link #READY}. */
  public static final String MODEL_READY = "ModelReady";

  public static final String WORKERS_READY = "WorkersReady";
  public static final String COORDINATOR_READY = "CoordinatorReady";
  public static final String READY = "Ready";

  /** Lifecycle phase. */
  public enum Phase {
    /** Accepted, resources being created. */
    Pending,
    /** Pods exist; the model is being fetched or loaded. */
    Loading,
    /** Every condition is true. */
    Ready,
    /** Serving, but with fewer workers than desired or a coordinator missing. */
    Degraded,
    /** The spec cannot be reconciled; the Ready condition's message says why. */
    Failed
  }

  @JsonPropertyDescription("Pending, Loading, Ready, Degraded or Failed.")
  private Phase phase = Phase.Pending;

  @JsonPropertyDescription(
      "ModelReady, WorkersReady, CoordinatorReady and Ready, in the Kubernetes condition shape.")
  private List<Condition> conditions = new ArrayList<>();

  @JsonPropertyDescription("metadata.generation of the spec this status describes.")
  private long observedGeneration = 0;

  @JsonPropertyDescription("Worker pool size: desired by the operator and ready.")
  private WorkersStatus workers = new WorkersStatus();

  @JsonPropertyDescription("Last context load read from the coordinator.")
  private ContextLoadStatus contextLoad = new ContextLoadStatus();

  @JsonPropertyDescription("gRPC endpoint of the coordinator: service.namespace.svc:port.")
  private String endpoint = "";

  @JsonPropertyDescription("HTTP (OpenAI-compatible) endpoint of the coordinator.")
  private String httpEndpoint = "";

  @JsonPropertyDescription("Autoscaler state: the last decision and a pending scale-down.")
  private AutoscalerStatus autoscaler = new AutoscalerStatus();

  /** The condition of the given type, if present. */
  @JsonIgnore
  public Optional<Condition> condition(String type) {
    return conditions.stream().filter(c -> type.equals(c.getType())).findFirst();
  }

  public Phase getPhase() {
    return phase;
  }

  public void setPhase(Phase phase) {
    this.phase = phase == null ? Phase.Pending : phase;
  }

  public List<Condition> getConditions() {
    return conditions;
  }

  public void setConditions(List<Condition> conditions) {
    this.conditions = conditions == null ? new ArrayList<>() : conditions;
  }

  public long getObservedGeneration() {
    return observedGeneration;
  }

  public void setObservedGeneration(long observedGeneration) {
    this.observedGeneration = observedGeneration;
  }

  public WorkersStatus getWorkers() {
    return workers;
  }

  public void setWorkers(WorkersStatus workers) {
    this.workers = workers == null ? new WorkersStatus() : workers;
  }

  public ContextLoadStatus getContextLoad() {
    return contextLoad;
  }

  public void setContextLoad(ContextLoadStatus contextLoad) {
    this.contextLoad = contextLoad == null ? new ContextLoadStatus() : contextLoad;
  }

  public String getEndpoint() {
    return endpoint;
  }

  public void setEndpoint(String endpoint) {
    this.endpoint = endpoint == null ? "" : endpoint;
  }

  public String getHttpEndpoint() {
    return httpEndpoint;
  }

  public void setHttpEndpoint(String httpEndpoint) {
    this.httpEndpoint = httpEndpoint == null ? "" : httpEndpoint;
  }

  public AutoscalerStatus getAutoscaler() {
    return autoscaler;
  }

  public void setAutoscaler(AutoscalerStatus autoscaler) {
    this.autoscaler = autoscaler == null ? new AutoscalerStatus() : autoscaler;
  }
}
