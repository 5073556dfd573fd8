package dev.longctx.engine.model;

import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tokenizer.TokenType;
import dev.longctx.engine.tokenizer.Vocabulary;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Random-weight models of real architectures' shapes, for benchmarks: the same bytes per token and
 * FLOPs as the real model, generated deterministically from a seed (never zeros). Matrix entries
 * are uniform in ±1/√cols so activations keep a sane scale through the layers; norm weights are
 * near 1.
 */
public final class SyntheticModel {

  /** The shapes {@code synth} knows, named after the published models they copy. */
  public enum Shape {
    TINY(
        "tiny",
        new LlamaConfig(
            "llama",
            256,
            768,
            4,
            8,
            4,
            32,
            4096,
            2048,
            1e-5f,
            10000f,
            Rope.Layout.INTERLEAVED,
            null)),
    LLAMA_3_2_1B(
        "llama-3.2-1b",
        new LlamaConfig(
            "llama",
            2048,
            8192,
            16,
            32,
            8,
            64,
            128256,
            131072,
            1e-5f,
            500000f,
            Rope.Layout.INTERLEAVED,
            new Rope.Llama3Scaling(32f, 1f, 4f, 8192))),
    LLAMA_3_1_8B(
        "llama-3.1-8b",
        new LlamaConfig(
            "llama",
            4096,
            14336,
            32,
            32,
            8,
            128,
            128256,
            131072,
            1e-5f,
            500000f,
            Rope.Layout.INTERLEAVED,
            new Rope.Llama3Scaling(8f, 1f, 4f, 8192))),
    QWEN2_5_0_5B(
        "qwen2.5-0.5b",
        new LlamaConfig(
            "qwen2",
            896,
            4864,
            24,
            14,
            2,
            64,
            151936,
            32768,
            1e-6f,
            1000000f,
            Rope.Layout.ROTATE_HALF,
            null)),
    /**
     * A test-sized qwen2 (q/k/v biases, rotate-half RoPE) whose 128-wide rows, like Qwen2.5-0.5B's
     * 896, are not whole K-quant blocks of 256, while its FFN's 512 are: a Q4_K_M of it has both
     * fallbacks and K-quants.
     */
    TINY_QWEN2(
        "tiny-qwen2",
        new LlamaConfig(
            "qwen2",
            128,
            512,
            2,
            4,
            2,
            32,
            512,
            2048,
            1e-6f,
            1000000f,
            Rope.Layout.ROTATE_HALF,
            null));

    private final String id;
    private final LlamaConfig config;

    Shape(String id, LlamaConfig config) {
      this.id = id;
      this.config = config;
    }

    public String id() {
      return id;
    }

    public LlamaConfig config() {
      return config;
    }

    /** Tied embeddings, as the published model has them. */
    public boolean tied() {
      return this != LLAMA_3_1_8B;
    }

    public static Shape byId(String id) {
      for (Shape s : values()) {
        if (s.id.equals(id.toLowerCase(Locale.ROOT))) {
          return s;
        }
      }
      throw new IllegalArgumentException(
          "unknown shape '"
              + id
              + "' (known: tiny, tiny-qwen2, llama-3.2-1b, llama-3.1-8b, qwen2.5-0.5b)");
    }
  }

  private SyntheticModel() {}

  /** A writer source of random weights in {@code shape}, reproducible from {@code seed}. */
  public static GgufModelWriter.Source source(Shape shape, long seed) {
    return source(shape.config(), shape.tied(), seed);
  }

  /**
   * The shape of a lightning indexer (ALGORITHMS.md §1.2): {@code heads} query heads of {@code
   * headDim} (a multiple of 4; DeepSeek-V3.2 has 64 × 128).
   */
  public record IndexerShape(int heads, int headDim) {
    public IndexerShape {
      if (heads < 1 || headDim < 4 || headDim % 4 != 0) {
        throw new IllegalArgumentException(
            "an indexer needs >= 1 heads of a dimension that is a multiple of 4, got "
                + heads
                + " × "
                + headDim);
      }
    }
  }

  /**
   * {@link #source(Shape, long)} with a random lightning indexer of {@code indexer}'s shape in
   * every layer (null: none), for the trained-indexer top-k path (--indexer model).
   */
  public static GgufModelWriter.Source source(Shape shape, long seed, IndexerShape indexer) {
    return source(shape.config(), shape.tied(), seed, indexer);
  }

  /**
   * A writer source of random weights for any config: q/k/v biases when the architecture is {@code
   * qwen2}, {@code rope_freqs} when it has Llama-3.1 scaling, a separate output matrix unless
   * {@code tied}.
   */
  public static GgufModelWriter.Source source(LlamaConfig c, boolean tied, long seed) {
    return source(c, tied, seed, null);
  }

