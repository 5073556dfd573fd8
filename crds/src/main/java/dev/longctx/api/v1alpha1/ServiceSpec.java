package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.Pattern;

/** How clients reach the coordinator, and the shards' internal port. */
public class ServiceSpec {

  @Default("ClusterIP")
  @Pattern("^(ClusterIP|NodePort|LoadBalancer)$")
  @JsonPropertyDescription("Service type of the coordinator: ClusterIP, NodePort or LoadBalancer.")
  private String type = "ClusterIP";

  @Default("9000")
  @Min(1)
  @Max(65535)
  @JsonPropertyDescription("gRPC port (longctx.v1 Generate and Admin).")
  private int grpcPort = 9000;

  @Default("8080")
  @Min(1)
  @Max(65535)
  @JsonPropertyDescription("HTTP port (OpenAI-compatible API, health and metrics).")
  private int httpPort = 8080;

  @Default("9100")
  @Min(1)
  @Max(65535)
  @JsonPropertyDescription(
      "Internal shard gRPC port of the workers, reachable only from the coordinator.")
  private int shardPort = 9100;

  @JsonPropertyDescription(
      "Secret holding the API key clients must send; empty name: no key required.")
  private SecretKeyRef apiKeySecret = new SecretKeyRef();

  public String getType() {
    return type;
  }

  public void setType(String type) {
    this.type = type == null ? "ClusterIP" : type;
  }

  public int getGrpcPort() {
    return grpcPort;
  }

  public void setGrpcPort(int grpcPort) {
    this.grpcPort = grpcPort;
  }

  public int getHttpPort() {
    return httpPort;
  }

  public void setHttpPort(int httpPort) {
    this.httpPort = httpPort;
  }

  public int getShardPort() {
    return shardPort;
  }

  public void setShardPort(int shardPort) {
    this.shardPort = shardPort;
  }

  public SecretKeyRef getApiKeySecret() {
    return apiKeySecret;
  }

  public void setApiKeySecret(SecretKeyRef apiKeySecret) {
    this.apiKeySecret = apiKeySecret == null ? new SecretKeyRef() : apiKeySecret;
  }
}
