package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.inference.KvRange;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LlamaConfig;
import java.util.Arrays;
import java.util.function.Function;

/**
 * A {@link KvRange} on the GPU (a GPU shard's request, DESIGN.md §4): the slots' keys and values in
 * a {@link CudaKvCache} (paged, grown as slots fill, with SelfExtend's grouped keys), the step's
 * residual stream in device activations, the layer arithmetic of {@link CudaModel}. Queries,
 * attention outputs and logits cross to the host only where the shard protocol carries them.
 *
 * <p>Attention for any queries: each query row attends a contiguous range of slots (the ones at
 * positions ≤ its own: a prefix, split under SelfExtend into the grouped prefix and the neighbor
 * rest, ALGORITHMS.md §2.3) through the kernels' per-row range mode, or, for sparse methods, the
 * slots the coordinator selected (§4.5 step 4) as −1-padded per-row lists. The SelfExtend parts
 * merge by the LSE rule (§4.2) on the device; the merged LSE is computed here from the two.
 *
 * <p>Every call takes the model's lock (the device runs one stream; the model's scratch is shared),
 * so ranges of several requests may be driven from several threads.
 */
public final class CudaKvRange extends KvRange {

  private final CudaModel model;
  private final CudaContext cx;
  private final CudaKernels k;
  private final CudaSequence seq;
  private boolean closed;

  /** Per layer, the lightning-indexer keys of this range's slots (a Score request), or null. */
  private DeviceBuffer[] indexKeys;

  /** The indexer's head dimension (the keys' width), once {@link #indexKeys} exist. */
  private int indexDim;

  /** Rows of a Score slice: its scores [rows, slots] stay within this many bytes of scratch. */
  private static final long SCORE_SLICE_BYTES = 64L << 20;

  CudaKvRange(CudaModel model, int capacity, AttentionPolicy policy) {
    super(model.config(), capacity, policy);
    this.model = model;
    this.cx = model.context();
    this.k = model.kernels();
    LlamaConfig c = model.config();
    SelfExtend se = policy.positions();
    CudaKvCache cache =
        new CudaKvCache(cx, c.layers(), c.kvDim(), capacity, se != null, model.kvCacheType());
    try {
      // SelfExtend's position list serves the whole-step path (forwardLocal), as in CudaModel.
      this.seq =
          new CudaSequence(
              cache, policy, se == null ? null : model.selfExtendPositionList(se, capacity));
    } catch (RuntimeException e) {
      cache.close();
      throw e;
    }
  }

  /** How this range's decode steps ran as graphs (CudaModel.setDecodeGraphs). */
  LaunchGraph.Stats graphStats() {
    return seq.graphStats();
  }

  /** Device bytes of the key selection state (0 unless this range selects in Forward). */
  public long selectorBytes() {
    return seq.selectorBytes();
  }

  /** The device KV cache (slots, byte accounting). */
  public CudaKvCache cache() {
    return seq.cache();
  }

