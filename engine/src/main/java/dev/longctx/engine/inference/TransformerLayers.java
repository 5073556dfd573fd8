package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;

/**
 * The Llama-family layer arithmetic split at the attention, so that the same code serves a whole
 * forward pass in one process ({@link Transformer}) and a shard that only holds part of the KV
 * (DESIGN.md §4: a shard projects a layer's queries, the coordinator merges attention partials, the
 * shard finishes the layer with the merged output).
 *
 * <p>One step of {@code n} tokens runs: {@link #embed}, then per layer {@link #project} → RoPE
 * ({@link #rotate}) → attention (the caller's) → {@link #finish}; last {@link #logits}. The
 * activations live in an {@link Activations} the caller owns (one per sequence or per shard
 * request).
 */
public final class TransformerLayers {

  private final LlamaConfig config;
  private final LlamaWeights weights;
  private final Rope rope;

  public TransformerLayers(LlamaConfig config, LlamaWeights weights) {
    weights.checkShapes(config);
    this.config = config;
    this.weights = weights;
    this.rope = ropeOf(config, weights);
  }

  /** The rotation the model was trained with (GGUF stores Llama-3.1 scaling as divisors). */
  private static Rope ropeOf(LlamaConfig config, LlamaWeights weights) {
    return weights.ropeFreqFactors() != null
        ? Rope.withFreqFactors(
            config.headDim(), config.ropeTheta(), config.ropeLayout(), weights.ropeFreqFactors())
        : new Rope(config.headDim(), config.ropeTheta(), config.ropeLayout(), config.ropeScaling());
  }

  public LlamaConfig config() {
    return config;
  }

  public LlamaWeights weights() {
    return weights;
  }

  public Rope rope() {
    return rope;
  }

  /** Buffers for one step of up to {@code rows} tokens. */
  public Activations newActivations(int rows) {
    return new Activations(config, Math.max(rows, 1));
  }

  /** {@code a} if it holds {@code rows} tokens, else a larger one. */
  public Activations ensure(Activations a, int rows) {
    return a != null && a.capacity >= rows ? a : newActivations(rows);
  }

