package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.kubernetes.api.model.ResourceRequirements;

/**
 * The coordinator: a Deployment running {@code longctx serve --role coordinator}, which places
 * sequence ranges on the shards, merges their results, samples and streams to clients.
 */
public class CoordinatorSpec {

  @Default("1")
  @Min(1)
  @Max(16)
  @JsonPropertyDescription("Coordinator pods.")
  private int replicas = 1;

  @JsonPropertyDescription("Coordinator image; empty: the workers' image.")
  private String image = "";

  @JsonPropertyDescription("CPU and memory requests and limits of the coordinator container.")
  private ResourceRequirements resources = new ResourceRequirements();

  @JsonPropertyDescription("Extra JVM options for the coordinator (JAVA_TOOL_OPTIONS).")
  private String jvmOptions = "";

  public int getReplicas() {
    return replicas;
  }

  public void setReplicas(int replicas) {
    this.replicas = replicas;
  }

  public String getImage() {
    return image;
  }

  public void setImage(String image) {
    this.image = image == null ? "" : image;
  }

  public ResourceRequirements getResources() {
    return resources;
  }

  public void setResources(ResourceRequirements resources) {
    this.resources = resources == null ? new ResourceRequirements() : resources;
  }

  public String getJvmOptions() {
    return jvmOptions;
  }

  public void setJvmOptions(String jvmOptions) {
    this.jvmOptions = jvmOptions == null ? "" : jvmOptions;
  }
}