  private CudaModel.Activations act() {
    return seq.activations(model, rows());
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("the request's GPU range was released");
    }
  }

  @Override
  protected void embed(int[] tokens) {
    synchronized (model.lock()) {
      checkOpen();
      int n = tokens.length;
      seq.cache().reserve(firstSlot() + n);
      if (n > 0) {
        model.embedRows(act(), tokens, stepPositions(), n, selfExtend);
      }
      seq.cache().setLength(firstSlot() + n);
    }
  }

  @Override
  protected void project(int l) {
    if (rows() == 0) {
      return;
    }
    synchronized (model.lock()) {
      checkOpen();
      // layer l > 0 follows finish(l − 1), which left the RMSNormed input in place
      model.projectLayer(l, seq.cache(), act(), rows(), firstSlot(), selfExtend, l > 0);
    }
  }

  @Override
  protected float[] queries(boolean grouped) {
    return readStep(a -> grouped ? a.qkGrouped : a.qkv, 0, config.queryDim());
  }

  @Override
  public float[] stepKeys(boolean grouped) {
    // keys follow the step's query rows, in qkv and in the grouped copy alike
    return readStep(
        a -> grouped ? a.qkGrouped : a.qkv, (long) rows() * config.queryDim(), config.kvDim());
  }

  @Override
  public float[] stepNormedInput() {
    return readStep(a -> a.xb, 0, config.dim());
  }

  /** The step's rows of {@code width} floats from an activation buffer at float {@code offset}. */
  private float[] readStep(
      Function<CudaModel.Activations, DeviceBuffer> buffer, long offset, int width) {
    float[] out = new float[rows() * width];
    if (out.length == 0) {
      return out;
    }
    synchronized (model.lock()) {
      checkOpen();
      cx.read(buffer.apply(act()), offset, out, out.length);
    }
    return out;
  }

  @Override
  protected void finish(int l, float[] attention) {
    synchronized (model.lock()) {
      checkOpen();
      CudaModel.Activations a = act();
      cx.write(a.att, 0, attention, rows() * config.queryDim());
      model.finishLayer(l, a, rows(), true);
    }
  }

  @Override
  protected float[] rowLogits(int[] which) {
    int vocab = config.vocabSize();
    float[] out = new float[which.length * vocab];
    float[] row = new float[vocab];
    synchronized (model.lock()) {
      checkOpen();
      for (int i = 0; i < which.length; i++) {
        model.logitsOf(act(), which[i], row);
        System.arraycopy(row, 0, out, i * vocab, vocab);
      }
    }
    return out;
  }

  /**
   * Whole local steps stay on the device: when this range holds every position from 0 in order (one
   * shard holds the request) and the new tokens continue them, slots are positions and the model's
   * own layers run with causal attention, with no host copies per layer. Otherwise the
   * layer-by-layer path of {@link KvRange} runs.
   */
  @Override
  public float[] forwardLocal(int[] tokens, int[] positions, int[] logitRows) {
    boolean contiguous = positions.length > 0 && positions[0] == slots();
    // slots ascend and are distinct, so the last one at slots − 1 makes them 0, 1, …, slots − 1
    contiguous &= slots() == 0 || slotPosition(slots() - 1) == slots() - 1;
    for (int i = 1; contiguous && i < positions.length; i++) {
      contiguous = positions[i] == positions[0] + i;
    }
    if (isSparse()) {
      // The device selector (CudaSelector) needs every key of the request, recorded step by step.
      requireForwardSelection(positions);
      synchronized (model.lock()) {
        checkOpen();
        if (seq.selector() == null) {
          seq.attachSelector(CudaSelector.of(model, policy, capacity()));
        }
      }
    }
    if (!contiguous) {
      return super.forwardLocal(tokens, positions, logitRows);
    }
    startLocalStep(tokens, positions); // checks, slots, embeddings (embed)
    synchronized (model.lock()) {
      checkOpen();
      CudaModel.Activations a = act();
      int vocab = config.vocabSize();
      if (rows() == 1 && logitRows.length == 1) {
        // a decode step: one graph launch when the model's decode graphs are on
        model.decodeStep(seq, a, firstSlot(), logitRows[0]);
        float[] out = new float[vocab];
        cx.read(a.logits, 0, out, vocab);
        markLogitsTaken();
        return out;
      }
      model.runLayers(seq, a, firstSlot(), rows());
      float[] out = new float[logitRows.length * vocab];
      float[] row = new float[vocab];
      for (int i = 0; i < logitRows.length; i++) {
        model.logitsOf(a, logitRows[i], row);
        System.arraycopy(row, 0, out, i * vocab, vocab);
      }
      if (logitRows.length > 0) {
        markLogitsTaken();
      }
      return out;
    }
  }

  /**
   * True for the top-k methods the GPU selects for ({@link CudaModel#supports}): a request held
   * whole by this shard and stepped by Forward has its keys selected here, on the device.
   */
  @Override
  public boolean selectsInForward() {
    return isSparse() && CudaModel.supports(policy);
  }

  @Override
  protected void attendSlots(
      int l, float[] queries, float[] groupQueries, Visibility v, float[] out, float[] lse) {
    LlamaConfig c = config;
    int m = v.m();
    int heads = c.heads();
    int kvHeads = c.kvHeads();
    int qDim = c.queryDim();
    int units = v.perKvHead() ? kvHeads : 1;
    // A row is "ranged" when it attends every visible slot (no selection for any of its heads),
    // else "listed"; runs of consecutive rows of one kind share a launch.
    boolean[] listed = new boolean[m];
    boolean anyListed = false;
    int longest = 0; // the longest slot range of a ranged row (it sizes the key splits)
    int longestList = 0; // the longest list of a listed row (the lists' stride)
    boolean anyGrouped = false;
    for (int t = 0; t < m; t++) {
      for (int h = 0; h < units; h++) {
        listed[t] |= v.selection(t, h, kvHeads) >= 0;
      }
      anyListed |= listed[t];
      for (int h = 0; h < units; h++) {
        int u = v.selection(t, h, kvHeads);
        int length = u < 0 ? v.visible()[t] : v.selected()[u].length;
        if (listed[t]) {
          longestList = Math.max(longestList, length);
        } else {
          longest = Math.max(longest, length);
        }
        anyGrouped |= (u < 0 ? v.grouped()[t] : v.groupedOf()[u]) > 0;
      }
    }
    // Part 0 attends the plain keys with the queries, part 1 (SelfExtend, when any row has grouped
    // slots) the grouped keys with the grouped queries; the parts merge by LSE.
    int parts = selfExtend != null && anyGrouped ? 2 : 1;
    int count = Math.max(1, longestList);
    // Scratch per part, in bytes: queries, outputs, LSEs, ranges, lists.
    long qBytes = (long) m * qDim * Float.BYTES;
    long lseBytes = (long) m * heads * Float.BYTES;
    long rangeBytes = 2L * m * Integer.BYTES;
    long listBytes = anyListed ? (long) m * units * count * Integer.BYTES : 0;
    long partBytes = 2 * qBytes + lseBytes + rangeBytes + listBytes;
    int[][] ranges = new int[parts][2 * m];
    int[][] lists = anyListed ? new int[parts][m * units * count] : null;
    for (int t = 0; t < m; t++) {
      // plain [grouped, visible), grouped [0, grouped)
      ranges[0][2 * t] = v.grouped()[t];
      ranges[0][2 * t + 1] = v.visible()[t];
      if (parts == 2) {
        ranges[1][2 * t + 1] = v.grouped()[t];
      }
    }
    if (anyListed) {
      // [m, units, count] slot lists, −1-padded: plain entries (after the grouped ones), grouped
      for (int[] list : lists) {
        Arrays.fill(list, -1);
      }
      for (int t = 0; t < m; t++) {
        for (int h = 0; listed[t] && h < units; h++) {
          int u = v.selection(t, h, kvHeads);
          int[] slots = u < 0 ? prefix(v.visible()[t]) : v.selected()[u];
          int g = u < 0 ? v.grouped()[t] : v.groupedOf()[u];
          int at = (t * units + h) * count;
          System.arraycopy(slots, g, lists[0], at, slots.length - g);
          if (parts == 2) {
            System.arraycopy(slots, 0, lists[1], at, g);
          }
        }
      }
    }
    float[] partLse = new float[m * heads];
    synchronized (model.lock()) {
      checkOpen();
      DeviceBuffer scratch = model.attendScratch(parts * partBytes);
      CudaKvCache cache = seq.cache();
      for (int p = 0; p < parts; p++) {
        long base = p * partBytes; // q, out, lse, ranges, lists
        long outAt = base + qBytes;
        long lseAt = outAt + qBytes;
        long rangesAt = lseAt + lseBytes;
        long listsAt = rangesAt + rangeBytes;
        cx.write(scratch, base / Float.BYTES, p == 0 ? queries : groupQueries, m * qDim);
        cx.write(scratch, rangesAt / Integer.BYTES, ranges[p], 2 * m);
        if (anyListed) {
          cx.write(scratch, listsAt / Integer.BYTES, lists[p], lists[p].length);
        }
        long keys = p == 0 ? cache.keyTable(l) : cache.groupKeyTable(l);
        long at = scratch.address();
        for (int t0 = 0; t0 < m; ) {
          int t1 = t0 + 1;
          while (t1 < m && listed[t1] == listed[t0]) {
            t1++;
          }
          model.attendRows(
              keys,
              cache.valueTable(l),
              cache.type(),
              at + base + (long) t0 * qDim * Float.BYTES,
              at + outAt + (long) t0 * qDim * Float.BYTES,
              at + lseAt + (long) t0 * heads * Float.BYTES,
              t1 - t0,
              listed[t0] ? 0L : at + rangesAt + 2L * t0 * Integer.BYTES,
              listed[t0] ? at + listsAt + (long) t0 * units * count * Integer.BYTES : 0L,
              listed[t0] ? count : longest,
              units * count,
              v.perKvHead());
          t0 = t1;
        }
      }
      long outAt = qBytes;
      long lseAt = outAt + qBytes;
      if (parts == 2) {
        long at = scratch.address();
        k.selfExtendMerge(
            at + outAt,
            at + partBytes + outAt,
            at + lseAt,
            at + partBytes + lseAt,
            m * heads,
            c.headDim());
        cx.read(scratch, (partBytes + lseAt) / Float.BYTES, partLse, partLse.length);
      }
      cx.read(scratch, outAt / Float.BYTES, out, m * qDim);
      cx.read(scratch, lseAt / Float.BYTES, lse, m * heads);
    }
    if (parts == 2) {
      // the merged LSE: ln(e^neighbor + e^grouped) per (row, head)
      float[] pair = new float[2];
      for (int i = 0; i < partLse.length; i++) {
        pair[0] = lse[i];
        pair[1] = partLse[i];
        lse[i] = Ops.logSumExp(pair, 0, 2);
      }
    }
  }

  /**
   * The step rows' indexer keys computed and kept on the device (from the layer input the
   * projection left in place, as {@link CudaSelector} does for a whole request); their queries and
   * head weights come back to the host for the coordinator.
   */
  @Override
  protected IndexQueries indexRows(int l, LightningIndexer indexer) {
    int n = rows();
    int heads = indexer.heads();
    int d = indexer.headDim();
    float[] q = new float[n * heads * d];
    float[] w = new float[n * heads];
    synchronized (model.lock()) {
      checkOpen();
      CudaModel.DeviceIndexer ix = model.deviceIndexer(indexer);
      CudaModel.Activations a = act();
      if (indexKeys == null) {
        indexKeys = new DeviceBuffer[config.layers()];
        indexDim = d;
      }
      if (indexKeys[l] == null) {
        indexKeys[l] = cx.alloc((long) capacity() * d * Float.BYTES);
      }
      long x = a.xb.address();
      long positions = a.positions.address();
      long keys = indexKeys[l].address() + (long) firstSlot() * d * Float.BYTES;
      model.matmul(ix.wk().get(l), x, keys, n, a);
      k.layerNorm(keys, n, d, ix.normWeight().get(l).address(), ix.normBiasAddress(l));
      k.ropePrefix(keys, positions, ix.invFreq().address(), n, 1, ix.ropeDims(), d, d);
      long qBytes = (long) n * heads * d * Float.BYTES;
      DeviceBuffer scratch = model.attendScratch(qBytes + (long) n * heads * Float.BYTES);
      long qAt = scratch.address();
      model.matmul(ix.wq().get(l), x, qAt, n, a);
      model.matmul(ix.weightsProj().get(l), x, qAt + qBytes, n, a);
      k.ropePrefix(qAt, positions, ix.invFreq().address(), n, heads, ix.ropeDims(), d, heads * d);
      cx.read(scratch, 0, q, q.length);
      cx.read(scratch, qBytes / Float.BYTES, w, w.length);
    }
    return new IndexQueries(q, w);
  }

  /**
   * The local top-k on the device: the indexer score kernel over every slot, the slots past each
   * query's visible prefix masked, the top-k kernel (best first; ties by slot, which is by global
   * position since slots ascend), then slots mapped to positions on the host. Past the top-k
   * kernel's k, on the host over a copy of the keys.
   */
  @Override
  protected TopK.Candidates[] scoreSlots(
      int l, LightningIndexer indexer, float[] queries, float[] weights, int[] visible, int topK) {
    int m = visible.length;
    int len = slots();
    if (topK > CudaKernels.TOPK_MAX || len == 0 || m == 0) {
      return super.scoreSlots(l, indexer, queries, weights, visible, topK);
    }
    int heads = indexer.heads();
    int d = indexer.headDim();
    int[] positionOf = slotPositions();
    TopK.Candidates[] out = new TopK.Candidates[m];
    long f = Float.BYTES;
    // per row: queries, weights, visible count, scores, k slots, k scores (regions 256-aligned)
    long perRow = f * ((long) heads * d + heads + 1 + len + 2L * topK);
    int slice = (int) Math.max(1, Math.min(m, SCORE_SLICE_BYTES / perRow));
    long qAt = 0;
    long wAt = qAt + aligned((long) slice * heads * d * f);
    long visibleAt = wAt + aligned((long) slice * heads * f);
    long scoresAt = visibleAt + aligned((long) slice * f);
    long listsAt = scoresAt + aligned((long) slice * len * f);
    long bestAt = listsAt + aligned((long) slice * topK * f);
    long bytes = bestAt + aligned((long) slice * topK * f);
    int[] lists = new int[slice * topK];
    float[] scores = new float[slice * topK];
    synchronized (model.lock()) {
      checkOpen();
      CudaModel.DeviceIndexer ix = model.deviceIndexer(indexer);
      DeviceBuffer scratch = model.attendScratch(bytes);
      long base = scratch.address();
      for (int r0 = 0; r0 < m; r0 += slice) {
        int rows = Math.min(slice, m - r0);
        cx.write(
            scratch,
            qAt / f,
            Arrays.copyOfRange(queries, r0 * heads * d, (r0 + rows) * heads * d),
            rows * heads * d);
        cx.write(
            scratch,
            wAt / f,
            Arrays.copyOfRange(weights, r0 * heads, (r0 + rows) * heads),
            rows * heads);
        cx.write(scratch, visibleAt / f, Arrays.copyOfRange(visible, r0, r0 + rows), rows);
        k.indexerScores(
            base + qAt,
            base + wAt,
            indexKeys[l].address(),
            len,
            rows,
            heads,
            d,
            ix.scale(),
            base + scoresAt);
        k.maskBeyond(base + scoresAt, rows, len, base + visibleAt);
        k.topk(base + scoresAt, rows, len, topK, base + listsAt, base + bestAt);
        cx.read(scratch, listsAt / f, lists, rows * topK);
        cx.read(scratch, bestAt / f, scores, rows * topK);
        for (int i = 0; i < rows; i++) {
          int count = 0;
          while (count < topK && lists[i * topK + count] >= 0) {
            count++;
          }
          int[] at = new int[count];
          for (int j = 0; j < count; j++) {
            at[j] = positionOf[lists[i * topK + j]];
          }
          out[r0 + i] =
              new TopK.Candidates(Arrays.copyOfRange(scores, i * topK, i * topK + count), at);
        }
      }
    }
    return out;
  }

  @Override
  protected float[] hostIndexKeys(int l) {
    synchronized (model.lock()) {
      checkOpen();
      float[] keys = new float[slots() * indexDim];
      cx.read(indexKeys[l], 0, keys, keys.length);
      return keys;
    }
  }

  /** {@code bytes} rounded up to 256 (every scratch region starts aligned for vector loads). */
  private static long aligned(long bytes) {
    return (bytes + 255) & ~255L;
  }

  private static int[] prefix(int n) {
    int[] slots = new int[n];
    for (int i = 0; i < n; i++) {
      slots[i] = i;
    }
    return slots;
  }

  @Override
  public void close() {
    synchronized (model.lock()) {
      if (!closed) {
        closed = true;
        seq.close();
        for (int l = 0; indexKeys != null && l < indexKeys.length; l++) {
          if (indexKeys[l] != null) {
            indexKeys[l].close();
          }
        }
      }
    }
  }
}
