package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.Size;
import io.fabric8.generator.annotation.ValidationRule;

/** Attention method for long prompts (ALGORITHMS.md); short prompts always run dense. */
@ValidationRule(
    value = "!has(self.indexer) || self.indexer == 'own-heads' || self.method == 'indexer-topk'",
    message = "attention.indexer applies to method indexer-topk")
@ValidationRule(
    value =
        "has(self.indexer) && self.indexer == 'file' ? has(self.indexerFile) && self.indexerFile !="
            + " '' : !has(self.indexerFile) || self.indexerFile == ''",
    message = "attention.indexerFile is required with indexer file, and applies only to it")
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

  /** Where indexer top-k's scores come from (ALGORITHMS.md §1.2, §5.2). */
  public enum Indexer {
    /** Training-free: the model's own heads over INT8 keys, selected by the coordinator. */
    @JsonProperty("own-heads")
    OWN_HEADS,
    /**
     * A trained lightning indexer in the GGUF model file: its keys stay on the shards, which score
     * them; the coordinator merges their top-k lists (exact distributed top-k).
     */
    @JsonProperty("model")
    MODEL,
    /**
     * A lightning indexer distilled for the model by {@code longctx distill-indexer} (ALGORITHMS.md
     * §5.3), read from {@link #getIndexerFile()}; scored on the shards as MODEL is.
     */
    @JsonProperty("file")
    FILE
  }

  @Default("dense")
  @JsonPropertyDescription("Attention method: dense, indexer-topk or block-topk.")
  private Method method = Method.DENSE;

  @Default("2048")
  @Min(1)
  @Max(1048576)
  @JsonPropertyDescription("Keys (indexer-topk) or blocks (block-topk) each query attends to.")
  private int topK = 2048;

  @Default("own-heads")
  @JsonPropertyDescription(
      "indexer-topk scores: own-heads (training-free, from the model's own attention heads),"
          + " model (a lightning indexer in the GGUF model file; each shard scores the keys it"
          + " holds and the coordinator merges their top-k) or file (an indexer distilled for the"
          + " model by longctx distill-indexer, at indexerFile; scored as model is).")
  private Indexer indexer = Indexer.OWN_HEADS;

  @JsonPropertyDescription(
      "With indexer file: the indexer file's path in the worker pods, absolute or relative to"
          + " /models, where fetched (hf, s3, http) and pvc models are mounted: e.g. an"
          + " indexer.gguf beside the model in a fetched repository or on the claim.")
  @Size(max = 4096) // bounds the CEL rule's estimated cost, as the API server requires
  private String indexerFile;

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

  public Indexer getIndexer() {
    return indexer;
  }

  public void setIndexer(Indexer indexer) {
    this.indexer = indexer == null ? Indexer.OWN_HEADS : indexer;
  }

  public String getIndexerFile() {
    return indexerFile;
  }

  public void setIndexerFile(String indexerFile) {
    this.indexerFile = indexerFile;
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
