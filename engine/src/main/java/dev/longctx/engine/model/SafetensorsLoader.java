package dev.longctx.engine.model;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.json.Json;
import dev.longctx.engine.json.JsonParseException;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Loads a Hugging Face checkpoint: {@code config.json} plus {@code model.safetensors} or the shards
 * named by {@code model.safetensors.index.json}. A safetensors file is a little-endian uint64
 * header length N, N bytes of JSON mapping tensor names to {@code {dtype, shape, data_offsets}}
 * (offsets relative to the end of the header), then the data. Weights stay mmap'd.
 *
 * <p>Hugging Face Llama/Mistral/Qwen2 checkpoints keep q/k projections in the "rotate half" RoPE
 * layout. Tied embeddings may be stored under either {@code model.embed_tokens.weight} or only as
 * {@code lm_head.weight}; both are accepted.
 */
public final class SafetensorsLoader {

  private SafetensorsLoader() {}

  /** Loads the checkpoint in {@code dir} (or the directory of a {@code .safetensors} file). */
  public static ConfigAndWeights load(Path path, Arena arena) {
    Path dir = Files.isDirectory(path) ? path : path.toAbsolutePath().getParent();
    LlamaConfig config = readConfig(dir.resolve("config.json"));
    Map<String, Entry> tensors = new LinkedHashMap<>();
    Path index = dir.resolve("model.safetensors.index.json");
    if (!Files.isDirectory(path)) {
      readFile(path, arena, tensors);
    } else if (Files.exists(index)) {
      Map<String, Object> weightMap = object(index, parse(index), "weight_map");
      for (Object file : new java.util.LinkedHashSet<>(weightMap.values())) {
        readFile(dir.resolve(String.valueOf(file)), arena, tensors);
      }
    } else {
      readFile(dir.resolve("model.safetensors"), arena, tensors);
    }
    return new ConfigAndWeights(config, weights(dir, config, tensors));
  }

  private record Entry(Path file, String name, GgmlType type, long[] shape, MemorySegment data) {}

  static LlamaConfig readConfig(Path file) {
    Map<String, Object> c = asMap(file, parse(file), "(root)");
    String type = string(file, c, "model_type");
    if (!List.of("llama", "mistral", "qwen2").contains(type)) {
      throw ModelFormatException.atKey(
          file,
          "model_type",
          "unknown architecture '" + type + "' (supported: llama, mistral, qwen2)");
    }
    int dim = integer(file, c, "hidden_size");
    int heads = integer(file, c, "num_attention_heads");
    int kvHeads =
        c.get("num_key_value_heads") == null ? heads : integer(file, c, "num_key_value_heads");
    int headDim = c.get("head_dim") == null ? dim / heads : integer(file, c, "head_dim");
    Rope.Llama3Scaling scaling = null;
    if (c.get("rope_scaling") instanceof Map<?, ?> rs) {
      Object ropeType = rs.get("rope_type") != null ? rs.get("rope_type") : rs.get("type");
      if (!"llama3".equals(ropeType)) {
        throw ModelFormatException.atKey(
            file,
            "rope_scaling",
            "unsupported rope scaling type '" + ropeType + "' (supported: llama3)");
      }
      scaling =
          new Rope.Llama3Scaling(
              number(file, rs, "factor").floatValue(),
              number(file, rs, "low_freq_factor").floatValue(),
              number(file, rs, "high_freq_factor").floatValue(),
              number(file, rs, "original_max_position_embeddings").intValue());
    }
    try {
      return new LlamaConfig(
          type,
          dim,
          integer(file, c, "intermediate_size"),
          integer(file, c, "num_hidden_layers"),
          heads,
          kvHeads,
          headDim,
          integer(file, c, "vocab_size"),
          integer(file, c, "max_position_embeddings"),
          c.get("rms_norm_eps") == null ? 1e-6f : number(file, c, "rms_norm_eps").floatValue(),
          c.get("rope_theta") == null ? 10000f : number(file, c, "rope_theta").floatValue(),
          Rope.Layout.ROTATE_HALF,
          scaling);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.of(file, e.getMessage());
    }
  }

