package dev.longctx.worker.shard;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Partial;
import dev.longctx.engine.model.LlamaConfig;
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
  private final TransformerLayers layers;
  private final float scale;
  private final int capacity;
  private final float[][] keys;
  private final float[][] values;
  private final SelfExtend se;
  private final float[][] groupKeys;
  private final int[] slotPositions;
  private int slots;

  // The current step: owned tokens, their positions and slots, the residual stream.
  private int rows;
  private int[] stepPositions = new int[0];
  private int firstSlot;
  private int layer = -1;
  private TransformerLayers.Activations act;

  /**
   * @param policy the request's attention; only its positions matter here: plain, or SelfExtend's
   *     (whose keys are kept twice: at their positions and at the grouped ones, ALGORITHMS.md §2.4
   *     design 1). Sparse selection happens at the coordinator.
   */
  ShardState(TransformerLayers layers, int capacity, AttentionPolicy policy) {
    this.c = layers.config();
    this.layers = layers;
    this.scale = (float) (1.0 / Math.sqrt(c.headDim()));
    this.capacity = capacity;
    this.keys = new float[c.layers()][];
    this.values = new float[c.layers()][];
    this.se = policy.positions();
    this.groupKeys = se == null ? null : new float[c.layers()][];
    this.slotPositions = new int[capacity];
  }

  /**
   * A step's queries of one layer: rotated at their positions, and at SelfExtend's grouped ones.
   */
  record Queries(float[] plain, float[] grouped) {}

  /** The current step's keys of the layer last advanced, plain or SelfExtend-grouped. */
  float[] stepKeys(boolean grouped) {
    return Arrays.copyOf(grouped ? act.groupKeys() : act.keys(), rows * c.kvDim());
  }

  /** The current step's RMSNormed input of the layer last advanced. */
  float[] stepNormedInput() {
    return Arrays.copyOf(act.normedInput(), rows * c.dim());
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
  Queries advance(int l, int[] tokens, int[] positions, float[] attention) {
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
    int qn = rows * c.queryDim();
    return new Queries(
        Arrays.copyOf(act.queries(), qn),
        se == null ? null : Arrays.copyOf(act.groupQueries(), qn));
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
    act = layers.ensure(act, n);
    layers.embed(tokens, 0, n, act);
  }

  private void project(int l) {
    int n = rows;
    if (keys[l] == null) {
      keys[l] = new float[capacity * c.kvDim()];
      values[l] = new float[capacity * c.kvDim()];
      if (se != null) {
        groupKeys[l] = new float[capacity * c.kvDim()];
      }
    }
    if (n == 0) {
      return;
    }
    layers.project(l, act, n);
    int kvDim = c.kvDim();
    if (se != null) {
      layers.rotateSelfExtend(act, n, stepPositions, se);
      System.arraycopy(act.groupKeys(), 0, groupKeys[l], firstSlot * kvDim, n * kvDim);
    } else {
      layers.rotate(act, n, stepPositions);
    }
    System.arraycopy(act.keys(), 0, keys[l], firstSlot * kvDim, n * kvDim);
    System.arraycopy(act.values(), 0, values[l], firstSlot * kvDim, n * kvDim);
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
    layers.finish(l, attention, act, n);
  }

  /**
   * This shard's partial attention of {@code m} queries ([m, queryDim], RoPE applied) over its keys
   * of layer {@code l} at positions ≤ each query's: output [m, queryDim] and LSE [m, heads]. Under
   * SelfExtend, {@code groupQueries} are the same queries at their grouped positions: keys inside a
   * query's neighbor window are attended with the plain query and keys, farther keys with the
   * grouped ones, and the two parts merged by LSE — one softmax over the merged logit map
   * (ALGORITHMS.md §2.3), so the coordinator's merge of the shards' partials stays exact (§4.2).
   */
  void attend(
      int l, float[] queries, float[] groupQueries, int[] positions, float[] out, float[] lse) {
    attend(l, queries, groupQueries, positions, null, out, lse);
  }

  /**
   * {@link #attend(int, float[], float[], int[], float[], float[])} over selected keys only (sparse
   * methods, ALGORITHMS.md §4.5 step 4): {@code selected[i]} lists global positions (ascending)
   * chosen for query i — one list per query shared by all its heads, or one per query and KV head
   * ({@code m · kvHeads} lists); this shard attends over the ones it holds. A null list (or {@code
   * selected} null) means every visible key.
   */
  void attend(
      int l,
      float[] queries,
      float[] groupQueries,
      int[] positions,
      int[][] selected,
      float[] out,
      float[] lse) {
    int m = positions.length;
    int heads = c.heads();
    int kvHeads = c.kvHeads();
    if (selected != null && selected.length != m && selected.length != m * kvHeads) {
      throw new IllegalArgumentException(
          "selections must be one per query ("
              + m
              + ") or per query and KV head ("
              + m * kvHeads
              + "), got "
              + selected.length);
    }
    float[] kl = keys[l];
    if (kl == null) {
      Arrays.fill(out, 0f);
      Arrays.fill(lse, Float.NEGATIVE_INFINITY);
      return;
    }
    if (se != null && (groupQueries == null || groupQueries.length != queries.length)) {
      throw new IllegalArgumentException(
          "SelfExtend attention needs the grouped queries, as many as the queries ("
              + queries.length
              + " elements)");
    }
    int[] visible = new int[m];
    int[] grouped = new int[m];
    for (int i = 0; i < m; i++) {
      visible[i] = visibleSlots(positions[i]);
      // Slots before the query's neighbor window are attended at grouped positions.
      grouped[i] = se == null ? 0 : visibleSlots(se.neighborStart(positions[i]) - 1);
    }
    // Selected positions → this shard's slots (ascending), and how many are grouped (SelfExtend).
    int[][] slotsOf = selected == null ? null : new int[selected.length][];
    int[] groupedOf = selected == null ? null : new int[selected.length];
    for (int u = 0; selected != null && u < selected.length; u++) {
      if (selected[u] != null) {
        int t = selected.length == m ? u : u / kvHeads;
        int ns = se == null ? 0 : se.neighborStart(positions[t]);
        slotsOf[u] = localSlots(selected[u], positions[t]);
        int g = 0;
        while (g < slotsOf[u].length && slotPositions[slotsOf[u][g]] < ns) {
          g++;
        }
        groupedOf[u] = g;
      }
    }
    int group = c.groupSize();
    Parallel.forRange(
        m * heads,
        (from, to) -> {
          float[] parts = new float[2 * c.headDim()];
          float[] partLse = new float[2];
          for (int i = from; i < to; i++) {
            int t = i / heads;
            int h = i % heads;
            int u = selected == null ? -1 : selected.length == m ? t : t * kvHeads + h / group;
            lse[t * heads + h] =
                u < 0 || slotsOf[u] == null
                    ? attendHead(
                        l, h, queries, groupQueries, t, visible[t], grouped[t], out, parts, partLse)
                    : attendSelected(
                        l,
                        h,
                        queries,
                        groupQueries,
                        t,
                        slotsOf[u],
                        groupedOf[u],
                        out,
                        parts,
                        partLse);
          }
        });
  }

  /** The slots of {@code positions} (ascending) held here and visible at {@code limit}. */
  private int[] localSlots(int[] positions, int limit) {
    int[] out = new int[positions.length];
    int n = 0;
    int from = 0;
    for (int p : positions) {
      if (p > limit) {
        break;
      }
      int slot = Arrays.binarySearch(slotPositions, from, slots, p);
      if (slot >= 0) {
        out[n++] = slot;
        from = slot + 1;
      }
    }
    return Arrays.copyOf(out, n);
  }

  /** One head of query row {@code t} over the listed slots: the first {@code g} grouped. */
  private float attendSelected(
      int l,
      int h,
      float[] queries,
      float[] groupQueries,
      int t,
      int[] slotList,
      int g,
      float[] out,
      float[] parts,
      float[] partLse) {
    int headDim = c.headDim();
    int kvDim = c.kvDim();
    int base = (h / c.groupSize()) * headDim;
    int off = t * c.queryDim() + h * headDim;
    if (g == 0) {
      return Attention.attendPositions(
          queries,
          off,
          keys[l],
          values[l],
          base,
          kvDim,
          slotList,
          0,
          slotList.length,
          headDim,
          scale,
          out,
          off);
    }
    partLse[0] =
        Attention.attendPositions(
            groupQueries,
            off,
            groupKeys[l],
            values[l],
            base,
            kvDim,
            slotList,
            0,
            g,
            headDim,
            scale,
            parts,
            0);
    partLse[1] =
        Attention.attendPositions(
            queries,
            off,
            keys[l],
            values[l],
            base,
            kvDim,
            slotList,
            g,
            slotList.length - g,
            headDim,
            scale,
            parts,
            headDim);
    return Partial.merge(parts, partLse, 2, headDim, out, off);
  }

  /** One head of query row {@code t}: slots [0, g) grouped, [g, visible) plain; returns the LSE. */
  private float attendHead(
      int l,
      int h,
      float[] queries,
      float[] groupQueries,
      int t,
      int visible,
      int g,
      float[] out,
      float[] parts,
      float[] partLse) {
    int headDim = c.headDim();
    int kvDim = c.kvDim();
    int base = (h / c.groupSize()) * headDim;
    int off = t * c.queryDim() + h * headDim;
    if (g == 0) {
      return Attention.attend(
          queries, off, keys[l], values[l], base, kvDim, visible, headDim, scale, out, off);
    }
    partLse[0] =
        Attention.attend(
            groupQueries, off, groupKeys[l], values[l], base, kvDim, g, headDim, scale, parts, 0);
    partLse[1] =
        Attention.attend(
            queries,
            off,
            keys[l],
            values[l],
            base + g * kvDim,
            kvDim,
            visible - g,
            headDim,
            scale,
            parts,
            headDim);
    return Partial.merge(parts, partLse, 2, headDim, out, off);
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
   * Returns the last token's logits; without {@code logits} the last layer is left unfinished (its
   * KV is stored, nothing after it is needed) and an empty array is returned.
   */
  float[] forwardLocal(int[] tokens, int[] positions, boolean logits) {
    int qDim = c.queryDim();
    float[] attention = null;
    for (int l = 0; l < c.layers(); l++) {
      Queries q = advance(l, tokens, positions, attention);
      attention = new float[rows * qDim];
      attend(l, q.plain(), q.grouped(), stepPositions, attention, new float[rows * c.heads()]);
    }
    return logits ? logits(attention, new int[] {rows - 1}) : new float[0];
  }

  /** Finishes the last layer and returns the logits of the step rows {@code which}. */
  float[] logits(float[] attention, int[] which) {
    if (layer != c.layers() - 1) {
      throw new IllegalStateException(
          "logits need the last layer (" + (c.layers() - 1) + ") advanced, at layer " + layer);
    }
    finishLayer(layer, attention);
    layer = c.layers();
    for (int row : which) {
      if (row < 0 || row >= rows) {
        throw new IllegalArgumentException("row " + row + " is not a step row [0, " + rows + ")");
      }
    }
    float[] logits = new float[which.length * c.vocabSize()];
    layers.logits(act, which, logits);
    return logits;
  }
}
