package dev.longctx.engine.attention;

import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.gguf.GgufWriter;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.List;

/**
 * A DSA lightning indexer for a Llama-family (non-MLA) model, in fp32 (ALGORITHMS.md §1.2 and the
 * §5.3 architecture): per layer, from the normalized attention input x,
 *
 * <pre>
 *   q_{t,j} = RoPE_[0,d_r)((W_q x_t)_j)            j = 0..H_I−1, rotate-half layout (§1.2 step 4)
 *   k_s     = RoPE_[0,d_r)(LayerNorm(W_k x_s))     one key per token, shared by all indexer heads
 *   w_t     = W_w x_t
 *   I(t,s)  = (H_I·d_I)^-½ · Σ_j w_{t,j} · ReLU(q_{t,j}·k_s)
 * </pre>
 *
 * with d_r = d_I/2 and the model's RoPE base. The FP8 quantization and Hadamard rotation of §1.2
 * steps 5–6 are inference-time bandwidth devices; this fp32 form equals their dequantized score
 * (§1.9 test 5), so they are left out.
 *
 * <p>GGUF tensor names accepted per layer N (either family; the first found wins):
 *
 * <ul>
 *   <li>{@code blk.N.indexer.attn_q_b.weight}, {@code .attn_k.weight}, {@code .k_norm.weight},
 *       {@code .k_norm.bias}, {@code .proj.weight} (llama.cpp's DeepSeek-V3.2 converter names);
 *   <li>{@code blk.N.attn_indexer.wq_b.weight}, {@code .wk.weight}, {@code .k_norm.weight}, {@code
 *       .k_norm.bias}, {@code .weights_proj.weight} (the DeepSeek checkpoint names).
 * </ul>
 *
 * The query projection must take the model width as input (x_t): an MLA model's wq_b takes the
 * query latent c^Q, which a Llama forward pass does not produce.
 */
public final class LightningIndexer {

  /**
   * One layer's indexer.
   *
   * @param wq (heads·headDim, dim)
   * @param wk (headDim, dim)
   * @param kNormWeight (headDim) LayerNorm γ
   * @param kNormBias (headDim) LayerNorm β, or null for none
   * @param weightsProj (heads, dim)
   */
  public record Layer(
      FloatTensor wq,
      FloatTensor wk,
      float[] kNormWeight,
      float[] kNormBias,
      FloatTensor weightsProj) {}

  /** ε of the key LayerNorm: x̂ = (z − μ)/√(var + ε). */
  public static final double LAYER_NORM_EPS = 1e-6;

  private final List<Layer> layers;
  private final int heads;
  private final int headDim;
  private final int dim;
  private final Rope rope;
  private final float scale;

  public LightningIndexer(List<Layer> layers, float ropeTheta) {
    if (layers.isEmpty()) {
      throw new IllegalArgumentException("an indexer needs at least one layer");
    }
    Layer first = layers.getFirst();
    this.headDim = first.wk().rows();
    this.dim = first.wk().cols();
    this.heads = first.weightsProj().rows();
    if (headDim % 4 != 0) {
      throw new IllegalArgumentException(
          "indexer head dim must be a multiple of 4, got " + headDim);
    }
    for (int l = 0; l < layers.size(); l++) {
      Layer y = layers.get(l);
      check(l, "wq", y.wq(), heads * headDim, dim);
      check(l, "wk", y.wk(), headDim, dim);
      check(l, "weights_proj", y.weightsProj(), heads, dim);
      if (y.kNormWeight().length != headDim
          || (y.kNormBias() != null && y.kNormBias().length != headDim)) {
        throw new IllegalArgumentException(
            "indexer layer " + l + ": k_norm must have " + headDim + " entries");
      }
    }
    this.layers = List.copyOf(layers);
    this.rope = rope(headDim, ropeTheta);
    this.scale = (float) (1.0 / Math.sqrt((double) heads * headDim));
  }

