package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.Pattern;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.Toleration;
import io.fabric8.kubernetes.model.annotation.SpecReplicas;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The worker pool: a StatefulSet of shard pods, each holding the full model weights and the KV
 * cache of the sequence ranges placed on it. Pods run {@code longctx serve --role shard}.
 */
public class WorkersSpec {

  /** Element types of a GPU worker's KV cache. */
  public enum KvCacheType {
    /** Keys and values as computed: results equal the CPU engine's. */
    @JsonProperty("f32")
    F32,
    /** IEEE half: half the bytes per token (and per attention read), rounded on store. */
    @JsonProperty("f16")
    F16
  }

  /** Pool size when neither replicas nor autoscaling is given. */
  public static final int DEFAULT_REPLICAS = 1;

  /** Image used when {@link #image} is not set. */
  public static final String DEFAULT_IMAGE = "ghcr.io/longctx/longctx-worker:0.1.0";

  @SpecReplicas
  @JsonInclude(JsonInclude.Include.NON_NULL)
  @Min(0)
  @Max(1024)
  @JsonPropertyDescription(
      "Fixed number of worker pods (also the /scale subresource that HPA or KEDA drive);"
          + " exclusive with spec.autoscaling. Absent and no autoscaling: 1.")
  private Integer replicas;

  @Default(DEFAULT_IMAGE)
  @JsonPropertyDescription("Container image serving both roles (longctx serve).")
  private String image = DEFAULT_IMAGE;

  @Default("IfNotPresent")
  @Pattern("^(Always|IfNotPresent|Never)$")
  @JsonPropertyDescription("Image pull policy: Always, IfNotPresent or Never.")
  private String imagePullPolicy = "IfNotPresent";

  @JsonPropertyDescription("CPU and memory requests and limits of each worker container.")
  private ResourceRequirements resources = new ResourceRequirements();

  @Default("0")
  @Min(0)
  @Max(16)
  @JsonPropertyDescription(
      "GPUs per worker (nvidia.com/gpu request and limit); 0: the CPU (Vector API) engine.")
  private int gpu = 0;

  @JsonPropertyDescription("Node labels a worker pod must match.")
  private Map<String, String> nodeSelector = new LinkedHashMap<>();

  @JsonPropertyDescription("Tolerations of the worker pods (e.g. for tainted GPU nodes).")
  private List<Toleration> tolerations = new ArrayList<>();

  @Default("65536")
  @Min(1)
  @JsonPropertyDescription(
      "KV cache capacity of one worker in tokens; the autoscaler's unit of capacity.")
  private long kvCacheTokens = 65536;

  @Default("f32")
  @JsonPropertyDescription(
      "Element type of a GPU worker's KV cache: f32 (results equal the CPU engine's) or f16 (half"
          + " the bytes per token, so twice the tokens fit in the same memory; keys and values"
          + " rounded to half precision). Needs gpu > 0: CPU workers keep f32.")
  private KvCacheType kvCacheType = KvCacheType.F32;

  @Default("false")
  @JsonPropertyDescription(
      "Run each decode step of a GPU worker as one CUDA graph launch instead of a few hundred"
          + " kernel launches (dense attention; the same results). Needs gpu > 0.")
  private boolean cudaGraphs;

  @Default("false")
  @JsonPropertyDescription(
      "Multiply a GPU worker's Q8_0, Q4_0, Q4_K and Q6_K matrices by int8-quantized activations"
          + " (dp4a): fewer"
          + " instructions per weight byte; logits within the activations' rounding of the"
          + " float ones. Needs gpu > 0.")
  private boolean int8Activations;

  @JsonPropertyDescription("Extra JVM options for the worker (JAVA_TOOL_OPTIONS), e.g. -Xmx.")
  private String jvmOptions = "";

  @JsonPropertyDescription("Extra environment variables of the worker container.")
  private List<EnvVar> env = new ArrayList<>();

  @Default("120")
  @Min(0)
  @Max(3600)
  @JsonPropertyDescription(
      "Seconds a stopping worker may take to drain: it stops taking new ranges and the"
          + " coordinator moves its sequences before the pod is killed.")
  private int terminationGracePeriodSeconds = 120;

  /** The fixed pool size: replicas, or {@link #DEFAULT_REPLICAS} when absent. */
  @JsonIgnore
  public int replicasOrDefault() {
    return replicas == null ? DEFAULT_REPLICAS : replicas;
  }

  /** Fixed replicas, or null when the user left the choice to autoscaling or the default. */
  public Integer getReplicas() {
    return replicas;
  }

  public void setReplicas(Integer replicas) {
    this.replicas = replicas;
  }

  public String getImage() {
    return image;
  }

  public void setImage(String image) {
    this.image = image == null || image.isBlank() ? DEFAULT_IMAGE : image;
  }

  public String getImagePullPolicy() {
    return imagePullPolicy;
  }

  public void setImagePullPolicy(String imagePullPolicy) {
    this.imagePullPolicy = imagePullPolicy == null ? "IfNotPresent" : imagePullPolicy;
  }

  public ResourceRequirements getResources() {
    return resources;
  }

  public void setResources(ResourceRequirements resources) {
    this.resources = resources == null ? new ResourceRequirements() : resources;
  }

  public KvCacheType getKvCacheType() {
    return kvCacheType;
  }

  public void setKvCacheType(KvCacheType kvCacheType) {
    this.kvCacheType = kvCacheType == null ? KvCacheType.F32 : kvCacheType;
  }

  public boolean isCudaGraphs() {
    return cudaGraphs;
  }

  public void setCudaGraphs(boolean cudaGraphs) {
    this.cudaGraphs = cudaGraphs;
  }

  public boolean isInt8Activations() {
    return int8Activations;
  }

  public void setInt8Activations(boolean int8Activations) {
    this.int8Activations = int8Activations;
  }

  public int getGpu() {
    return gpu;
  }

  public void setGpu(int gpu) {
    this.gpu = gpu;
  }

  public Map<String, String> getNodeSelector() {
    return nodeSelector;
  }

  public void setNodeSelector(Map<String, String> nodeSelector) {
    this.nodeSelector = nodeSelector == null ? new LinkedHashMap<>() : nodeSelector;
  }

  public List<Toleration> getTolerations() {
    return tolerations;
  }

  public void setTolerations(List<Toleration> tolerations) {
    this.tolerations = tolerations == null ? new ArrayList<>() : tolerations;
  }

  public long getKvCacheTokens() {
    return kvCacheTokens;
  }

  public void setKvCacheTokens(long kvCacheTokens) {
    this.kvCacheTokens = kvCacheTokens;
  }

  public String getJvmOptions() {
    return jvmOptions;
  }

  public void setJvmOptions(String jvmOptions) {
    this.jvmOptions = jvmOptions == null ? "" : jvmOptions;
  }

  public List<EnvVar> getEnv() {
    return env;
  }

  public void setEnv(List<EnvVar> env) {
    this.env = env == null ? new ArrayList<>() : env;
  }

  public int getTerminationGracePeriodSeconds() {
    return terminationGracePeriodSeconds;
  }

  public void setTerminationGracePeriodSeconds(int terminationGracePeriodSeconds) {
    this.terminationGracePeriodSeconds = terminationGracePeriodSeconds;
  }
}
