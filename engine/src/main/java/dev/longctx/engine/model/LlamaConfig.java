package dev.longctx.engine.model;

import dev.longctx.engine.kernel.Rope;

/**
 * Hyper-parameters of a Llama-family decoder (Llama 2/3, Mistral, Qwen2), named after the GGUF keys
 * they come from ({@code llama.embedding_length} → {@code dim}, and so on).
 *
 * @param architecture GGUF {@code general.architecture} ("llama", "qwen2", ...) or the llama2.c /
 *     Hugging Face equivalent
 * @param dim model width ({@code embedding_length}, HF {@code hidden_size})
 * @param hiddenDim SwiGLU width ({@code feed_forward_length}, HF {@code intermediate_size})
 * @param layers decoder blocks ({@code block_count})
 * @param heads query heads ({@code attention.head_count})
 * @param kvHeads key/value heads, {@code heads} a multiple of it (GQA)
 * @param headDim per-head width ({@code attention.key_length}; usually dim / heads)
 * @param vocabSize tokens in the embedding table
 * @param contextLength trained context ({@code context_length}); prompts may not exceed it without
 *     a long-context method
 * @param rmsEps RMSNorm epsilon
 * @param ropeTheta RoPE base frequency
 * @param ropeLayout which pairs RoPE rotates
 * @param ropeScaling Llama-3.1 scaling, or null
 */
public record LlamaConfig(
    String architecture,
    int dim,
    int hiddenDim,
    int layers,
    int heads,
    int kvHeads,
    int headDim,
    int vocabSize,
    int contextLength,
    float rmsEps,
    float ropeTheta,
    Rope.Layout ropeLayout,
    Rope.Llama3Scaling ropeScaling) {

  public LlamaConfig {
    requirePositive("dim", dim);
    requirePositive("hiddenDim", hiddenDim);
    requirePositive("layers", layers);
    requirePositive("heads", heads);
    requirePositive("kvHeads", kvHeads);
    requirePositive("headDim", headDim);
    requirePositive("vocabSize", vocabSize);
    requirePositive("contextLength", contextLength);
    if (heads % kvHeads != 0) {
      throw new IllegalArgumentException(
          "heads (" + heads + ") must be a multiple of kvHeads (" + kvHeads + ")");
    }
    if (headDim % 2 != 0) {
      throw new IllegalArgumentException("headDim must be even for RoPE, got " + headDim);
    }
  }

  private static void requirePositive(String name, int value) {
    if (value <= 0) {
      throw new IllegalArgumentException(name + " must be > 0, got " + value);
    }
  }

  /** Width of all query heads together. */
  public int queryDim() {
    return heads * headDim;
  }

  /** Width of all key (or value) heads together. */
  public int kvDim() {
    return kvHeads * headDim;
  }

  /** Query heads sharing one key/value head. */
  public int groupSize() {
    return heads / kvHeads;
  }

  /** Weight count, for reporting model size. */
  public long parameterCount(boolean tiedEmbeddings) {
    long perLayer =
        2L * dim
            + (long) dim * queryDim()
            + 2L * dim * kvDim()
            + (long) queryDim() * dim
            + 3L * dim * hiddenDim;
    return (long) vocabSize * dim * (tiedEmbeddings ? 1 : 2) + layers * perLayer + dim;
  }
}
