package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * One request's state on one shard (DESIGN.md §4): the KV of the sequence positions placed here
 * (slots in ascending global position), and the residual stream of the current step's owned tokens.
 * The layer arithmetic is the engine's, split at the attention: {@link #advance} finishes the
 * previous layer with the merged attention output and projects the next; {@link #attend} gives this
 * shard's partial attention (output, LSE) for any queries, which the coordinator merges by the LSE
 * rule (ALGORITHMS.md §4.2) into single-device attention.
 *
 * <p>This class keeps the bookkeeping every backend shares (slots, step rows, layer order, which
 * slots a query sees, the checks and their messages); a backend ({@link CpuKvRange}, the CUDA one)
 * supplies the arithmetic. Calls for one request are serialised by the caller.
 */
public abstract class KvRange implements AutoCloseable {

  protected final LlamaConfig config;
  private final int capacity;

  /** SelfExtend's positions, or null: its keys are also kept at the grouped positions. */
  protected final SelfExtend selfExtend;

  /** The request's attention method. */
  protected final AttentionPolicy policy;

  /** A sparse request's selector when it is stepped by {@link #forwardLocal} (else null). */
  private SequenceAttention localSelector;

  /** Whether a sparse request is stepped by {@link #forwardLocal}, its keys selected here. */
  private boolean selectingInForward;

  private final int[] slotPositions;
  private int slots;

  // The current step: owned tokens, their positions and slots.
  private int rows;
  private int[] stepPositions = new int[0];
  private int firstSlot;
  private int layer = -1;

  /** Layers whose keys exist here (projected at least once, perhaps in an earlier step). */
  private int layersWithKeys;

  /**
   * The request's model-file lightning indexer (ALGORITHMS.md §1.2), or null: a range of a request
   * spread over several shards keeps the indexer keys of its own slots and scores queries against
   * them ({@link #indexStep}, {@link #score}), so no one holds every key (§4.5).
   */
  private final LightningIndexer indexer;

  /** Per layer, the indexer keys of slots [0, indexed[l]), slot-major (allocated on first use). */
  private float[][] indexKeys;

  private int[] indexed;

  /** A summary round's local lists, kept for the threshold round that follows (or null). */
  private TopK.Candidates[] kept;

  private int keptLayer;

  /**
   * @param policy the request's attention; only its positions matter here: plain, or SelfExtend's
   *     (whose keys are kept twice: at their positions and at the grouped ones, ALGORITHMS.md §2.4
   *     design 1). Sparse selection happens at the coordinator, or in {@link #forwardLocal} of a
   *     range that {@link #selectsInForward}.
   */
  protected KvRange(LlamaConfig config, int capacity, AttentionPolicy policy) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("capacity must be > 0 positions, got " + capacity);
    }
    this.config = config;
    this.capacity = capacity;
    this.selfExtend = policy.positions();
    this.policy = policy;
    this.slotPositions = new int[capacity];
    this.indexer = policy.lightningIndexer();
  }

  /**
   * A step's queries of one layer: rotated at their positions, and at SelfExtend's grouped ones.
   */
  public record Queries(float[] plain, float[] grouped) {}

  /** KV positions filled. */
  public final int slots() {
    return slots;
  }

  /** KV positions reserved. */
  public final int capacity() {
    return capacity;
  }

  /** The layer last advanced (−1 before the first step; layers() after the logits). */
  public final int layer() {
    return layer;
  }

  /** Rows of the current step. */
  protected final int rows() {
    return rows;
  }

  /** Positions of the current step's rows. */
  protected final int[] stepPositions() {
    return stepPositions;
  }

  /** The slot of the current step's first row. */
  protected final int firstSlot() {
    return firstSlot;
  }

  /** Global position of slot {@code s}. */
  protected final int slotPosition(int s) {
    return slotPositions[s];
  }

  /** The current step's keys of the layer last advanced, plain or SelfExtend-grouped. */
  public abstract float[] stepKeys(boolean grouped);

  /** The current step's RMSNormed input of the layer last advanced. */
  public abstract float[] stepNormedInput();

  /**
   * Layer 0: starts a step with {@code tokens} at {@code positions} (ascending, after every held
   * position). Layer l > 0: finishes layer l-1 with {@code attention} ([rows, queryDim]). Then
   * projects layer {@code l}, stores the rows' k and v, and returns their queries [rows, queryDim].
   */
  public final Queries advance(int l, int[] tokens, int[] positions, float[] attention) {
    if (l == 0) {
      startStep(tokens, positions);
    } else {
      if (l != layer + 1) {
        throw new IllegalStateException("advance to layer " + l + " after layer " + layer);
      }
      finishChecked(layer, attention);
    }
    project(l);
    layer = l;
    layersWithKeys = Math.max(layersWithKeys, l + 1);
    return new Queries(queries(false), selfExtend == null ? null : queries(true));
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
      if (tokens[i] < 0 || tokens[i] >= config.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + tokens[i] + " is outside the vocabulary [0, " + config.vocabSize() + ")");
      }
    }
    rows = n;
    stepPositions = positions.clone();
    firstSlot = slots;
    System.arraycopy(positions, 0, slotPositions, slots, n);
    slots += n;
    embed(tokens);
  }

  /** Starts the step: the residual stream of the {@link #rows()} tokens ← their embeddings. */
  protected abstract void embed(int[] tokens);

  /**
   * Layer {@code l} of the step's rows: RMSNorm, q/k/v projections, RoPE at {@link
   * #stepPositions()} (and SelfExtend's grouped positions), k and v stored at slots {@link
   * #firstSlot()}… Called with 0 rows too (a shard with no tokens in the step), where only the
   * layer's storage may need to exist.
   */
  protected abstract void project(int l);

  /** The step's queries of the layer last projected, [rows, queryDim], plain or grouped. */
  protected abstract float[] queries(boolean grouped);

  /** Output projection, residual and SwiGLU FFN of layer {@code l} for the step's rows. */
  protected abstract void finish(int l, float[] attention);

  /** The logits of the step rows {@code which} after the last layer is finished. */
  protected abstract float[] rowLogits(int[] which);

  private void finishChecked(int l, float[] attention) {
    int n = rows;
    if (n == 0) {
      return;
    }
    if (attention == null || attention.length != n * config.queryDim()) {
      throw new IllegalArgumentException(
          "attention output must be ["
              + n
              + ", "
              + config.queryDim()
              + "], got "
              + (attention == null ? "none" : attention.length + " elements"));
    }
    finish(l, attention);
  }

  /** Whether this range can index and score its keys (a model-file lightning indexer's request). */
  public final boolean indexes() {
    return indexer != null;
  }

  /** A step's indexer queries [rows, indexHeads · indexDim] and head weights [rows, indexHeads]. */
  public record IndexQueries(float[] queries, float[] weights) {}

  /**
   * The shard's half of the distributed top-k (ALGORITHMS.md §4.5) for the layer last advanced:
   * stores the step rows' lightning-indexer keys beside this range's KV (from the layer's
   * normalized input, RoPE at the rows' positions) and returns the rows' indexer queries and head
   * weights, which the coordinator sends every shard of the request for {@link #score}. Every step
   * of a request scored by its shards must be indexed, layer by layer, so that each slot's key
   * exists.
   */
  public final IndexQueries indexStep() {
    if (indexer == null) {
      throw new IllegalStateException(
          policy.name() + " has no model-file lightning indexer here: nothing to index");
    }
    if (layer < 0 || layer >= config.layers()) {
      throw new IllegalStateException("index a step once advanced to a layer, at layer " + layer);
    }
    if (indexKeys == null) {
      indexKeys = new float[config.layers()][];
      indexed = new int[config.layers()];
    }
    if (indexed[layer] != firstSlot) {
      throw new IllegalStateException(
          "layer "
              + layer
              + "'s indexer keys cover "
              + indexed[layer]
              + " of the "
              + firstSlot
              + " positions held before this step: every step of a request scored by its shards"
              + " must be indexed");
    }
    IndexQueries out =
        rows > 0 ? indexRows(layer, indexer) : new IndexQueries(new float[0], new float[0]);
    indexed[layer] = firstSlot + rows;
    return out;
  }

  /**
   * {@link #indexStep}'s arithmetic for the {@link #rows()} > 0 of the step, layer {@code l}:
   * stores the rows' indexer keys at slots {@link #firstSlot()}… and returns their indexer queries
   * and head weights. This default runs on the host from {@link #stepNormedInput}; a backend may
   * keep the keys where its attention runs.
   */
  protected IndexQueries indexRows(int l, LightningIndexer indexer) {
    int dim = indexer.headDim();
    float[] q = new float[rows * indexer.heads() * dim];
    float[] w = new float[rows * indexer.heads()];
    float[] x = stepNormedInput();
    if (indexKeys[l] == null) {
      indexKeys[l] = new float[capacity * dim];
    }
    indexer.keys(l, x, rows, stepPositions, indexKeys[l], firstSlot);
    indexer.queries(l, x, rows, stepPositions, q, w);
    return new IndexQueries(q, w);
  }

  /**
   * The shard's local top-k (ALGORITHMS.md §4.5 step 1) of each of {@code m} indexer queries over
   * its keys of layer {@code l} visible to the query (position ≤ {@code positions[i]}): the
   * top-min(k, visible) under ≻ (score desc, global position asc), best first, with global
   * positions, from the full k (not k/P) so that the coordinator's merge of every shard's lists is
   * the single-device top-k. {@code queries} [m, indexHeads · indexDim] and {@code weights} [m,
   * indexHeads] are what {@link #indexStep} returned on the shards owning the queries.
   */
  public final TopK.Candidates[] score(
      int l, float[] queries, float[] weights, int[] positions, int k) {
    if (indexer == null) {
      throw new IllegalStateException(
          policy.name() + " has no model-file lightning indexer here: nothing to score with");
    }
    if (l < 0 || l >= config.layers()) {
      throw new IllegalArgumentException("layer " + l + " is outside [0, " + config.layers() + ")");
    }
    if (k < 1) {
      throw new IllegalArgumentException("top_k must be >= 1, got " + k);
    }
    int m = positions.length;
    int heads = indexer.heads();
    int dim = indexer.headDim();
    if (queries.length != m * heads * dim || weights.length != m * heads) {
      throw new IllegalArgumentException(
          "indexer queries must be ["
              + m
              + ", "
              + heads * dim
              + "] and weights ["
              + m
              + ", "
              + heads
              + "], got "
              + queries.length
              + " and "
              + weights.length
              + " elements");
    }
    int held = indexed == null ? 0 : indexed[l];
    if (held != slots) {
      throw new IllegalStateException(
          "layer "
              + l
              + "'s indexer keys cover "
              + held
              + " of the "
              + slots
              + " positions held: every step of a request scored by its shards must be indexed");
    }
    int[] visible = new int[m];
    for (int i = 0; i < m; i++) {
      visible[i] = visibleSlots(positions[i]);
    }
    return scoreSlots(l, indexer, queries, weights, visible, k);
  }

  /**
   * Keeps the local lists {@link #score} gave for layer {@code l}, for {@link #keptAbove} (the
   * threshold exchange of ALGORITHMS.md §4.5: the coordinator first sees only their summaries).
   */
  public final void keep(int l, TopK.Candidates[] lists) {
    kept = lists;
    keptLayer = l;
  }

  /**
   * The kept lists' entries scoring ≥ each query's threshold, best first; then forgets the lists.
   */
  public final TopK.Candidates[] keptAbove(int l, float[] thresholds) {
    if (kept == null || keptLayer != l) {
      throw new IllegalStateException(
          "no local lists of layer " + l + " are kept: a threshold round follows a summary round");
    }
    if (thresholds.length != kept.length) {
      throw new IllegalArgumentException(
          "the summary round had "
              + kept.length
              + " queries, the threshold round "
              + thresholds.length);
    }
    TopK.Candidates[] out = new TopK.Candidates[kept.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = TopK.above(kept[i], thresholds[i]);
    }
    kept = null;
    return out;
  }

  /**
   * {@link #score}'s arithmetic: per query i, the top-min(k, visible[i]) of slots [0, visible[i])
   * of layer {@code l} under ≻, best first, at their global positions. This default runs on the
   * host over {@link #hostIndexKeys}.
   */
  protected TopK.Candidates[] scoreSlots(
      int l, LightningIndexer indexer, float[] queries, float[] weights, int[] visible, int k) {
    int m = visible.length;
    int heads = indexer.heads();
    int dim = indexer.headDim();
    TopK.Candidates[] out = new TopK.Candidates[m];
    float[] keys = slots == 0 ? null : hostIndexKeys(l);
    Parallel.forRange(
        m,
        (from, to) -> {
          float[] scores = new float[slots];
          for (int i = from; i < to; i++) {
            if (visible[i] > 0) {
              indexer.score(queries, i * heads * dim, weights, i * heads, keys, visible[i], scores);
            }
            out[i] = TopK.select(scores, slotPositions, visible[i], k);
          }
        });
    return out;
  }

  /**
   * Layer {@code l}'s indexer keys of slots [0, {@link #slots()}), slot-major, on the host (what
   * {@link #indexRows}'s default stored).
   */
  protected float[] hostIndexKeys(int l) {
    return indexKeys[l];
  }

  /** Global position of each slot, [0, {@link #slots()}) (for a backend's {@link #scoreSlots}). */
  protected final int[] slotPositions() {
    return Arrays.copyOf(slotPositions, slots);
  }

  /**
   * This shard's partial attention of {@code m} queries ([m, queryDim], RoPE applied) over its keys
   * of layer {@code l} at positions ≤ each query's: output [m, queryDim] and LSE [m, heads]. Under
   * SelfExtend, {@code groupQueries} are the same queries at their grouped positions: keys inside a
   * query's neighbor window are attended with the plain query and keys, farther keys with the
   * grouped ones, and the two parts merged by LSE — one softmax over the merged logit map
   * (ALGORITHMS.md §2.3), so the coordinator's merge of the shards' partials stays exact (§4.2).
   */
  public final void attend(
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
  public final void attend(
      int l,
      float[] queries,
      float[] groupQueries,
      int[] positions,
      int[][] selected,
      float[] out,
      float[] lse) {
    int m = positions.length;
    int kvHeads = config.kvHeads();
    if (selected != null && selected.length != m && selected.length != m * kvHeads) {
      throw new IllegalArgumentException(
          "selections must be one per query ("
              + m
              + ") or per query and KV head ("
              + m * kvHeads
              + "), got "
              + selected.length);
    }
    if (m == 0) {
      return;
    }
    if (l < 0 || l >= layersWithKeys) {
      Arrays.fill(out, 0, m * config.queryDim(), 0f);
      Arrays.fill(lse, 0, m * config.heads(), Float.NEGATIVE_INFINITY);
      return;
    }
    if (selfExtend != null && (groupQueries == null || groupQueries.length != queries.length)) {
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
      grouped[i] =
          selfExtend == null ? 0 : visibleSlots(selfExtend.neighborStart(positions[i]) - 1);
    }
    // Selected positions → this shard's slots (ascending), and how many are grouped (SelfExtend).
    int[][] slotsOf = selected == null ? null : new int[selected.length][];
    int[] groupedOf = selected == null ? null : new int[selected.length];
    for (int u = 0; selected != null && u < selected.length; u++) {
      if (selected[u] != null) {
        int t = selected.length == m ? u : u / kvHeads;
        int ns = selfExtend == null ? 0 : selfExtend.neighborStart(positions[t]);
        slotsOf[u] = localSlots(selected[u], positions[t]);
        int g = 0;
        while (g < slotsOf[u].length && slotPositions[slotsOf[u][g]] < ns) {
          g++;
        }
        groupedOf[u] = g;
      }
    }
    attendSlots(
        l,
        queries,
        groupQueries,
        new Visibility(m, visible, grouped, slotsOf, groupedOf),
        out,
        lse);
  }

  /**
   * Which slots each of {@code m} queries attends: with no selection ({@code selected} null, or a
   * null entry) slots [0, visible[t]), of which [0, grouped[t]) at SelfExtend's grouped positions;
   * else the listed slots {@code selected[u]} (ascending), the first {@code groupedOf[u]} grouped.
   * {@code selected} holds one list per query or one per query and KV head (u = t·kvHeads +
   * kvHead).
   */
  protected record Visibility(
      int m, int[] visible, int[] grouped, int[][] selected, int[] groupedOf) {

    /** Whether the selections are per query and KV head. */
    public boolean perKvHead() {
      return selected != null && selected.length != m;
    }

    /** The selection index of query {@code t}, KV head {@code kvHead}, or −1 for every key. */
    public int selection(int t, int kvHead, int kvHeads) {
      if (selected == null) {
        return -1;
      }
      int u = perKvHead() ? t * kvHeads + kvHead : t;
      return selected[u] == null ? -1 : u;
    }
  }

  /** The backend's attention of {@link #attend}: the layer's keys held here, as {@code v} says. */
  protected abstract void attendSlots(
      int l, float[] queries, float[] groupQueries, Visibility v, float[] out, float[] lse);

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

  /** Slots whose position is ≤ {@code position} (slots ascend, so they are a prefix). */
  protected final int visibleSlots(int position) {
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
  public float[] forwardLocal(int[] tokens, int[] positions, boolean logits) {
    return forwardLocal(tokens, positions, logits ? new int[] {tokens.length - 1} : new int[0]);
  }

  /**
   * {@link #forwardLocal(int[], int[], boolean)} returning the logits of the step rows {@code
   * logitRows} (ascending), [logitRows.length, vocab]; none leaves the last layer unfinished. A
   * sparse method's step needs keys selected over the whole request: only a range that {@link
   * #selectsInForward} runs one; others fail (the coordinator selects for them).
   */
  public float[] forwardLocal(int[] tokens, int[] positions, int[] logitRows) {
    SequenceAttention selector = isSparse() ? localSelector(positions) : null;
    int qDim = config.queryDim();
    float[] attention = null;
    for (int l = 0; l < config.layers(); l++) {
      Queries q = advance(l, tokens, positions, attention);
      attention = new float[rows * qDim];
      int[][] selected = null;
      if (selector != null) {
        // The engine's own selection over the whole request (this range holds all of it).
        int start = positions[0];
        float[] x = selector.needsLayerInput() ? stepNormedInput() : null;
        selector.append(
            l, start, rows, stepKeys(false), selfExtend != null ? stepKeys(true) : null, x);
        selected = selector.select(l, start, rows, q.plain(), q.grouped(), x);
      }
      attend(
          l,
          q.plain(),
          q.grouped(),
          stepPositions,
          selected,
          attention,
          new float[rows * config.heads()]);
    }
    return logitRows.length > 0 ? logits(attention, logitRows) : new float[0];
  }

  /**
   * The selector of a sparse request stepped by {@link #forwardLocal} from its first token, created
   * then; fails for a request this range does not hold whole from position 0, or one the
   * coordinator stepped (its selector would miss keys).
   */
  private SequenceAttention localSelector(int[] positions) {
    requireForwardSelection(positions);
    if (localSelector == null) {
      localSelector = new SequenceAttention(policy, config, capacity);
    }
    localSelector.reserve(positions[0] + positions.length);
    return localSelector;
  }

  /**
   * For a sparse request's {@link #forwardLocal} (any backend): fails unless this range selects in
   * Forward, holds the request whole from position 0 (the step continues its slots) and was stepped
   * by Forward from its first token (a selector started later would miss keys); then records that
   * Forward steps it.
   */
  protected final void requireForwardSelection(int[] positions) {
    if (!selectsInForward()) {
      throw new IllegalStateException(
          policy.name()
              + " keys are selected by the coordinator for this shard: step the request with"
              + " Advance and Attend");
    }
    boolean contiguous = positions.length > 0 && positions[0] == slots;
    for (int i = 1; contiguous && i < positions.length; i++) {
      contiguous = positions[i] == positions[0] + i;
    }
    if (!contiguous || (!selectingInForward && slots > 0)) {
      throw new IllegalStateException(
          policy.name()
              + " selects keys in Forward only for a request held here whole, from position 0,"
              + " and stepped by Forward from its first token");
    }
    selectingInForward = true;
  }

  /**
   * Whether {@link #forwardLocal} selects a sparse method's keys itself (on a shard holding the
   * whole request from position 0), so the coordinator need not: true for the sparse methods whose
   * parameters came with the request (the engine's own {@code SequenceAttention} selects here).
   */
  public boolean selectsInForward() {
    return isSparse();
  }

  /** Whether the policy selects keys (indexer or block top-k). */
  protected final boolean isSparse() {
    return policy instanceof AttentionPolicy.IndexerTopK
        || policy instanceof AttentionPolicy.BlockTopK;
  }

  /**
   * For a backend's own {@link #forwardLocal}: starts a step as {@link #advance}(0) does (checks,
   * slots, embedding) and records that it will run every layer, so its keys exist and {@link
   * #layer()} is the last one; the backend then runs the layers itself.
   */
  protected final void startLocalStep(int[] tokens, int[] positions) {
    startStep(tokens, positions);
    layer = config.layers() - 1;
    layersWithKeys = config.layers();
  }

  /** For a backend's own {@link #forwardLocal}: records that the step's logits were taken. */
  protected final void markLogitsTaken() {
    layer = config.layers();
  }

  /** Finishes the last layer and returns the logits of the step rows {@code which}. */
  public final float[] logits(float[] attention, int[] which) {
    if (layer != config.layers() - 1) {
      throw new IllegalStateException(
          "logits need the last layer (" + (config.layers() - 1) + ") advanced, at layer " + layer);
    }
    finishChecked(layer, attention);
    layer = config.layers();
    for (int row : which) {
      if (row < 0 || row >= rows) {
        throw new IllegalArgumentException("row " + row + " is not a step row [0, " + rows + ")");
      }
    }
    return rowLogits(which);
  }

  /** Frees what the range holds (device memory for a GPU range); the CPU range has nothing. */
  @Override
  public void close() {}
}
