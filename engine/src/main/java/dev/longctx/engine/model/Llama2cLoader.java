package dev.longctx.engine.model;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Loads llama2.c checkpoints in the legacy (version 0) layout: a header of 7 little-endian int32s
 * {@code dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len} (a negative
 * vocab_size means the classifier is stored separately rather than shared with the embedding), then
 * float32 weights in this order: token_embedding (vocab, dim), rms_att (layer, dim), wq (layer,
 * heads·hd, dim), wk (layer, kv·hd, dim), wv (layer, kv·hd, dim), wo (layer, dim, heads·hd),
 * rms_ffn (layer, dim), w1 (layer, hidden, dim), w2 (layer, dim, hidden), w3 (layer, hidden, dim),
 * rms_final (dim), freq_cis_real and freq_cis_imag (seq_len, hd/2, unused: RoPE is recomputed), and
 * wcls (vocab, dim) when not shared. RoPE rotates interleaved pairs; RMSNorm eps is 1e-5.
 */
public final class Llama2cLoader {

  private static final int HEADER_BYTES = 7 * Integer.BYTES;

  private Llama2cLoader() {}

  /** Config and weights of {@code file}, mapped into {@code arena}. */
  public static ConfigAndWeights load(Path file, Arena arena) {
    MemorySegment seg = MappedFile.map(file, arena);
    if (seg.byteSize() < HEADER_BYTES) {
      throw ModelFormatException.atOffset(
          file, seg.byteSize(), "truncated: a llama2.c header needs " + HEADER_BYTES + " bytes");
    }
    int[] h = new int[7];
    for (int i = 0; i < 7; i++) {
      h[i] = seg.get(ValueLayout.JAVA_INT_UNALIGNED, 4L * i);
    }
    String[] names = {
      "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"
    };
    for (int i = 0; i < 7; i++) {
      int v = i == 5 ? Math.abs(h[i]) : h[i];
      if (v <= 0 || v > (1 << 24)) {
        throw ModelFormatException.atOffset(
            file,
            4L * i,
            "header field " + names[i] + " = " + h[i] + " is not a plausible llama2.c value");
      }
    }
    boolean shared = h[5] > 0;
    int dim = h[0];
    int hidden = h[1];
    int layers = h[2];
    int heads = h[3];
    int kvHeads = h[4];
    int vocab = Math.abs(h[5]);
    int seqLen = h[6];
    if (dim % heads != 0 || heads % kvHeads != 0) {
      throw ModelFormatException.atOffset(
          file,
          0,
          "dim "
              + dim
              + ", n_heads "
              + heads
              + ", n_kv_heads "
              + kvHeads
              + " do not divide evenly");
    }
    int headDim = dim / heads;
    int kvDim = kvHeads * headDim;
    LlamaConfig config =
        new LlamaConfig(
            "llama",
            dim,
            hidden,
            layers,
            heads,
            kvHeads,
            headDim,
            vocab,
            seqLen,
            1e-5f,
            10000f,
            Rope.Layout.INTERLEAVED,
            null);

    Reader r = new Reader(file, seg, HEADER_BYTES);
    FloatTensor embedding = r.matrix(vocab, dim);
    float[][] attNorm = r.vectors(layers, dim);
    FloatTensor[] wq = r.matrices(layers, dim, dim);
    FloatTensor[] wk = r.matrices(layers, kvDim, dim);
    FloatTensor[] wv = r.matrices(layers, kvDim, dim);
    FloatTensor[] wo = r.matrices(layers, dim, dim);
    float[][] ffnNorm = r.vectors(layers, dim);
    FloatTensor[] w1 = r.matrices(layers, hidden, dim);
    FloatTensor[] w2 = r.matrices(layers, dim, hidden);
    FloatTensor[] w3 = r.matrices(layers, hidden, dim);
    float[] finalNorm = r.vectors(1, dim)[0];
    r.skipFloats(2L * seqLen * (headDim / 2));
    FloatTensor output = shared ? embedding : r.matrix(vocab, dim);
    List<LlamaWeights.Layer> blocks = new ArrayList<>(layers);
    for (int l = 0; l < layers; l++) {
      blocks.add(
          new LlamaWeights.Layer(
              attNorm[l],
              wq[l],
              wk[l],
              wv[l],
              wo[l],
              null,
              null,
              null,
              ffnNorm[l],
              w1[l],
              w3[l],
              w2[l]));
    }
    return new ConfigAndWeights(
        config, new LlamaWeights(embedding, blocks, finalNorm, output, null));
  }

  /** Sequential float32 reader with bounds checks that name the file and offset. */
  private static final class Reader {
    private final Path file;
    private final MemorySegment seg;
    private long offset;

    Reader(Path file, MemorySegment seg, long offset) {
      this.file = file;
      this.seg = seg;
      this.offset = offset;
    }

    private MemorySegment take(long floats) {
      long bytes = floats * Float.BYTES;
      if (offset + bytes > seg.byteSize()) {
        throw ModelFormatException.atOffset(
            file,
            offset,
            "truncated: weights need "
                + (offset + bytes)
                + " bytes but the file has "
                + seg.byteSize());
      }
      MemorySegment s = seg.asSlice(offset, bytes);
      offset += bytes;
      return s;
    }

    FloatTensor matrix(int rows, int cols) {
      return FloatTensor.of(GgmlType.F32, take((long) rows * cols), rows, cols);
    }

    FloatTensor[] matrices(int n, int rows, int cols) {
      FloatTensor[] out = new FloatTensor[n];
      for (int i = 0; i < n; i++) {
        out[i] = matrix(rows, cols);
      }
      return out;
    }

    float[][] vectors(int n, int len) {
      float[][] out = new float[n][];
      for (int i = 0; i < n; i++) {
        out[i] = take(len).toArray(ValueLayout.JAVA_FLOAT_UNALIGNED);
      }
      return out;
    }

    void skipFloats(long n) {
      take(n);
    }
  }
}