  /** Residual stream rows {@code [0, n)} ← embeddings of {@code tokens[off, off + n)}. */
  public void embed(int[] tokens, int off, int n, Activations a) {
    int dim = config.dim();
    for (int t = 0; t < n; t++) {
      int token = tokens[off + t];
      if (token < 0 || token >= config.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + token + " is outside the vocabulary [0, " + config.vocabSize() + ")");
      }
      weights.tokenEmbedding().dequantizeRow(token, a.x, t * dim);
    }
  }

  /**
   * Layer {@code l}'s attention input for rows {@code [0, n)}: RMSNorm, then the q, k, v
   * projections (with Qwen2's biases) into {@link Activations#queries()}, {@link
   * Activations#keys()}, {@link Activations#values()}, not yet rotated.
   */
  public void project(int l, Activations a, int n) {
    LlamaWeights.Layer w = weights.layers().get(l);
    rmsnormRows(a.xb, a.x, w.attnNorm(), n);
    w.wq().matmul(a.xb, a.q, n);
    w.wk().matmul(a.xb, a.k, n);
    w.wv().matmul(a.xb, a.v, n);
    if (w.bq() != null) {
      addBias(a.q, w.bq(), n);
      addBias(a.k, w.bk(), n);
      addBias(a.v, w.bv(), n);
    }
  }

  /** Rotates row {@code t}'s queries and keys to position {@code positions[t]}. */
  public void rotate(Activations a, int n, int[] positions) {
    for (int t = 0; t < n; t++) {
      rope.apply(a.q, t * config.queryDim(), config.heads(), positions[t]);
      rope.apply(a.k, t * config.kvDim(), config.kvHeads(), positions[t]);
    }
  }

  /**
   * SelfExtend's rotations (ALGORITHMS.md §2.4 design 1): keeps pre-RoPE copies of the projected
   * queries and keys in {@link Activations#groupQueries()} / {@link Activations#groupKeys()} and
   * rotates them at the grouped positions (query ⌊i/G⌋ + w − w/G, key ⌊j/G⌋ in the exact mode),
   * then rotates the plain ones at {@code positions} as {@link #rotate} does.
   */
  public void rotateSelfExtend(Activations a, int n, int[] positions, SelfExtend se) {
    int qDim = config.queryDim();
    int kvDim = config.kvDim();
    System.arraycopy(a.q, 0, a.qg, 0, n * qDim);
    System.arraycopy(a.k, 0, a.kg, 0, n * kvDim);
    for (int t = 0; t < n; t++) {
      rope.apply(a.qg, t * qDim, config.heads(), se.groupQueryPosition(positions[t]));
      rope.apply(a.kg, t * kvDim, config.kvHeads(), se.groupKeyPosition(positions[t]));
    }
    rotate(a, n, positions);
  }

  /**
   * Finishes layer {@code l} for rows {@code [0, n)} given their attention output {@code attention}
   * ([n, queryDim]): output projection, residual, RMSNorm, SwiGLU FFN, residual.
   */
  public void finish(int l, float[] attention, Activations a, int n) {
    LlamaWeights.Layer w = weights.layers().get(l);
    int dim = config.dim();
    w.wo().matmul(attention, a.xb, n);
    Ops.add(a.x, a.xb, n * dim);
    rmsnormRows(a.xb, a.x, w.ffnNorm(), n);
    w.wGate().matmul(a.xb, a.hb, n);
    w.wUp().matmul(a.xb, a.hb2, n);
    Ops.swiglu(a.hb, a.hb2, n * config.hiddenDim());
    w.wDown().matmul(a.hb, a.xb, n);
    Ops.add(a.x, a.xb, n * dim);
  }

  /**
   * The logits after the rows {@code rows} of the residual stream (final RMSNorm and the vocabulary
   * projection): {@code out[i·vocab ..]} for {@code rows[i]}.
   */
  public void logits(Activations a, int[] rows, float[] out) {
    int dim = config.dim();
    float[] normed = rows.length == 1 ? a.xb : new float[rows.length * dim];
    for (int i = 0; i < rows.length; i++) {
      if (rows[i] < 0 || rows[i] >= a.capacity) {
        throw new IllegalArgumentException(
            "row " + rows[i] + " is outside the step's rows [0, " + a.capacity + ")");
      }
      Ops.rmsnorm(normed, i * dim, a.x, rows[i] * dim, weights.outputNorm(), dim, config.rmsEps());
    }
    weights.output().matmul(normed, out, rows.length);
  }

  /** The logits after each of rows {@code [0, n)}. */
  void logitsAll(Activations a, int n, float[] out) {
    rmsnormRows(a.xb, a.x, weights.outputNorm(), n);
    weights.output().matmul(a.xb, out, n);
  }

  private void rmsnormRows(float[] out, float[] x, float[] weight, int n) {
    int dim = config.dim();
    for (int t = 0; t < n; t++) {
      Ops.rmsnorm(out, t * dim, x, t * dim, weight, dim, config.rmsEps());
    }
  }

  private static void addBias(float[] y, float[] bias, int n) {
    int width = bias.length;
    for (int t = 0; t < n; t++) {
      for (int i = 0; i < width; i++) {
        y[t * width + i] += bias[i];
      }
    }
  }

  /**
   * Activation buffers for a step of up to {@link #capacity()} tokens, row-major: the residual
   * stream, the projections, the attention output and the FFN hidden state. SelfExtend's
   * grouped-position copies of q and k sit beside the plain ones.
   */
  public static final class Activations {
    final int capacity;
    final float[] x;
    final float[] xb;
    final float[] q;
    final float[] qg;
    final float[] k;
    final float[] kg;
    final float[] v;
    final float[] att;
    final float[] hb;
    final float[] hb2;

    Activations(LlamaConfig c, int capacity) {
      this.capacity = capacity;
      x = new float[capacity * c.dim()];
      xb = new float[capacity * c.dim()];
      q = new float[capacity * c.queryDim()];
      qg = new float[capacity * c.queryDim()];
      k = new float[capacity * c.kvDim()];
      kg = new float[capacity * c.kvDim()];
      v = new float[capacity * c.kvDim()];
      att = new float[capacity * c.queryDim()];
      hb = new float[capacity * c.hiddenDim()];
      hb2 = new float[capacity * c.hiddenDim()];
    }

    /** Rows this buffer set holds. */
    public int capacity() {
      return capacity;
    }

    /** Queries [rows, queryDim] of the layer last projected. */
    public float[] queries() {
      return q;
    }

    /** Keys [rows, kvDim] of the layer last projected. */
    public float[] keys() {
      return k;
    }

    /** Values [rows, kvDim] of the layer last projected. */
    public float[] values() {
      return v;
    }

    /** Pre-RoPE copies of the queries, for rotation at other positions (SelfExtend). */
    public float[] groupQueries() {
      return qg;
    }

    /** Pre-RoPE copies of the keys, for rotation at other positions (SelfExtend). */
    public float[] groupKeys() {
      return kg;
    }

    /** The RMSNormed attention input of the layer last projected (what indexers read). */
    public float[] normedInput() {
      return xb;
    }

    /** A scratch [rows, queryDim] buffer for the attention output. */
    public float[] attention() {
      return att;
    }
  }
}