  /**
   * The indexer's RoPE for heads of {@code headDim}: the first d_r = headDim/2 dimensions in the
   * rotate-half layout, frequencies θ^(−2i/d_r) of the model's base θ (§1.2 step 4).
   */
  public static Rope rope(int headDim, float ropeTheta) {
    return new Rope(headDim / 2, ropeTheta, Rope.Layout.ROTATE_HALF, null);
  }

  private static void check(int l, String name, FloatTensor t, int rows, int cols) {
    if (t.rows() != rows || t.cols() != cols) {
      throw new IllegalArgumentException(
          "indexer layer "
              + l
              + ": "
              + name
              + " is ("
              + t.rows()
              + ", "
              + t.cols()
              + "), expected ("
              + rows
              + ", "
              + cols
              + ")");
    }
  }

  /** Whether {@code gguf} carries indexer tensors (for layer 0) under an accepted name. */
  public static boolean present(GgufFile gguf) {
    return gguf.hasTensor("blk.0.indexer.attn_k.weight")
        || gguf.hasTensor("blk.0.attn_indexer.wk.weight");
  }

  /** Reads the indexer of every layer; fails naming the first missing tensor. */
  public static LightningIndexer fromGguf(GgufFile gguf, int layerCount, float ropeTheta) {
    List<Layer> layers = new ArrayList<>(layerCount);
    boolean cpp = gguf.hasTensor("blk.0.indexer.attn_k.weight");
    for (int l = 0; l < layerCount; l++) {
      String p = cpp ? "blk." + l + ".indexer." : "blk." + l + ".attn_indexer.";
      String bias = p + "k_norm.bias";
      layers.add(
          new Layer(
              require(gguf, p + (cpp ? "attn_q_b.weight" : "wq_b.weight")),
              require(gguf, p + (cpp ? "attn_k.weight" : "wk.weight")),
              vector(require(gguf, p + "k_norm.weight")),
              gguf.hasTensor(bias) ? vector(gguf.floatTensor(bias)) : null,
              require(gguf, p + (cpp ? "proj.weight" : "weights_proj.weight"))));
    }
    return new LightningIndexer(layers, ropeTheta);
  }

  private static FloatTensor require(GgufFile gguf, String name) {
    if (!gguf.hasTensor(name)) {
      throw new IllegalArgumentException(gguf.path() + ": indexer tensor " + name + " is missing");
    }
    return gguf.floatTensor(name);
  }

  private static float[] vector(FloatTensor t) {
    float[] out = new float[t.rows() * t.cols()];
    for (int r = 0; r < t.rows(); r++) {
      t.dequantizeRow(r, out, r * t.cols());
    }
    return out;
  }

  /**
   * Adds every layer's tensors to {@code w} in float32 under llama.cpp's names ({@code
   * blk.N.indexer.attn_q_b.weight}, {@code .attn_k.weight}, {@code .k_norm.weight}, {@code
   * .k_norm.bias}, {@code .proj.weight}), which {@link #fromGguf} reads back.
   */
  public void addTensors(GgufWriter w) {
    for (int l = 0; l < layers.size(); l++) {
      Layer y = layers.get(l);
      String p = "blk." + l + ".indexer.";
      addMatrix(w, p + "attn_q_b.weight", y.wq());
      addMatrix(w, p + "attn_k.weight", y.wk());
      w.addTensor(p + "k_norm.weight", new long[] {headDim}, y.kNormWeight());
      if (y.kNormBias() != null) {
        w.addTensor(p + "k_norm.bias", new long[] {headDim}, y.kNormBias());
      }
      addMatrix(w, p + "proj.weight", y.weightsProj());
    }
  }

  private static void addMatrix(GgufWriter w, String name, FloatTensor t) {
    float[] values = new float[t.rows() * t.cols()];
    for (int r = 0; r < t.rows(); r++) {
      t.dequantizeRow(r, values, r * t.cols());
    }
    w.addTensor(name, new long[] {t.cols(), t.rows()}, values);
  }

  public int layers() {
    return layers.size();
  }

  public int heads() {
    return heads;
  }

  public int headDim() {
    return headDim;
  }

  /** Input width (the model's dim). */
  public int dim() {
    return dim;
  }