  private static GgufModelWriter.Source source(
      LlamaConfig c, boolean tied, long seed, IndexerShape indexer) {
    return new GgufModelWriter.Source() {
      @Override
      public LlamaConfig config() {
        return c;
      }

      @Override
      public GgufModelWriter.Matrix tokenEmbedding() {
        return random("token_embd", c.vocabSize(), c.dim());
      }

      @Override
      public GgufModelWriter.Matrix output() {
        return tied ? null : random("output", c.vocabSize(), c.dim());
      }

      @Override
      public float[] outputNorm() {
        return nearOne("output_norm", c.dim());
      }

      @Override
      public GgufModelWriter.Matrix layerMatrix(int layer, String name) {
        String id = "blk." + layer + "." + name;
        return switch (name) {
          case "attn_q" -> random(id, c.queryDim(), c.dim());
          case "attn_k", "attn_v" -> random(id, c.kvDim(), c.dim());
          case "attn_output" -> random(id, c.dim(), c.queryDim());
          case "ffn_gate", "ffn_up" -> random(id, c.hiddenDim(), c.dim());
          case "ffn_down" -> random(id, c.dim(), c.hiddenDim());
          default -> throw new IllegalArgumentException("no matrix " + name);
        };
      }

      @Override
      public float[] layerVector(int layer, String name) {
        String id = "blk." + layer + "." + name;
        return switch (name) {
          case "attn_norm", "ffn_norm" -> nearOne(id, c.dim());
          case "attn_q.bias" -> c.architecture().equals("qwen2") ? small(id, c.queryDim()) : null;
          case "attn_k.bias", "attn_v.bias" ->
              c.architecture().equals("qwen2") ? small(id, c.kvDim()) : null;
          default -> throw new IllegalArgumentException("no vector " + name);
        };
      }

      @Override
      public float[] ropeFreqs() {
        return c.ropeScaling() == null ? null : llama3FreqFactors(c);
      }

      @Override
      public GgufModelWriter.Matrix indexerMatrix(int layer, String name) {
        if (indexer == null) {
          return null;
        }
        String id = "blk." + layer + ".indexer." + name;
        return switch (name) {
          case "attn_q_b" -> random(id, indexer.heads() * indexer.headDim(), c.dim());
          case "attn_k" -> random(id, indexer.headDim(), c.dim());
          case "proj" -> random(id, indexer.heads(), c.dim());
          default -> throw new IllegalArgumentException("no indexer matrix " + name);
        };
      }

      @Override
      public float[] indexerVector(int layer, String name) {
        if (indexer == null) {
          return null;
        }
        String id = "blk." + layer + ".indexer." + name;
        return switch (name) {
          case "k_norm" -> nearOne(id, indexer.headDim());
          case "k_norm.bias" -> small(id, indexer.headDim());
          default -> throw new IllegalArgumentException("no indexer vector " + name);
        };
      }

      private GgufModelWriter.Matrix random(String name, int rows, int cols) {
        long base = seed * 0x9E3779B97F4A7C15L + name.hashCode();
        float bound = (float) (1 / Math.sqrt(cols));
        return new GgufModelWriter.Matrix(
            rows,
            cols,
            (r, out, off) -> {
              SplittableRandom rnd = new SplittableRandom(base + r * 0xBF58476D1CE4E5B9L);
              for (int i = 0; i < cols; i++) {
                out[off + i] = (float) rnd.nextDouble(-bound, bound);
              }
            });
      }

      private float[] nearOne(String name, int n) {
        SplittableRandom rnd = new SplittableRandom(seed + name.hashCode());
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
          v[i] = (float) rnd.nextDouble(0.9, 1.1);
        }
        return v;
      }

      private float[] small(String name, int n) {
        SplittableRandom rnd = new SplittableRandom(seed + name.hashCode());
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
          v[i] = (float) rnd.nextDouble(-0.1, 0.1);
        }
        return v;
      }
    };
  }

  /**
   * GGUF {@code rope_freqs.weight} for Llama-3.1 scaling: the divisor each frequency gets, as
   * llama.cpp's converter stores it (the scaled frequency is base frequency / factor).
   */
  public static float[] llama3FreqFactors(LlamaConfig c) {
    Rope scaled = new Rope(c.headDim(), c.ropeTheta(), c.ropeLayout(), c.ropeScaling());
    Rope plain = new Rope(c.headDim(), c.ropeTheta(), c.ropeLayout(), null);
    float[] f = new float[c.headDim() / 2];
    for (int i = 0; i < f.length; i++) {
      f[i] = (float) (plain.frequency(i) / scaled.frequency(i));
    }
    return f;
  }

  /**
   * A SentencePiece vocabulary of {@code size} tokens for synthetic models: {@code <unk>}, {@code
   * <s>}, {@code </s>}, the 256 byte pieces, then filler pieces, so any text encodes (by bytes).
   */
  public static Vocabulary vocabulary(int size) {
    if (size < 3 + 256) {
      throw new IllegalArgumentException(
          "a synthetic vocabulary needs at least 259 tokens (3 special + 256 bytes), got " + size);
    }
    List<String> tokens = new ArrayList<>(size);
    float[] scores = new float[size];
    int[] types = new int[size];
    tokens.add("<unk>");
    types[0] = TokenType.UNKNOWN.code();
    tokens.add("<s>");
    types[1] = TokenType.CONTROL.code();
    tokens.add("</s>");
    types[2] = TokenType.CONTROL.code();
    for (int b = 0; b < 256; b++) {
      types[tokens.size()] = TokenType.BYTE.code();
      tokens.add(String.format("<0x%02X>", b));
    }
    for (int i = tokens.size(); i < size; i++) {
      types[i] = TokenType.NORMAL.code();
      scores[i] = -i;
      tokens.add("\u2581w" + i);
    }
    return new Vocabulary(
        Vocabulary.Model.SENTENCEPIECE,
        tokens,
        scores,
        types,
        null,
        1,
        2,
        0,
        null,
        true,
        true,
        true,
        "default",
        false);
  }
}
