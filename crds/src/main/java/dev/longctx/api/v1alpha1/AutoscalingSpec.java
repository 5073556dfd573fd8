package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.ValidationRule;

/**
 * The context-load autoscaler (DESIGN.md §7): desired workers = ceil((resident + queued) /
 * (kvCacheTokens × targetContextLoad)), clamped to [minReplicas, maxReplicas].
 */
@ValidationRule(
    value = "self.minReplicas <= self.maxReplicas",
    message = "autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
public class AutoscalingSpec {

  @Default("1")
  @Min(1)
  @Max(1024)
  @JsonPropertyDescription("Fewest worker pods.")
  private int minReplicas = 1;

  @Default("4")
  @Min(1)
  @Max(1024)
  @JsonPropertyDescription("Most worker pods.")
  private int maxReplicas = 4;

  @Default("0.7")
  @Min(0.05)
  @Max(1.0)
  @JsonPropertyDescription(
      "Context load (resident + queued tokens over KV capacity) the pool is sized for.")
  private double targetContextLoad = 0.7;

  @Default("300")
  @Min(0)
  @Max(86400)
  @JsonPropertyDescription("A lower pool size must hold this long before the pool shrinks.")
  private int scaleDownDelaySeconds = 300;

  @Default("15")
  @Min(1)
  @Max(3600)
  @JsonPropertyDescription("How often the coordinator's load is read.")
  private int pollIntervalSeconds = 15;

  @Default("60")
  @Min(1)
  @Max(3600)
  @JsonPropertyDescription("Load older than this is stale: the pool may grow but never shrink.")
  private int staleAfterSeconds = 60;

  public int getMinReplicas() {
    return minReplicas;
  }

  public void setMinReplicas(int minReplicas) {
    this.minReplicas = minReplicas;
  }

  public int getMaxReplicas() {
    return maxReplicas;
  }

  public void setMaxReplicas(int maxReplicas) {
    this.maxReplicas = maxReplicas;
  }

  public double getTargetContextLoad() {
    return targetContextLoad;
  }

  public void setTargetContextLoad(double targetContextLoad) {
    this.targetContextLoad = targetContextLoad;
  }

  public int getScaleDownDelaySeconds() {
    return scaleDownDelaySeconds;
  }

  public void setScaleDownDelaySeconds(int scaleDownDelaySeconds) {
    this.scaleDownDelaySeconds = scaleDownDelaySeconds;
  }

  public int getPollIntervalSeconds() {
    return pollIntervalSeconds;
  }

  public void setPollIntervalSeconds(int pollIntervalSeconds) {
    this.pollIntervalSeconds = pollIntervalSeconds;
  }

  public int getStaleAfterSeconds() {
    return staleAfterSeconds;
  }

  public void setStaleAfterSeconds(int staleAfterSeconds) {
    this.staleAfterSeconds = staleAfterSeconds;
  }
}
