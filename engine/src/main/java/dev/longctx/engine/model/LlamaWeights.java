package dev.longctx.engine.model;

import dev.longctx.engine.tensor.FloatTensor;
import java.util.List;

/**
 * The weights of a Llama-family decoder. Matrices are {@code rows × cols} with {@code y = W·x}
 * (rows = output width), in their on-disk type; norms and biases are small and kept as floats.
 *
 * @param tokenEmbedding (vocab, dim)
 * @param layers one entry per decoder block
 * @param outputNorm (dim)
 * @param output (vocab, dim); the same object as {@code tokenEmbedding} when embeddings are tied
 * @param ropeFreqFactors per-frequency divisors (GGUF {@code rope_freqs.weight}, Llama-3.1), or
 *     null
 */
public record LlamaWeights(
    FloatTensor tokenEmbedding,
    List<Layer> layers,
    float[] outputNorm,
    FloatTensor output,
    float[] ropeFreqFactors) {

  /**
   * One decoder block.
   *
   * @param attnNorm (dim)
   * @param wq (heads·headDim, dim)
   * @param wk (kvHeads·headDim, dim)
   * @param wv (kvHeads·headDim, dim)
   * @param wo (dim, heads·headDim)
   * @param bq (heads·headDim) or null — Qwen2 has QKV biases
   * @param bk (kvHeads·headDim) or null
   * @param bv (kvHeads·headDim) or null
   * @param ffnNorm (dim)
   * @param wGate (hiddenDim, dim) — w1 in llama2.c
   * @param wUp (hiddenDim, dim) — w3 in llama2.c
   * @param wDown (dim, hiddenDim) — w2 in llama2.c
   */
  public record Layer(
      float[] attnNorm,
      FloatTensor wq,
      FloatTensor wk,
      FloatTensor wv,
      FloatTensor wo,
      float[] bq,
      float[] bk,
      float[] bv,
      float[] ffnNorm,
      FloatTensor wGate,
      FloatTensor wUp,
      FloatTensor wDown) {}

  public boolean tiedEmbeddings() {
    return output == tokenEmbedding;
  }

  /** Checks every tensor's shape against {@code config}; throws naming the first mismatch. */
  public void checkShapes(LlamaConfig config) {
    expect("token embedding", tokenEmbedding, config.vocabSize(), config.dim());
    expect("output", output, config.vocabSize(), config.dim());
    expectLength("output norm", outputNorm, config.dim());
    if (layers.size() != config.layers()) {
      throw new IllegalArgumentException(
          "expected " + config.layers() + " layers, found " + layers.size());
    }
    for (int i = 0; i < layers.size(); i++) {
      Layer l = layers.get(i);
      String p = "layer " + i + " ";
      expectLength(p + "attention norm", l.attnNorm(), config.dim());
      expect(p + "wq", l.wq(), config.queryDim(), config.dim());
      expect(p + "wk", l.wk(), config.kvDim(), config.dim());
      expect(p + "wv", l.wv(), config.kvDim(), config.dim());
      expect(p + "wo", l.wo(), config.dim(), config.queryDim());
      if (l.bq() != null) {
        expectLength(p + "q bias", l.bq(), config.queryDim());
        expectLength(p + "k bias", l.bk(), config.kvDim());
        expectLength(p + "v bias", l.bv(), config.kvDim());
      }
      expectLength(p + "ffn norm", l.ffnNorm(), config.dim());
      expect(p + "ffn gate", l.wGate(), config.hiddenDim(), config.dim());
      expect(p + "ffn up", l.wUp(), config.hiddenDim(), config.dim());
      expect(p + "ffn down", l.wDown(), config.dim(), config.hiddenDim());
    }
  }

  private static void expect(String what, FloatTensor t, int rows, int cols) {
    if (t.rows() != rows || t.cols() != cols) {
      throw new IllegalArgumentException(
          what + " has shape " + t.rows() + "x" + t.cols() + ", expected " + rows + "x" + cols);
    }
  }

  private static void expectLength(String what, float[] v, int n) {
    if (v == null || v.length != n) {
      throw new IllegalArgumentException(
          what + " has " + (v == null ? "no" : v.length) + " elements, expected " + n);
    }
  }
}
