package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.inference.KvRange;
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

  CudaKvRange(CudaModel model, int capacity, AttentionPolicy policy) {
    super(model.config(), capacity, policy);
    this.model = model;
    this.cx = model.context();
    this.k = model.kernels();
    LlamaConfig c = model.config();
    SelfExtend se = policy.positions();
    CudaKvCache cache = new CudaKvCache(cx, c.layers(), c.kvDim(), capacity, se != null);
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
  public float[] forwardLocal(int[] tokens, int[] positions, boolean logits) {
    boolean contiguous = positions.length > 0 && positions[0] == slots();
    // slots ascend and are distinct, so the last one at slots − 1 makes them 0, 1, …, slots − 1
    contiguous &= slots() == 0 || slotPosition(slots() - 1) == slots() - 1;
    for (int i = 1; contiguous && i < positions.length; i++) {
      contiguous = positions[i] == positions[0] + i;
    }
    if (!contiguous || tokens.length != positions.length) {
      return super.forwardLocal(tokens, positions, logits);
    }
    startLocalStep(tokens, positions); // checks, slots, embeddings (embed)
    synchronized (model.lock()) {
      checkOpen();
      CudaModel.Activations a = act();
      model.runLayers(seq, a, firstSlot(), rows());
      if (!logits) {
        return new float[0];
      }
      float[] out = new float[config.vocabSize()];
      model.logitsOf(a, rows() - 1, out);
      markLogitsTaken();
      return out;
    }
  }

  @Override
  protected void attendSlots(
      int l, float[] queries, float[] groupQueries, Visibility v, float[] out, float[] lse) {
    LlamaConfig c = config;
    int m = v.m();
    int heads = c.heads();
    int kvHeads = c.kvHeads();
    int qDim = c.queryDim();
    boolean se = selfExtend != null;
    // A row is "ranged" when it attends every visible slot (no selection for any of its heads),
    // else "listed"; runs of consecutive rows of one kind share a launch.
    boolean[] listed = new boolean[m];
    for (int t = 0; t < m; t++) {
      for (int h = 0; h < kvHeads && !listed[t]; h++) {
        listed[t] = v.selection(t, h, kvHeads) >= 0;
      }
    }
    int units = v.perKvHead() ? kvHeads : 1;
    int longest = 0; // the longest slot range of a ranged row (it sizes the key splits)
    int longestList = 0; // the longest list of a listed row (the lists' stride)
    int anyGrouped = 0;
    for (int t = 0; t < m; t++) {
      for (int h = 0; h < units; h++) {
        int u = v.selection(t, h, kvHeads);
        int length = u < 0 ? v.visible()[t] : v.selected()[u].length;
        if (listed[t]) {
          longestList = Math.max(longestList, length);
        } else {
          longest = Math.max(longest, length);
        }
        anyGrouped |= u < 0 ? v.grouped()[t] : v.groupedOf()[u];
      }
    }
    boolean grouped = se && anyGrouped > 0;
    int count = Math.max(1, longestList);
    long f = Float.BYTES;
    long qBytes = (long) m * qDim * f;
    long lseBytes = (long) m * heads * f;
    long rangeBytes = 2L * m * Integer.BYTES;
    long listBytes = (long) m * units * count * Integer.BYTES;
    boolean anyListed = false;
    for (boolean b : listed) {
      anyListed |= b;
    }
    synchronized (model.lock()) {
      checkOpen();
      long need = 4 * qBytes + 2 * lseBytes + 2 * rangeBytes + (anyListed ? 2 * listBytes : 0);
      DeviceBuffer scratch = model.attendScratch(need);
      long qAt = scratch.address();
      long qgAt = qAt + qBytes;
      long outAt = qgAt + qBytes;
      long outGAt = outAt + qBytes;
      long lseAt = outGAt + qBytes;
      long lseGAt = lseAt + lseBytes;
      long rangesAt = lseGAt + lseBytes;
      long rangesGAt = rangesAt + rangeBytes;
      long listsAt = rangesGAt + rangeBytes;
      long listsGAt = listsAt + listBytes;
      long scratchBase = scratch.address();
      cx.write(scratch, (qAt - scratchBase) / f, queries, m * qDim);
      if (grouped) {
        cx.write(scratch, (qgAt - scratchBase) / f, groupQueries, m * qDim);
      }
      // Ranges: plain [grouped, visible), grouped [0, grouped) per row.
      int[] ranges = new int[2 * m];
      int[] rangesG = new int[2 * m];
      for (int t = 0; t < m; t++) {
        ranges[2 * t] = v.grouped()[t];
        ranges[2 * t + 1] = v.visible()[t];
        rangesG[2 * t + 1] = v.grouped()[t];
      }
      cx.write(scratch, (rangesAt - scratchBase) / Integer.BYTES, ranges, 2 * m);
      if (grouped) {
        cx.write(scratch, (rangesGAt - scratchBase) / Integer.BYTES, rangesG, 2 * m);
      }
      if (anyListed) {
        // [m, units, count] slot lists, −1-padded: plain entries (after the grouped ones) and
        // grouped entries.
        int[] lists = new int[m * units * count];
        int[] listsG = new int[m * units * count];
        Arrays.fill(lists, -1);
        Arrays.fill(listsG, -1);
        for (int t = 0; t < m; t++) {
          if (!listed[t]) {
            continue;
          }
          for (int h = 0; h < units; h++) {
            int u = v.selection(t, h, kvHeads);
            int[] slots = u < 0 ? prefix(v.visible()[t]) : v.selected()[u];
            int g = u < 0 ? v.grouped()[t] : v.groupedOf()[u];
            int at = (t * units + h) * count;
            System.arraycopy(slots, g, lists, at, slots.length - g);
            System.arraycopy(slots, 0, listsG, at, g);
          }
        }
        cx.write(scratch, (listsAt - scratchBase) / Integer.BYTES, lists, lists.length);
        if (grouped) {
          cx.write(scratch, (listsGAt - scratchBase) / Integer.BYTES, listsG, listsG.length);
        }
      }
      CudaKvCache cache = seq.cache();
      for (int t0 = 0; t0 < m; ) {
        int t1 = t0 + 1;
        while (t1 < m && listed[t1] == listed[t0]) {
          t1++;
        }
        long qRow = (long) t0 * qDim * f;
        long lseRow = (long) t0 * heads * f;
        long rangeRow = 2L * t0 * Integer.BYTES;
        long listRow = (long) t0 * units * count * Integer.BYTES;
        attendRun(
            cache.keyTable(l),
            cache.valueTable(l),
            qAt + qRow,
            outAt + qRow,
            lseAt + lseRow,
            t1 - t0,
            listed[t0] ? 0L : rangesAt + rangeRow,
            listed[t0] ? listsAt + listRow : 0L,
            listed[t0] ? count : longest,
            units * count,
            v.perKvHead());
        if (grouped) {
          attendRun(
              cache.groupKeyTable(l),
              cache.valueTable(l),
              qgAt + qRow,
              outGAt + qRow,
              lseGAt + lseRow,
              t1 - t0,
              listed[t0] ? 0L : rangesGAt + rangeRow,
              listed[t0] ? listsGAt + listRow : 0L,
              listed[t0] ? count : longest,
              units * count,
              v.perKvHead());
        }
        t0 = t1;
      }
      float[] lseG = null;
      if (grouped) {
        k.selfExtendMerge(outAt, outGAt, lseAt, lseGAt, m * heads, c.headDim());
        lseG = new float[m * heads];
        cx.read(scratch, (lseGAt - scratchBase) / f, lseG, lseG.length);
      }
      cx.read(scratch, (outAt - scratchBase) / f, out, m * qDim);
      cx.read(scratch, (lseAt - scratchBase) / f, lse, m * heads);
      if (lseG != null) {
        for (int i = 0; i < lseG.length; i++) {
          lse[i] = logAddExp(lse[i], lseG[i]);
        }
      }
    }
  }

  /** Attention of {@code rows} query rows: per-row slot ranges, or per-row (per-head) lists. */
  private void attendRun(
      long keyTable,
      long valueTable,
      long q,
      long out,
      long lse,
      int rows,
      long ranges,
      long lists,
      int count,
      int listStride,
      boolean perKvHead) {
    LlamaConfig c = config;
    k.attention(
        q,
        keyTable,
        valueTable,
        CudaKvCache.PAGE_TOKENS,
        out,
        lse,
        rows,
        c.heads(),
        c.kvHeads(),
        c.headDim(),
        model.attentionScale(),
        0,
        ranges,
        lists,
        count,
        lists == 0 ? 0 : listStride,
        lists != 0 && perKvHead);
  }

  private static int[] prefix(int n) {
    int[] slots = new int[n];
    for (int i = 0; i < n; i++) {
      slots[i] = i;
    }
    return slots;
  }

  /** ln(eᵃ + eᵇ), −∞ when both are. */
  private static float logAddExp(float a, float b) {
    float m = Math.max(a, b);
    if (m == Float.NEGATIVE_INFINITY) {
      return m;
    }
    return (float) (m + Math.log(Math.exp((double) a - m) + Math.exp((double) b - m)));
  }

  @Override
  public void close() {
    synchronized (model.lock()) {
      if (!closed) {
        closed = true;
        seq.close();
      }
    }
  }
}
