package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;

/** Attention method for long prompts (ALGORITHMS.md); short prompts always run dense. */
public class AttentionSpec {

  /** The attention methods the engine offers. */
  public enum Method {
    /** Exact causal attention over every key. */
    @JsonProperty("dense")
    DENSE,
    /** Indexer top-k sparse attention (DeepSeek Sparse Attention style). */
    @JsonProperty("indexer-topk")
    INDEXER_TOPK,
    /** Block top-k sparse attention (MoBA / Quest style). */
    @JsonProperty("block-topk")
    BLOCK_TOPK
  }

  @Default("dense")
  @JsonPropertyDescription("Attention method: dense, indexer-topk or block-topk.")
  private Method method = Method.DENSE;

  @Default("2048")
  @Min(1)
  @Max(1048576)
  @JsonPropertyDescription("Keys (indexer-topk) or blocks (block-topk) each query attends to.")
  private int topK = 2048;

  @Default("64")
  @Min(1)
  @Max(65536)
  @JsonPropertyDescription("Block size in tokens for block-topk.")
  private int blockSize = 64;

  @Default("4096")
  @Min(0)
  @JsonPropertyDescription("Prompts shorter than this many tokens use dense attention.")
  private int denseBelowTokens = 4096;

  public Method getMethod() {
    return method;
  }

  public void setMethod(Method method) {
    this.method = method == null ? Method.DENSE : method;
  }

  public int getTopK() {
    return topK;
  }

  public void setTopK(int topK) {
    this.topK = topK;
  }

  public int getBlockSize() {
    return blockSize;
  }

  public void setBlockSize(int blockSize) {
    this.blockSize = blockSize;
  }

  public int getDenseBelowTokens() {
    return denseBelowTokens;
  }

  public void setDenseBelowTokens(int denseBelowTokens) {
    this.denseBelowTokens = denseBelowTokens;
  }
}
