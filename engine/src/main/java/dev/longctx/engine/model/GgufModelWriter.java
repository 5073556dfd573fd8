package dev.longctx.engine.model;

import dev.longctx.engine.gguf.GgufWriter;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import dev.longctx.engine.tensor.Parallel;
import dev.longctx.engine.tensor.Quantizer;
import dev.longctx.engine.tokenizer.Vocabulary;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a Llama-family model as GGUF with llama.cpp's tensor names and keys, quantizing matrices
 * row block by row block as the file is written, so models larger than memory stream through.
 * Matrix types come from a {@link MatrixTypes}: one type, or a mix by tensor name (Q4_K_M). A
 * matrix whose row length is not a multiple of its type's block falls back ({@link #typeFor}): from
 * Q4_K or Q6_K (blocks of 256, e.g. Qwen2.5-0.5B's 896-wide rows) to Q8_0, as llama.cpp does, and
 * from there or any other block type (e.g. stories260K's 172-wide FFN) to F16, or F32 when the
 * target is F32; norms, biases and {@code rope_freqs} stay F32.
 *
 * <p>GGUF {@code llama} expects q/k rows ordered for interleaved RoPE; a rotate-half source
 * (Hugging Face) written as {@code llama} has its q/k rows permuted per head so that the same model
 * results.
 */
public final class GgufModelWriter {

  /** Produces one row of a matrix as floats. */
  @FunctionalInterface
  public interface RowSource {
    /** Writes row {@code r} ({@code cols} floats) to {@code out[off ..]}. */
    void row(int r, float[] out, int off);
  }

  /** A matrix to write: its shape and where its rows come from. */
  public record Matrix(int rows, int cols, RowSource source) {
    public static Matrix of(FloatTensor t) {
      return new Matrix(t.rows(), t.cols(), t::dequantizeRow);
    }

    /**
     * This matrix with each head's rows reordered from rotate-half pairs (i, i + d/2) to
     * interleaved pairs (2i, 2i + 1).
     */
    public Matrix rotateHalfToInterleaved(int headDim) {
      int half = headDim / 2;
      RowSource src = source;
      return new Matrix(
          rows,
          cols,
          (r, out, off) -> {
            int head = r / headDim;
            int j = r % headDim;
            int from = head * headDim + (j % 2 == 0 ? j / 2 : half + j / 2);
            src.row(from, out, off);
          });
    }
  }

  /** The tensors of a model, by role. Biases may be null. */
  public interface Source {
    LlamaConfig config();

    Matrix tokenEmbedding();

    /** The vocabulary projection, or null when tied to the embedding. */
    Matrix output();

    float[] outputNorm();

    Matrix layerMatrix(int layer, String ggufName);

    /** A layer's vector ("attn_norm", "ffn_norm", "attn_q.bias", ...), or null if absent. */
    float[] layerVector(int layer, String ggufName);

    /** Per-frequency RoPE divisors, or null. */
    float[] ropeFreqs();

    /**
     * A layer's lightning-indexer matrix ("attn_q_b", "attn_k", "proj"), or null for a model
     * without an indexer (ALGORITHMS.md §1.2; written under llama.cpp's DeepSeek-V3.2 names {@code
     * blk.N.indexer.*}, which {@code LightningIndexer.fromGguf} reads).
     */
    default Matrix indexerMatrix(int layer, String name) {
      return null;
    }

    /** A layer's lightning-indexer vector ("k_norm", "k_norm.bias"), or null. */
    default float[] indexerVector(int layer, String name) {
      return null;
    }
  }

  private GgufModelWriter() {}

  /**
   * What {@link #write(Path, String, Source, Vocabulary, MatrixTypes)} wrote.
   *
   * @param bytes the file's size
   * @param matrices how many matrices it holds
   * @param fallbacks for each type matrices fell back to, how many did (their rows did not fit the
   *     chosen type's block)
   */
  public record Written(long bytes, int matrices, Map<GgmlType, Integer> fallbacks) {
    public Written {
      fallbacks = Map.copyOf(fallbacks);
    }

    /** How many matrices fell back to another type than the one chosen for them. */
    public int fallbackCount() {
      return fallbacks.values().stream().mapToInt(Integer::intValue).sum();
    }
  }

  /** Writes {@code source} with matrices in {@code type} and {@code vocab} as the tokenizer. */
  public static long write(Path out, String name, Source source, Vocabulary vocab, GgmlType type)
      throws IOException {
    return write(out, name, source, vocab, MatrixTypes.of(type)).bytes();
  }

  /**
   * Writes {@code source} with matrix types chosen by {@code types} and {@code vocab} as the
   * tokenizer.
   */
  public static Written write(
      Path out, String name, Source source, Vocabulary vocab, MatrixTypes types)
      throws IOException {
    LlamaConfig c = source.config();
    Tally tally = new Tally(types, source.output() == null);
    String arch = c.architecture().equals("qwen2") ? "qwen2" : "llama";
    boolean permute = arch.equals("llama") && c.ropeLayout() == Rope.Layout.ROTATE_HALF;
    GgufWriter w = new GgufWriter();
    w.putString("general.architecture", arch);
    w.putString("general.name", name);
    w.putUInt32(arch + ".context_length", c.contextLength());
    w.putUInt32(arch + ".embedding_length", c.dim());
    w.putUInt32(arch + ".block_count", c.layers());
    w.putUInt32(arch + ".feed_forward_length", c.hiddenDim());
    w.putUInt32(arch + ".attention.head_count", c.heads());
    w.putUInt32(arch + ".attention.head_count_kv", c.kvHeads());
    w.putUInt32(arch + ".attention.key_length", c.headDim());
    w.putUInt32(arch + ".attention.value_length", c.headDim());
    w.putUInt32(arch + ".rope.dimension_count", c.headDim());
    w.putUInt32(arch + ".vocab_size", c.vocabSize());
    w.putFloat32(arch + ".attention.layer_norm_rms_epsilon", c.rmsEps());
    w.putFloat32(arch + ".rope.freq_base", c.ropeTheta());
    putVocabulary(w, vocab);

    tally.add(w, "token_embd.weight", source.tokenEmbedding());
    for (int l = 0; l < c.layers(); l++) {
      String p = "blk." + l + ".";
      w.addTensor(p + "attn_norm.weight", new long[] {c.dim()}, source.layerVector(l, "attn_norm"));
      for (String m : List.of("attn_q", "attn_k", "attn_v", "attn_output")) {
        Matrix matrix = source.layerMatrix(l, m);
        boolean rotated = m.equals("attn_q") || m.equals("attn_k");
        if (permute && rotated) {
          matrix = matrix.rotateHalfToInterleaved(c.headDim());
        }
        tally.add(w, p + m + ".weight", matrix);
      }
      for (String b : List.of("attn_q", "attn_k", "attn_v")) {
        float[] bias = source.layerVector(l, b + ".bias");
        if (bias != null) {
          if (permute && !b.equals("attn_v")) {
            bias = permuteVector(bias, c.headDim());
          }
          w.addTensor(p + b + ".bias", new long[] {bias.length}, bias);
        }
      }
      w.addTensor(p + "ffn_norm.weight", new long[] {c.dim()}, source.layerVector(l, "ffn_norm"));
      for (String m : List.of("ffn_gate", "ffn_up", "ffn_down")) {
        tally.add(w, p + m + ".weight", source.layerMatrix(l, m));
      }
      if (source.indexerMatrix(l, "attn_k") != null) {
        for (String m : List.of("attn_q_b", "attn_k", "proj")) {
          tally.add(w, p + "indexer." + m + ".weight", source.indexerMatrix(l, m));
        }
        float[] gamma = source.indexerVector(l, "k_norm");
        w.addTensor(p + "indexer.k_norm.weight", new long[] {gamma.length}, gamma);
        float[] beta = source.indexerVector(l, "k_norm.bias");
        if (beta != null) {
          w.addTensor(p + "indexer.k_norm.bias", new long[] {beta.length}, beta);
        }
      }
    }
    w.addTensor("output_norm.weight", new long[] {c.dim()}, source.outputNorm());
    if (source.output() != null) {
      tally.add(w, "output.weight", source.output());
    }
    if (source.ropeFreqs() != null) {
      w.addTensor("rope_freqs.weight", new long[] {source.ropeFreqs().length}, source.ropeFreqs());
    }
    long bytes = w.write(out);
    return new Written(bytes, tally.matrices, tally.fallbacks);
  }

  /** Chooses each matrix's type, adds it, and counts the matrices and the fallbacks. */
  private static final class Tally {
    final MatrixTypes types;
    final boolean tied;
    final Map<GgmlType, Integer> fallbacks = new EnumMap<>(GgmlType.class);
    int matrices;

    Tally(MatrixTypes types, boolean tied) {
      this.types = types;
      this.tied = tied;
    }

    void add(GgufWriter w, String name, Matrix m) {
      GgmlType target = types.target(name, tied && name.equals("token_embd.weight"));
      GgmlType type = typeFor(target, m.cols());
      matrices++;
      if (type != target) {
        fallbacks.merge(type, 1, Integer::sum);
      }
      addMatrix(w, name, m, type);
    }
  }

  /** A {@link Source} over loaded weights (for conversion). */
  public static Source of(LlamaConfig config, LlamaWeights weights) {
    return new Source() {
      @Override
      public LlamaConfig config() {
        return config;
      }

      @Override
      public Matrix tokenEmbedding() {
        return Matrix.of(weights.tokenEmbedding());
      }

      @Override
      public Matrix output() {
        return weights.tiedEmbeddings() ? null : Matrix.of(weights.output());
      }

      @Override
      public float[] outputNorm() {
        return weights.outputNorm();
      }

      @Override
      public Matrix layerMatrix(int layer, String name) {
        LlamaWeights.Layer l = weights.layers().get(layer);
        return Matrix.of(
            switch (name) {
              case "attn_q" -> l.wq();
              case "attn_k" -> l.wk();
              case "attn_v" -> l.wv();
              case "attn_output" -> l.wo();
              case "ffn_gate" -> l.wGate();
              case "ffn_up" -> l.wUp();
              case "ffn_down" -> l.wDown();
              default -> throw new IllegalArgumentException("no matrix " + name);
            });
      }

      @Override
      public float[] layerVector(int layer, String name) {
        LlamaWeights.Layer l = weights.layers().get(layer);
        return switch (name) {
          case "attn_norm" -> l.attnNorm();
          case "ffn_norm" -> l.ffnNorm();
          case "attn_q.bias" -> l.bq();
          case "attn_k.bias" -> l.bk();
          case "attn_v.bias" -> l.bv();
          default -> throw new IllegalArgumentException("no vector " + name);
        };
      }

      @Override
      public float[] ropeFreqs() {
        return weights.ropeFreqFactors();
      }
    };
  }

  /**
   * The type a matrix with rows of {@code cols} elements is written in for target {@code type}: the
   * target when rows are whole blocks of it; else Q8_0 for a K-quant target (blocks of 256) when
   * rows are whole blocks of 32; else F16 (F32 for an F32 target).
   */
  public static GgmlType typeFor(GgmlType type, int cols) {
    if (cols % type.blockSize() == 0) {
      return type;
    }
    if ((type == GgmlType.Q4_K || type == GgmlType.Q6_K) && cols % GgmlType.Q8_0.blockSize() == 0) {
      return GgmlType.Q8_0;
    }
    return type == GgmlType.F32 ? GgmlType.F32 : GgmlType.F16;
  }

  private static void addMatrix(GgufWriter w, String name, Matrix m, GgmlType type) {
    long rowBytes = type.byteSize(m.cols());
    w.addTensor(
        name, type, new long[] {m.cols(), m.rows()}, out -> writeRows(out, m, type, rowBytes));
  }

  /** Quantizes rows in parallel, a block of rows (about 4 MiB) at a time, and writes them. */
  private static void writeRows(WritableByteChannel out, Matrix m, GgmlType type, long rowBytes)
      throws IOException {
    int rowsPerBlock = (int) Math.max(1, Math.min(m.rows(), (4L << 20) / rowBytes));
    ByteBuffer buf = ByteBuffer.allocateDirect((int) (rowsPerBlock * rowBytes));
    MemorySegment seg = MemorySegment.ofBuffer(buf);
    for (int r0 = 0; r0 < m.rows(); r0 += rowsPerBlock) {
      int n = Math.min(rowsPerBlock, m.rows() - r0);
      int first = r0;
      Parallel.forRange(
          n,
          (a, b) -> {
            float[] row = new float[m.cols()];
            for (int i = a; i < b; i++) {
              m.source().row(first + i, row, 0);
              Quantizer.quantize(type, row, 0, m.cols(), seg.asSlice(i * rowBytes, rowBytes));
            }
          });
      buf.clear().limit((int) (n * rowBytes));
      while (buf.hasRemaining()) {
        out.write(buf);
      }
    }
  }

  private static float[] permuteVector(float[] v, int headDim) {
    float[] out = new float[v.length];
    Matrix m =
        new Matrix(v.length, 1, (r, o, off) -> o[off] = v[r]).rotateHalfToInterleaved(headDim);
    for (int r = 0; r < v.length; r++) {
      m.source().row(r, out, r);
    }
    return out;
  }

  /** The {@code tokenizer.ggml.*} keys of {@code vocab}. */
  static void putVocabulary(GgufWriter w, Vocabulary v) {
    boolean spm = v.model() == Vocabulary.Model.SENTENCEPIECE;
    w.putString("tokenizer.ggml.model", spm ? "llama" : "gpt2");
    List<String> tokens = new ArrayList<>(v.size());
    int[] types = new int[v.size()];
    for (int i = 0; i < v.size(); i++) {
      String t = v.tokens().get(i);
      // GGUF SentencePiece vocabularies spell spaces as U+2581; llama2.c files use plain spaces.
      tokens.add(spm && !v.spaceMarker() ? t.replace(' ', '\u2581') : t);
      types[i] = v.type(i).code();
    }
    w.putStringArray("tokenizer.ggml.tokens", tokens);
    if (v.scores() != null) {
      w.putFloat32Array("tokenizer.ggml.scores", v.scores());
    }
    w.putInt32Array("tokenizer.ggml.token_type", types);
    if (!spm) {
      w.putStringArray("tokenizer.ggml.merges", v.merges());
      w.putString("tokenizer.ggml.pre", v.preTokenizer());
    }
    if (v.bosId() >= 0) {
      w.putUInt32("tokenizer.ggml.bos_token_id", v.bosId());
    }
    if (v.eosId() >= 0) {
      w.putUInt32("tokenizer.ggml.eos_token_id", v.eosId());
    }
    if (v.unkId() >= 0) {
      w.putUInt32("tokenizer.ggml.unknown_token_id", v.unkId());
    }
    if (v.eotIds().length > 0) {
      w.putUInt32("tokenizer.ggml.eot_token_id", v.eotIds()[0]);
    }
    w.putBool("tokenizer.ggml.add_bos_token", v.addBos());
    if (spm) {
      w.putBool("tokenizer.ggml.add_space_prefix", v.addSpacePrefix());
    }
  }
}
