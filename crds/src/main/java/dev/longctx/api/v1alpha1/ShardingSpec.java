package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;

/** How the coordinator splits a long prompt's prefill across worker pods (DESIGN.md §4). */
public class ShardingSpec {

  /** How sequence ranges are laid out over the shards. */
  public enum Placement {
    /** One contiguous range per shard. */
    @JsonProperty("contiguous")
    CONTIGUOUS,
    /** Ranges interleaved so causal work is balanced across shards. */
    @JsonProperty("zigzag")
    ZIGZAG
  }

  @Default("16384")
  @Min(1)
  @JsonPropertyDescription(
      "A request uses ceil(promptTokens / minTokensPerShard) shards, capped by the pool.")
  private int minTokensPerShard = 16384;

  @Default("8")
  @Min(1)
  @Max(1024)
  @JsonPropertyDescription("Most shards one request may use.")
  private int maxShardsPerRequest = 8;

  @Default("contiguous")
  @JsonPropertyDescription("Range placement: contiguous or zigzag.")
  private Placement placement = Placement.CONTIGUOUS;

  public int getMinTokensPerShard() {
    return minTokensPerShard;
  }

  public void setMinTokensPerShard(int minTokensPerShard) {
    this.minTokensPerShard = minTokensPerShard;
  }

  public int getMaxShardsPerRequest() {
    return maxShardsPerRequest;
  }

  public void setMaxShardsPerRequest(int maxShardsPerRequest) {
    this.maxShardsPerRequest = maxShardsPerRequest;
  }

  public Placement getPlacement() {
    return placement;
  }

  public void setPlacement(Placement placement) {
    this.placement = placement == null ? Placement.CONTIGUOUS : placement;
  }
}
