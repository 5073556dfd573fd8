package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Required;
import io.fabric8.generator.annotation.ValidationRule;

/** Desired state of a {@link LongContextModel}. */
@ValidationRule(
    value = "!has(self.autoscaling) || !has(self.workers) || !has(self.workers.replicas)",
    message = "spec.workers.replicas and spec.autoscaling are mutually exclusive")
public class LongContextModelSpec {

  /** How the pool size is chosen. */
  public enum ScalingMode {
    /** {@code spec.workers.replicas} (or the {@code /scale} subresource, e.g. HPA or KEDA). */
    FIXED,
    /** The operator's context-load autoscaler ({@code spec.autoscaling}). */
    AUTOSCALED
  }

  @Required
  @JsonPropertyDescription("The model to serve: where its weights live and in which format.")
  private ModelSource model = new ModelSource();

  @JsonPropertyDescription("Context length and the SelfExtend mapping that stretches it.")
  private ContextSpec context = new ContextSpec();

  @JsonPropertyDescription("Attention method used for long prompts.")
  private AttentionSpec attention = new AttentionSpec();

  @JsonPropertyDescription("How a long prompt's prefill is split across worker pods.")
  private ShardingSpec sharding = new ShardingSpec();

  @JsonPropertyDescription(
      "The worker (shard) pool: image, resources, placement and KV cache size.")
  private WorkersSpec workers = new WorkersSpec();

  @JsonInclude(JsonInclude.Include.NON_NULL)
  @JsonPropertyDescription(
      "Context-load autoscaling of the worker pool; exclusive with workers.replicas. Absent: the"
          + " pool has workers.replicas pods (default 1).")
  private AutoscalingSpec autoscaling;

  @JsonPropertyDescription("The coordinator that clients connect to.")
  private CoordinatorSpec coordinator = new CoordinatorSpec();

  @JsonPropertyDescription("How the coordinator is exposed: ports, Service type and API key.")
  private ServiceSpec service = new ServiceSpec();

  /** Which of the two scaling choices this spec makes. */
  @JsonIgnore
  public ScalingMode scalingMode() {
    return autoscaling != null ? ScalingMode.AUTOSCALED : ScalingMode.FIXED;
  }

  public ModelSource getModel() {
    return model;
  }

  public void setModel(ModelSource model) {
    this.model = model == null ? new ModelSource() : model;
  }

  public ContextSpec getContext() {
    return context;
  }

  public void setContext(ContextSpec context) {
    this.context = context == null ? new ContextSpec() : context;
  }

  public AttentionSpec getAttention() {
    return attention;
  }

  public void setAttention(AttentionSpec attention) {
    this.attention = attention == null ? new AttentionSpec() : attention;
  }

  public ShardingSpec getSharding() {
    return sharding;
  }

  public void setSharding(ShardingSpec sharding) {
    this.sharding = sharding == null ? new ShardingSpec() : sharding;
  }

  public WorkersSpec getWorkers() {
    return workers;
  }

  public void setWorkers(WorkersSpec workers) {
    this.workers = workers == null ? new WorkersSpec() : workers;
  }

  /** The autoscaling settings, or null when the pool has a fixed size; see {@link #scalingMode}. */
  public AutoscalingSpec getAutoscaling() {
    return autoscaling;
  }

  public void setAutoscaling(AutoscalingSpec autoscaling) {
    this.autoscaling = autoscaling;
  }

  public CoordinatorSpec getCoordinator() {
    return coordinator;
  }

  public void setCoordinator(CoordinatorSpec coordinator) {
    this.coordinator = coordinator == null ? new CoordinatorSpec() : coordinator;
  }

  public ServiceSpec getService() {
    return service;
  }

  public void setService(ServiceSpec service) {
    this.service = service == null ? new ServiceSpec() : service;
  }
}
