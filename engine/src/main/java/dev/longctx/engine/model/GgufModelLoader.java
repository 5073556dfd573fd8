package dev.longctx.engine.model;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Maps a GGUF file of a Llama-family architecture onto {@link LlamaConfig} and {@link
 * LlamaWeights}, with GGUF's names verbatim: {@code {arch}.embedding_length}, {@code
 * blk.N.attn_q.weight}, and so on. {@code llama} (also used for Mistral) rotates interleaved pairs
 * (the converter permutes q/k for that); {@code qwen2} rotates halves and has q/k/v biases. A
 * missing {@code output.weight} means tied embeddings; {@code rope_freqs.weight} (Llama-3.1) holds
 * per-frequency divisors.
 */
public final class GgufModelLoader {

  /** Architectures this loader maps, with their RoPE layouts. */
  public static final Set<String> ARCHITECTURES = Set.of("llama", "mistral", "qwen2");

  private GgufModelLoader() {}

  public static LlamaConfig config(GgufFile gguf) {
    String arch = gguf.getString("general.architecture");
    if (!ARCHITECTURES.contains(arch)) {
      throw ModelFormatException.atKey(
          gguf.path(),
          "general.architecture",
          "unknown architecture '"
              + arch
              + "' (supported: "
              + String.join(", ", ARCHITECTURES.stream().sorted().toList())
              + ")");
    }
    int dim = gguf.getInt(arch + ".embedding_length");
    int heads = gguf.getInt(arch + ".attention.head_count");
    int vocab =
        gguf.has(arch + ".vocab_size")
            ? gguf.getInt(arch + ".vocab_size")
            : (int) gguf.tensor("token_embd.weight").dims()[1];
    try {
      return new LlamaConfig(
          arch,
          dim,
          gguf.getInt(arch + ".feed_forward_length"),
          gguf.getInt(arch + ".block_count"),
          heads,
          gguf.getInt(arch + ".attention.head_count_kv", heads),
          gguf.getInt(arch + ".attention.key_length", dim / heads),
          vocab,
          gguf.getInt(arch + ".context_length"),
          gguf.getFloat(arch + ".attention.layer_norm_rms_epsilon", 1e-5f),
          gguf.getFloat(arch + ".rope.freq_base", 10000f),
          arch.equals("qwen2") ? Rope.Layout.ROTATE_HALF : Rope.Layout.INTERLEAVED,
          null);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.of(
          gguf.path(), "inconsistent hyper-parameters: " + e.getMessage());
    }
  }

  public static LlamaWeights weights(GgufFile gguf, LlamaConfig c) {
    FloatTensor embedding = gguf.floatTensor("token_embd.weight");
    FloatTensor output =
        gguf.hasTensor("output.weight") ? gguf.floatTensor("output.weight") : embedding;
    List<LlamaWeights.Layer> layers = new ArrayList<>(c.layers());
    for (int l = 0; l < c.layers(); l++) {
      String p = "blk." + l + ".";
      boolean bias = gguf.hasTensor(p + "attn_q.bias");
      layers.add(
          new LlamaWeights.Layer(
              vector(gguf, p + "attn_norm.weight"),
              gguf.floatTensor(p + "attn_q.weight"),
              gguf.floatTensor(p + "attn_k.weight"),
              gguf.floatTensor(p + "attn_v.weight"),
              gguf.floatTensor(p + "attn_output.weight"),
              bias ? vector(gguf, p + "attn_q.bias") : null,
              bias ? vector(gguf, p + "attn_k.bias") : null,
              bias ? vector(gguf, p + "attn_v.bias") : null,
              vector(gguf, p + "ffn_norm.weight"),
              gguf.floatTensor(p + "ffn_gate.weight"),
              gguf.floatTensor(p + "ffn_up.weight"),
              gguf.floatTensor(p + "ffn_down.weight")));
    }
    float[] ropeFreqs =
        gguf.hasTensor("rope_freqs.weight") ? vector(gguf, "rope_freqs.weight") : null;
    LlamaWeights w =
        new LlamaWeights(embedding, layers, vector(gguf, "output_norm.weight"), output, ropeFreqs);
    try {
      w.checkShapes(c);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.of(
          gguf.path(), "tensor shapes do not match the hyper-parameters: " + e.getMessage());
    }
    return w;
  }

  private static float[] vector(GgufFile gguf, String name) {
    FloatTensor t = gguf.floatTensor(name);
    float[] out = new float[t.rows() * t.cols()];
    for (int r = 0; r < t.rows(); r++) {
      t.dequantizeRow(r, out, r * t.cols());
    }
    return out;
  }
}
