package dev.longctx.worker.shard;

import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * One request's state on one shard: the KV of the sequence positions placed here (slots in
 * ascending global position), and the residual stream of the current step's owned tokens. The layer
 * arithmetic is the engine Transformer's, split at the attention: {@link #advance} finishes the
 * previous layer with the merged attention output and projects the next; {@link #attend} gives this
 * shard's partial attention (output, LSE) for any queries.
 */
final class ShardState {

  private final LlamaConfig c;
  private final LlamaWeights weights;
  private final Rope rope;
  private final float scale;
  private final int capacity;
  private final float[][] keys;
  private final float[][] values;
  private final int[] slotPositions;
  private int slots;

  // The current step: owned tokens, their positions and slots, the residual stream.
  private int rows;
  private int[] stepPositions = new int[0];
  private int firstSlot;
  private int layer = -1;
  private float[] x = new float[0];
  private float[] xb = new float[0];
  private float[] q = new float[0];
  private float[] k = new float[0];
  private float[] v = new float[0];
  private float[] hb = new float[0];
  private float[] hb2 = new float[0];

  ShardState(LlamaConfig c, LlamaWeights weights, Rope rope, int capacity) {
    this.c = c;
    this.weights = weights;
    this.rope = rope;
    this.scale = (float) (1.0 / Math.sqrt(c.headDim()));
    this.capacity = capacity;
    this.keys = new float[c.layers()][];
    this.values = new float[c.layers()][];
    this.slotPositions = new int[capacity];
  }

  int slots() {
    return slots;
  }

  int capacity() {
    return capacity;
  }

  int layer() {
    return layer;
  }

  /**
   * Layer 0: starts a step with {@code tokens} at {@code positions} (ascending, after every held
   * position). Layer l > 0: finishes layer l-1 with {@code attention} ([rows, queryDim]). Then
   * projects layer {@code l}, stores the rows' k and v, and returns their queries [rows, queryDim].
   */
  float[] advance(int l, int[] tokens, int[] positions, float[] attention) {
    if (l == 0) {
      startStep(tokens, positions);
    } else {
      if (l != layer + 1) {
        throw new IllegalStateException("advance to layer " + l + " after layer " + layer);
      }
      finishLayer(layer, attention);
    }
    project(l);
    layer = l;
    return Arrays.copyOf(q, rows * c.queryDim());
  }

  private void startStep(int[] tokens, int[] positions) {
    if (tokens.length != positions.length) {
      throw new IllegalArgumentException(
          tokens.length + " tokens but " + positions.length + " positions");
    }
    int n = tokens.length;
    if (slots + n > capacity) {
      throw new IllegalStateException(
          "the request's KV here would exceed its reserved " + capacity + " positions");
    }
    int last = slots == 0 ? -1 : slotPositions[slots - 1];
    for (int i = 0; i < n; i++) {
      if (positions[i] <= last) {
        throw new IllegalArgumentException(
            "positions must ascend past the held ones: " + positions[i] + " after " + last);
      }
      last = positions[i];
      if (tokens[i] < 0 || tokens[i] >= c.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + tokens[i] + " is outside the vocabulary [0, " + c.vocabSize() + ")");
      }
    }
    rows = n;
    stepPositions = positions.clone();
    firstSlot = slots;
    System.arraycopy(positions, 0, slotPositions, slots, n);
    slots += n;
    ensureScratch(n);
    for (int t = 0; t < n; t++) {
      weights.tokenEmbedding().dequantizeRow(tokens[t], x, t * c.dim());
    }
  }

  private void ensureScratch(int n) {
    int need = Math.max(n, 1);
    if (x.length < need * c.dim()) {
      x = new float[need * c.dim()];
      xb = new float[need * c.dim()];
      q = new float[need * c.queryDim()];
      k = new float[need * c.kvDim()];
      v = new float[need * c.kvDim()];
      hb = new float[need * c.hiddenDim()];
      hb2 = new float[need * c.hiddenDim()];
    }
  }

  private void project(int l) {
    LlamaWeights.Layer w = weights.layers().get(l);
    int n = rows;
    if (keys[l] == null) {
      keys[l] = new float[capacity * c.kvDim()];
      values[l] = new float[capacity * c.kvDim()];
    }
    if (n == 0) {
      return;
    }
    for (int t = 0; t < n; t++) {
      Ops.rmsnorm(xb, t * c.dim(), x, t * c.dim(), w.attnNorm(), c.dim(), c.rmsEps());
    }
    w.wq().matmul(xb, q, n);
    w.wk().matmul(xb, k, n);
    w.wv().matmul(xb, v, n);
    if (w.bq() != null) {
      addBias(q, w.bq(), n);
      addBias(k, w.bk(), n);
      addBias(v, w.bv(), n);
    }
    int kvDim = c.kvDim();
    for (int t = 0; t < n; t++) {
      rope.apply(q, t * c.queryDim(), c.heads(), stepPositions[t]);
      rope.apply(k, t * kvDim, c.kvHeads(), stepPositions[t]);
      System.arraycopy(k, t * kvDim, keys[l], (firstSlot + t) * kvDim, kvDim);
      System.arraycopy(v, t * kvDim, values[l], (firstSlot + t) * kvDim, kvDim);
    }
  }

  /** Output projection, residual and SwiGLU FFN of layer {@code l} for the step's rows. */
  private void finishLayer(int l, float[] attention) {
    int n = rows;
    if (n == 0) {
      return;
    }
    if (attention == null || attention.length != n * c.queryDim()) {
      throw new IllegalArgumentException(
          "attention output must be ["
              + n
              + ", "
              + c.queryDim()
              + "], got "
              + (attention == null ? "none" : attention.length + " elements"));
    }
    LlamaWeights.Layer w = weights.layers().get(l);
    int dim = c.dim();
    w.wo().matmul(attention, xb, n);
    Ops.add(x, xb, n * dim);
    for (int t = 0; t < n; t++) {
      Ops.rmsnorm(xb, t * dim, x, t * dim, w.ffnNorm(), dim, c.rmsEps());
    }
    w.wGate().matmul(xb, hb, n);
    w.wUp().matmul(xb, hb2, n);
    Ops.swiglu(hb, hb2, n * c.hiddenDim());
    w.wDown().matmul(hb, xb, n);
    Ops.add(x, xb, n * dim);
  }

  /**
   * This shard's partial attention of {@code m} queries ([m, queryDim], RoPE applied) over its keys
   * of layer {@code l} at positions ≤ each query's: output [m, queryDim] and LSE [m, heads].
   */
  void attend(int l, float[] queries, int[] positions, float[] out, float[] lse) {
    int m = positions.length;
    int heads = c.heads();
    int headDim = c.headDim();
    int kvDim = c.kvDim();
    int group = c.groupSize();
    float[] kl = keys[l];
    float[] vl = values[l];
    if (kl == null) {
      Arrays.fill(out, 0f);
      Arrays.fill(lse, Float.NEGATIVE_INFINITY);
      return;
    }
    int[] visible = new int[m];
    for (int i = 0; i < m; i++) {
      visible[i] = visibleSlots(positions[i]);
    }
    Parallel.forRange(
        m * heads,
        (from, to) -> {
          for (int i = from; i < to; i++) {
            int t = i / heads;
            int h = i % heads;
            int off = t * c.queryDim() + h * headDim;
            lse[t * heads + h] =
                Attention.attend(
                    queries,
                    off,
                    kl,
                    vl,
                    (h / group) * headDim,
                    kvDim,
                    visible[t],
                    headDim,
                    scale,
                    out,
                    off);
          }
        });
  }

  /** Slots whose position is ≤ {@code position} (slots ascend, so they are a prefix). */
  private int visibleSlots(int position) {
    int lo = 0;
    int hi = slots;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (slotPositions[mid] <= position) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /**
   * A whole step when this shard holds all of the request's KV: every layer's attention is local.
   * Returns the last token's logits.
   */
  float[] forwardLocal(int[] tokens, int[] positions) {
    int qDim = c.queryDim();
    float[] attention = null;
    for (int l = 0; l < c.layers(); l++) {
      float[] queries = advance(l, tokens, positions, attention);
      attention = new float[rows * qDim];
      attend(l, queries, stepPositions, attention, new float[rows * c.heads()]);
    }
    return logits(attention, new int[] {rows - 1});
  }

  /** Finishes the last layer and returns the logits of the step rows {@code which}. */
  float[] logits(float[] attention, int[] which) {
    if (layer != c.layers() - 1) {
      throw new IllegalStateException(
          "logits need the last layer (" + (c.layers() - 1) + ") advanced, at layer " + layer);
    }
    finishLayer(layer, attention);
    layer = c.layers();
    int dim = c.dim();
    float[] normed = new float[which.length * dim];
    for (int i = 0; i < which.length; i++) {
      if (which[i] < 0 || which[i] >= rows) {
        throw new IllegalArgumentException(
            "row " + which[i] + " is not a step row [0, " + rows + ")");
      }
      Ops.rmsnorm(normed, i * dim, x, which[i] * dim, weights.outputNorm(), dim, c.rmsEps());
    }
    float[] logits = new float[which.length * c.vocabSize()];
    weights.output().matmul(normed, logits, which.length);
    return logits;
  }

  private static void addBias(float[] y, float[] bias, int n) {
    int width = bias.length;
    for (int t = 0; t < n; t++) {
      for (int i = 0; i < width; i++) {
        y[t * width + i] += bias[i];
      }
    }
  }
}