  /** Layer {@code l}'s weights. */
  public Layer layer(int l) {
    return layers.get(l);
  }

  /** The score scale (H_I·d_I)^-½. */
  public float scale() {
    return scale;
  }

  /** Dimensions RoPE rotates at the front of each query head and key: d_r = d_I/2. */
  public int ropeDims() {
    return headDim / 2;
  }

  /** RoPE's inverse frequency i (i < d_r/2) of the rotated dimensions. */
  public double ropeFrequency(int i) {
    return rope.frequency(i);
  }

  /** Bytes of indexer key cache per token and layer (fp32). */
  public long keyBytesPerToken() {
    return (long) headDim * Float.BYTES;
  }

  /**
   * Indexer key of each of {@code n} tokens ({@code x} rows of width dim at positions {@code
   * start..}) into {@code keys[pos · headDim ..]}.
   */
  public void keys(int layer, float[] x, int n, int start, float[] keys) {
    keys(layer, x, n, consecutive(start, n), keys, start);
  }

  /**
   * Indexer key of each of {@code n} tokens ({@code x} rows of width dim, RoPE at {@code
   * positions[t]}) into rows {@code firstRow + t} of {@code keys} (a shard's slots: its positions
   * need not be consecutive).
   */
  public void keys(int layer, float[] x, int n, int[] positions, float[] keys, int firstRow) {
    Layer y = layers.get(layer);
    float[] k = new float[n * headDim];
    y.wk().matmul(x, k, n);
    for (int t = 0; t < n; t++) {
      layerNorm(k, t * headDim, y.kNormWeight(), y.kNormBias());
      rope.apply(k, t * headDim, 1, positions[t]);
    }
    System.arraycopy(k, 0, keys, firstRow * headDim, n * headDim);
  }

  /**
   * Per-token query state for {@code n} tokens: {@code q[t·heads·headDim ..]} (RoPE'd at {@code
   * start + t}) and head weights {@code w[t·heads ..]}.
   */
  public void queries(int layer, float[] x, int n, int start, float[] q, float[] w) {
    queries(layer, x, n, consecutive(start, n), q, w);
  }

  /** {@link #queries(int, float[], int, int, float[], float[])} with RoPE at {@code positions}. */
  public void queries(int layer, float[] x, int n, int[] positions, float[] q, float[] w) {
    Layer y = layers.get(layer);
    y.wq().matmul(x, q, n);
    y.weightsProj().matmul(x, w, n);
    for (int t = 0; t < n; t++) {
      for (int j = 0; j < heads; j++) {
        rope.apply(q, (t * heads + j) * headDim, 1, positions[t]);
      }
    }
  }

  private static int[] consecutive(int start, int n) {
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      positions[t] = start + t;
    }
    return positions;
  }

  /**
   * {@code scores[s] = I(t,s)} for keys {@code s < len} (ALGORITHMS.md §1.2 step 9): ReLU before
   * weighting, weights may be negative, no softmax.
   */
  public void score(
      float[] q, int qOffset, float[] w, int wOffset, float[] keys, int len, float[] scores) {
    for (int s = 0; s < len; s++) {
      double sum = 0;
      int k = s * headDim;
      for (int j = 0; j < heads; j++) {
        float u = Ops.dot(q, qOffset + j * headDim, keys, k, headDim);
        if (u > 0) {
          sum += w[wOffset + j] * u;
        }
      }
      scores[s] = (float) (sum * scale);
    }
  }

  private static void layerNorm(float[] x, int off, float[] gamma, float[] beta) {
    int n = gamma.length;
    double mean = 0;
    for (int i = 0; i < n; i++) {
      mean += x[off + i];
    }
    mean /= n;
    double var = 0;
    for (int i = 0; i < n; i++) {
      double d = x[off + i] - mean;
      var += d * d;
    }
    double inv = 1.0 / Math.sqrt(var / n + LAYER_NORM_EPS);
    for (int i = 0; i < n; i++) {
      double y = (x[off + i] - mean) * inv * gamma[i];
      x[off + i] = (float) (beta == null ? y : y + beta[i]);
    }
  }
}