  private static void readFile(Path file, Arena arena, Map<String, Entry> out) {
    MemorySegment seg = MappedFile.map(file, arena);
    if (seg.byteSize() < 8) {
      throw ModelFormatException.atOffset(
          file, seg.byteSize(), "truncated: no 8-byte header length");
    }
    long headerLength = seg.get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
    if (headerLength < 2 || headerLength > seg.byteSize() - 8) {
      throw ModelFormatException.atOffset(
          file,
          0,
          "header length "
              + headerLength
              + " does not fit in a file of "
              + seg.byteSize()
              + " bytes");
    }
    String json =
        new String(
            seg.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
    Map<String, Object> header;
    try {
      header = asMap(file, Json.parse(json), "(header)");
    } catch (JsonParseException e) {
      throw ModelFormatException.atOffset(file, 8, "header is not valid JSON: " + e.getMessage());
    }
    long dataStart = 8 + headerLength;
    long dataSize = seg.byteSize() - dataStart;
    for (Map.Entry<String, Object> e : header.entrySet()) {
      String name = e.getKey();
      if (name.equals("__metadata__")) {
        continue;
      }
      Map<String, Object> info = asMap(file, e.getValue(), name);
      String dtype = string(file, info, "dtype");
      GgmlType type =
          switch (dtype) {
            case "F32" -> GgmlType.F32;
            case "F16" -> GgmlType.F16;
            case "BF16" -> GgmlType.BF16;
            default ->
                throw ModelFormatException.atKey(
                    file, name, "unsupported dtype " + dtype + " (supported: F32, F16, BF16)");
          };
      List<?> shapeList = list(file, info, "shape", name);
      long[] shape = new long[shapeList.size()];
      long elements = 1;
      for (int i = 0; i < shape.length; i++) {
        shape[i] = ((Number) shapeList.get(i)).longValue();
        if (shape[i] < 0) {
          throw ModelFormatException.atKey(file, name, "negative dimension " + shape[i]);
        }
        elements *= shape[i];
      }
      List<?> offsets = list(file, info, "data_offsets", name);
      long begin = ((Number) offsets.get(0)).longValue();
      long end = ((Number) offsets.get(1)).longValue();
      long expected = type.byteSize(elements);
      if (end - begin != expected) {
        throw ModelFormatException.atKey(
            file,
            name,
            "header says shape "
                + java.util.Arrays.toString(shape)
                + " of "
                + dtype
                + " ("
                + expected
                + " bytes) but data_offsets ["
                + begin
                + ", "
                + end
                + ") span "
                + (end - begin)
                + " bytes");
      }
      if (begin < 0 || end > dataSize) {
        throw ModelFormatException.atOffset(
            file,
            dataStart + begin,
            "tensor '"
                + name
                + "' data ["
                + begin
                + ", "
                + end
                + ") lies past the end of the data section ("
                + dataSize
                + " bytes)");
      }
      out.put(
          name, new Entry(file, name, type, shape, seg.asSlice(dataStart + begin, end - begin)));
    }
  }

  private static LlamaWeights weights(Path dir, LlamaConfig c, Map<String, Entry> t) {
    Entry embed = t.get("model.embed_tokens.weight");
    Entry head = t.get("lm_head.weight");
    if (embed == null && head == null) {
      throw ModelFormatException.atKey(
          dir, "model.embed_tokens.weight", "missing (and no lm_head.weight to tie it to)");
    }
    FloatTensor embedding = matrix(embed != null ? embed : head);
    FloatTensor output = head != null && embed != null ? matrix(head) : embedding;
    List<LlamaWeights.Layer> layers = new ArrayList<>();
    for (int l = 0; l < c.layers(); l++) {
      String p = "model.layers." + l + ".";
      boolean bias = t.containsKey(p + "self_attn.q_proj.bias");
      layers.add(
          new LlamaWeights.Layer(
              vector(dir, t, p + "input_layernorm.weight"),
              matrix(dir, t, p + "self_attn.q_proj.weight"),
              matrix(dir, t, p + "self_attn.k_proj.weight"),
              matrix(dir, t, p + "self_attn.v_proj.weight"),
              matrix(dir, t, p + "self_attn.o_proj.weight"),
              bias ? vector(dir, t, p + "self_attn.q_proj.bias") : null,
              bias ? vector(dir, t, p + "self_attn.k_proj.bias") : null,
              bias ? vector(dir, t, p + "self_attn.v_proj.bias") : null,
              vector(dir, t, p + "post_attention_layernorm.weight"),
              matrix(dir, t, p + "mlp.gate_proj.weight"),
              matrix(dir, t, p + "mlp.up_proj.weight"),
              matrix(dir, t, p + "mlp.down_proj.weight")));
    }
    LlamaWeights w =
        new LlamaWeights(embedding, layers, vector(dir, t, "model.norm.weight"), output, null);
    try {
      w.checkShapes(c);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.of(
          dir.resolve("config.json"), "weights do not match: " + e.getMessage());
    }
    return w;
  }

  private static Entry entry(Path dir, Map<String, Entry> t, String name) {
    Entry e = t.get(name);
    if (e == null) {
      throw ModelFormatException.atKey(dir, name, "tensor missing from the checkpoint");
    }
    return e;
  }

  private static FloatTensor matrix(Path dir, Map<String, Entry> t, String name) {
    return matrix(entry(dir, t, name));
  }

  private static FloatTensor matrix(Entry e) {
    if (e.shape().length != 2) {
      throw ModelFormatException.atKey(e.file(), e.name(), "expected a 2-D tensor");
    }
    return FloatTensor.of(e.type(), e.data(), (int) e.shape()[0], (int) e.shape()[1]);
  }

  private static float[] vector(Path dir, Map<String, Entry> t, String name) {
    Entry e = entry(dir, t, name);
    int n = (int) e.shape()[0];
    float[] out = new float[n];
    FloatTensor.of(e.type(), e.data(), 1, n).dequantizeRow(0, out, 0);
    return out;
  }

  // --- small typed JSON accessors that name the file and key on failure ---

  private static Object parse(Path file) {
    try {
      return Json.parse(Files.readString(file));
    } catch (IOException e) {
      throw ModelFormatException.of(file, "cannot read: " + e.getMessage(), e);
    } catch (JsonParseException e) {
      throw ModelFormatException.of(file, "invalid JSON: " + e.getMessage());
    }
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> asMap(Path file, Object v, String key) {
    if (!(v instanceof Map<?, ?> m)) {
      throw ModelFormatException.atKey(file, key, "expected a JSON object");
    }
    return (Map<String, Object>) m;
  }

  private static Map<String, Object> object(Path file, Object root, String key) {
    return asMap(file, asMap(file, root, "(root)").get(key), key);
  }

  private static List<?> list(Path file, Map<String, Object> m, String key, String owner) {
    if (!(m.get(key) instanceof List<?> l) || (key.equals("data_offsets") && l.size() != 2)) {
      throw ModelFormatException.atKey(file, owner + "." + key, "expected a JSON array");
    }
    return l;
  }

  private static String string(Path file, Map<String, Object> m, String key) {
    if (!(m.get(key) instanceof String s)) {
      throw ModelFormatException.atKey(file, key, "expected a string");
    }
    return s;
  }

  private static Number number(Path file, Map<?, ?> m, String key) {
    if (!(m.get(key) instanceof Number n)) {
      throw ModelFormatException.atKey(
          file, key, m.containsKey(key) ? "expected a number" : "missing");
    }
    return n;
  }

  private static int integer(Path file, Map<?, ?> m, String key) {
    return number(file, m, key).intValue();
  }
}
