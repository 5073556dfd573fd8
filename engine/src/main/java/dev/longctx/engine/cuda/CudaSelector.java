package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.BlockScore;
import dev.longctx.engine.attention.AttentionPolicy.BlockTopK;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.model.LlamaConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * The key selection of one GPU sequence under a top-k policy: the CPU {@code SequenceAttention}'s
 * {@code select} on the device, its state beside the KV cache in device memory. Per layer the
 * step's keys are recorded ({@link #append}) and each sparse query row gets a −1-padded list of the
 * positions it attends ({@link #select}), which the attention kernels read in their {@code
 * selected} mode; nothing goes back to the host.
 *
 * <ul>
 *   <li><b>Block top-k</b> (MoBA / Quest, ALGORITHMS.md §3): per-block min, max and sum of the keys
 *       (SelfExtend's grouped keys under SelfExtend), block scores per KV head, the top {@code
 *       topBlocks − 1} complete blocks plus the query's current block.
 *   <li><b>Indexer top-k, own heads</b> (§5.2): INT8 keys with per-row scales and per-page min/max
 *       (plain and grouped), stage 1 page pruning by the heads' summed softmax of the Quest bounds,
 *       stage 2 the summed per-head softmax of the INT8 logits over the surviving tokens, sinks and
 *       the local window forced in.
 *   <li><b>Indexer top-k, model-file lightning indexer</b> (§1.2): per-layer indexer keys
 *       (projection, LayerNorm, RoPE of the first d_I/2 dimensions), queries and head weights of
 *       the sparse rows, the weighted ReLU scores, the causal top-k.
 * </ul>
 *
 * Queries at positions below {@link #denseRows}' bound attend every causal key (the policies' dense
 * rule, §1.3 "Short sequences"). The state grows as {@code SequenceAttention}'s does (same
 * capacities, so the same {@link #bytesAllocated}).
 */
final class CudaSelector implements AutoCloseable {

  /**
   * Key lists of a step's sparse rows: row r's list starts at {@code address + 4·r·rowStride}
   * ({@code kvHeads} lists of {@code count} per row when per KV head, else one).
   */
  record Lists(long address, int count, int rowStride, boolean perKvHead) {}

  /** The own-heads selector's constants, shared with the CPU's (IndexerSource.OwnHeads). */
  static final int PAGE = IndexerSource.OwnHeads.PAGE;

  static final int SINKS = IndexerSource.OwnHeads.SINKS;
  static final int LOCAL = IndexerSource.OwnHeads.LOCAL;
  static final int OVERSAMPLE = IndexerSource.OwnHeads.OVERSAMPLE;

  /** Scratch bytes a slice of sparse rows may use (rows are selected in slices within it). */
  static final long SLICE_BYTES = 64L << 20;

  private final CudaModel model;
  private final CudaContext cx;
  private final CudaKernels k;
  private final LlamaConfig c;
  private final AttentionPolicy policy;
  private final SelfExtend se;
  private final List<LayerArray> arrays = new ArrayList<>();
  private int capacity;
  private long sliceBytes = SLICE_BYTES;

  // Block top-k: summaries of the keys (grouped keys under SelfExtend).
  private final LayerArray blockMin;
  private final LayerArray blockMax;
  private final LayerArray blockSum;

  // Own heads: INT8 keys, their scales, page bounds; grouped copies under SelfExtend.
  private final LayerArray values;
  private final LayerArray scales;
  private final LayerArray pageMin;
  private final LayerArray pageMax;
  private final LayerArray groupValues;
  private final LayerArray groupScales;
  private final LayerArray groupPageMin;
  private final LayerArray groupPageMax;

  // Model-file lightning indexer: its weights on the device and the per-layer keys.
  private final CudaModel.DeviceIndexer indexer;
  private final LayerArray indexerKeys;

  /** Step scratch: scores, probabilities, candidates, lists. */
  private DeviceBuffer scratch;

  /** Per-layer device arrays of a number of units (tokens or blocks) that grow by doubling. */
  private final class LayerArray {
    private final DeviceBuffer[] buffers;
    private final long unitBytes;
    private final int tokensPerUnit;
    private int units;

    LayerArray(long unitBytes, int tokensPerUnit) {
      this.buffers = new DeviceBuffer[c.layers()];
      this.unitBytes = unitBytes;
      this.tokensPerUnit = tokensPerUnit;
      arrays.add(this);
    }

    /** BlockSummaries / QuantizedKeys.reserve: max(need, 2·current) units when more are needed. */
    void reserve(int tokens) {
      int need = (tokens + tokensPerUnit - 1) / tokensPerUnit;
      if (need <= units) {
        return;
      }
      int grown = Math.max(need, units * 2);
      for (int l = 0; l < buffers.length; l++) {
        DeviceBuffer b = cx.alloc(grown * unitBytes);
        if (buffers[l] != null) {
          cx.copy(b, buffers[l], units * unitBytes);
          buffers[l].close();
        }
        buffers[l] = b;
      }
      units = grown;
    }

    long address(int layer) {
      return buffers[layer].address();
    }

    long bytes() {
      return (long) buffers.length * units * unitBytes;
    }

    void close() {
      for (int l = 0; l < buffers.length; l++) {
        if (buffers[l] != null) {
          buffers[l].close();
          buffers[l] = null;
        }
      }
    }
  }

  /**
   * Device bytes of selector state per token under {@code policy} (0 for dense and SelfExtend): own
   * heads' INT8 keys, scales and page bounds (twice under SelfExtend), block top-k's three
   * summaries per block, a lightning indexer's keys; what {@link #bytesAllocated} holds per token
   * of capacity, rounded up.
   */
  static long bytesPerToken(LlamaConfig c, AttentionPolicy policy) {
    long layers = c.layers();
    long kvDim = c.kvDim();
    long f = Float.BYTES;
    return switch (policy) {
      case BlockTopK b -> layers * ceilDiv(3 * kvDim * f, b.blockSize());
      case IndexerTopK t ->
          switch (t.indexer()) {
            case IndexerSource.OwnHeads o ->
                (policy.positions() != null ? 2 : 1)
                    * layers
                    * (kvDim + c.kvHeads() * f + ceilDiv(2 * kvDim * f, PAGE));
            case IndexerSource.Trained m -> layers * m.indexer().headDim() * f;
          };
      default -> 0;
    };
  }

  private static long ceilDiv(long a, long b) {
    return (a + b - 1) / b;
  }

  /** The selector of {@code policy}, or null for dense and SelfExtend (no selection). */
  static CudaSelector of(CudaModel model, AttentionPolicy policy, int maxTokens) {
    if (policy instanceof IndexerTopK || policy instanceof BlockTopK) {
      return new CudaSelector(model, policy, maxTokens);
    }
    return null;
  }

  private CudaSelector(CudaModel model, AttentionPolicy policy, int maxTokens) {
    this.model = model;
    this.cx = model.context();
    this.k = model.kernels();
    this.c = model.config();
    this.policy = policy;
    this.se = policy.positions();
    if (c.groupSize() > CudaKernels.MAX_SELECTION_GROUP) {
      throw new IllegalArgumentException(
          policy.name()
              + " on the GPU selects for GQA groups of up to "
              + CudaKernels.MAX_SELECTION_GROUP
              + " query heads; this model has "
              + c.groupSize());
    }
    long f = Float.BYTES;
    int kvDim = c.kvDim();
    LayerArray bMin = null;
    LayerArray bMax = null;
    LayerArray bSum = null;
    LayerArray v = null;
    LayerArray s = null;
    LayerArray pMin = null;
    LayerArray pMax = null;
    LayerArray gv = null;
    LayerArray gs = null;
    LayerArray gpMin = null;
    LayerArray gpMax = null;
    CudaModel.DeviceIndexer ix = null;
    LayerArray ixKeys = null;
    if (policy instanceof BlockTopK b) {
      bMin = new LayerArray(kvDim * f, b.blockSize());
      bMax = new LayerArray(kvDim * f, b.blockSize());
      bSum = new LayerArray(kvDim * f, b.blockSize());
    } else if (policy instanceof IndexerTopK t) {
      switch (t.indexer()) {
        case IndexerSource.OwnHeads o -> {
          v = new LayerArray(kvDim, 1);
          s = new LayerArray(c.kvHeads() * f, 1);
          pMin = new LayerArray(kvDim * f, PAGE);
          pMax = new LayerArray(kvDim * f, PAGE);
          if (se != null) {
            gv = new LayerArray(kvDim, 1);
            gs = new LayerArray(c.kvHeads() * f, 1);
            gpMin = new LayerArray(kvDim * f, PAGE);
            gpMax = new LayerArray(kvDim * f, PAGE);
          }
        }
        case IndexerSource.Trained m -> {
          ix = model.deviceIndexer(m.indexer());
          ixKeys = new LayerArray(m.indexer().headDim() * f, 1);
        }
      }
    }
    this.blockMin = bMin;
    this.blockMax = bMax;
    this.blockSum = bSum;
    this.values = v;
    this.scales = s;
    this.pageMin = pMin;
    this.pageMax = pMax;
    this.groupValues = gv;
    this.groupScales = gs;
    this.groupPageMin = gpMin;
    this.groupPageMax = gpMax;
    this.indexer = ix;
    this.indexerKeys = ixKeys;
    this.capacity = Math.min(maxTokens, 256);
    try {
      for (LayerArray a : arrays) {
        a.reserve(capacity);
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /** Makes room for {@code tokens} (SequenceAttention.reserve's growth). */
  void reserve(int tokens) {
    if (tokens <= capacity) {
      return;
    }
    int grown = Math.max(tokens, capacity * 2);
    for (LayerArray a : arrays) {
      a.reserve(grown);
    }
    capacity = grown;
  }

  /** Device bytes of the selector state (as SequenceAttention.bytesAllocated counts its own). */
  long bytesAllocated() {
    long sum = 0;
    for (LayerArray a : arrays) {
      sum += a.bytes();
    }
    return sum;
  }

  /**
   * How many of the step's n rows (positions start..) attend every causal key: indexer top-k below
   * max(k, dense-below) (a query with at most k keys selects them all), block top-k below
   * topBlocks·blockSize (no more complete blocks than it would choose). They come first.
   */
  int denseRows(int start, int n) {
    int bound =
        switch (policy) {
          case IndexerTopK t -> Math.max(t.k(), t.denseBelowTokens());
          case BlockTopK b ->
              (int) Math.min(Integer.MAX_VALUE, (long) b.topBlocks() * b.blockSize());
          default -> Integer.MAX_VALUE;
        };
    return Math.clamp((long) bound - start, 0, n);
  }

  /**
   * Records layer l's keys of the step's n rows (positions start..): a.qkv holds the rotated keys
   * after the queries, a.qkGrouped SelfExtend's grouped keys, a.xb the normalized layer input.
   */
  void append(int l, CudaModel.Activations a, int start, int n) {
    long keys = a.qkv.address() + (long) n * c.queryDim() * Float.BYTES;
    long groupKeys =
        se == null ? 0L : a.qkGrouped.address() + (long) n * c.queryDim() * Float.BYTES;
    appendKeys(l, keys, groupKeys, start, n);
    if (indexer != null) {
      int d = indexer.headDim();
      long at = indexerKeys.address(l) + (long) start * d * Float.BYTES;
      model.matmul(indexer.wk().get(l), a.xb.address(), at, n, a);
      k.layerNorm(at, n, d, indexer.normWeight().get(l).address(), indexer.normBiasAddress(l));
      k.ropePrefix(
          at, a.positions.address(), indexer.invFreq().address(), n, 1, indexer.ropeDims(), d, d);
    }
  }

  /** Whether the selector reads the layers' inputs (a lightning indexer), not just their keys. */
  boolean needsLayerInput() {
    return indexer != null;
  }

  /**
   * Records layer l's keys of positions [start, start + n) ({@code keys} [n, kvDim], rotated at
   * their positions; {@code groupKeys} at SelfExtend's grouped ones, 0 without) in the block
   * summaries or the own-heads state; a lightning indexer's keys need the layer input ({@link
   * #append}).
   */
  void appendKeys(int l, long keys, long groupKeys, int start, int n) {
    int kvDim = c.kvDim();
    if (blockMin != null) {
      // With SelfExtend, past blocks are (mostly) attended at grouped positions: summarize those.
      int size = ((BlockTopK) policy).blockSize();
      k.blockSummaryPut(
          blockMin.address(l),
          blockMax.address(l),
          blockSum.address(l),
          se != null ? groupKeys : keys,
          start,
          n,
          size,
          kvDim);
    }
    if (values != null) {
      k.quantizeKeys(
          keys, n, start, c.kvHeads(), c.headDim(), values.address(l), scales.address(l));
      k.blockSummaryPut(pageMin.address(l), pageMax.address(l), 0L, keys, start, n, PAGE, kvDim);
      if (se != null) {
        k.quantizeKeys(
            groupKeys,
            n,
            start,
            c.kvHeads(),
            c.headDim(),
            groupValues.address(l),
            groupScales.address(l));
        k.blockSummaryPut(
            groupPageMin.address(l), groupPageMax.address(l), 0L, groupKeys, start, n, PAGE, kvDim);
      }
    }
  }

  /**
   * The key lists of rows [dense, n) of the step (positions start + dense ..), for layer l, after
   * {@link #append}: a.qkv holds the rotated queries, a.qkGrouped the grouped ones, a.xb the
   * normalized input.
   */
  Lists select(int l, CudaModel.Activations a, int start, int n, int dense) {
    return switch (policy) {
      case BlockTopK b -> selectBlocks(b, l, a, start, n, dense);
      case IndexerTopK t when indexer != null -> selectIndexer(t, l, a, start, n, dense);
      case IndexerTopK t -> selectOwnHeads(t, l, a, start, n, dense);
      default -> throw new IllegalStateException("no selection for " + policy.name());
    };
  }

  /**
   * SelfExtend's split of {@code lists} for {@code rows} sparse rows at positions start..: the
   * neighbor keys (at or after each query's neighbor start) and the grouped ones, as two lists of
   * the same shape.
   */
  Lists[] splitSelfExtend(Lists lists, int start, int rows) {
    int perQuery = lists.perKvHead() ? c.kvHeads() : 1;
    long listBytes = (long) rows * lists.rowStride() * Integer.BYTES;
    long neighbor = lists.address() + aligned(listBytes);
    long grouped = neighbor + aligned(listBytes);
    k.selectionSplit(
        lists.address(),
        rows * perQuery,
        lists.count(),
        perQuery,
        start,
        se.neighborWindow(),
        se.mode() == SelfExtendMode.LLAMACPP,
        neighbor,
        grouped);
    return new Lists[] {
      new Lists(neighbor, lists.count(), lists.rowStride(), lists.perKvHead()),
      new Lists(grouped, lists.count(), lists.rowStride(), lists.perKvHead())
    };
  }

  /**
   * The entries of {@code lists} for {@code rows} rows, copied to the host (waits for the device):
   * for checks against the CPU selection.
   */
  int[] read(Lists lists, int rows) {
    int[] out = new int[rows * lists.rowStride()];
    cx.read(scratch, (lists.address() - scratch.address()) / Integer.BYTES, out, out.length);
    return out;
  }

  // ---- block top-k ----

  private Lists selectBlocks(
      BlockTopK b, int l, CudaModel.Activations a, int start, int n, int dense) {
    int kvHeads = c.kvHeads();
    int size = b.blockSize();
    int chosenPerRow = b.topBlocks() - 1;
    int count = b.topBlocks() * size;
    int rows = n - dense;
    int longest = (start + n - 1) / size; // complete blocks before the last row's own
    long listBytes = (long) rows * kvHeads * count * Integer.BYTES;
    long perRow = (long) kvHeads * (longest + 2L * chosenPerRow) * Float.BYTES;
    int slice = sliceRows(rows, perRow);
    long lists = scratchFor(listBytes, slice * perRow);
    long scores = sliceBase(lists, listBytes);
    long chosen = scores + (long) slice * kvHeads * longest * Float.BYTES;
    long chosenScores = chosen + (long) slice * kvHeads * chosenPerRow * Integer.BYTES;
    long q = se != null ? a.qkGrouped.address() : a.qkv.address();
    for (int r0 = 0; r0 < rows; r0 += slice) {
      int m = Math.min(slice, rows - r0);
      int first = start + dense + r0;
      int length = (first + m - 1) / size;
      long qRows = q + (long) (dense + r0) * c.queryDim() * Float.BYTES;
      if (chosenPerRow > 0) {
        k.blockScores(
            qRows,
            blockMin.address(l),
            blockMax.address(l),
            blockSum.address(l),
            first,
            m,
            c.heads(),
            kvHeads,
            c.headDim(),
            size,
            b.score() == BlockScore.QUEST,
            length,
            scores);
        k.topk(scores, m * kvHeads, length, chosenPerRow, chosen, chosenScores, 0L, false);
      }
      k.blockExpand(
          chosen,
          m * kvHeads,
          first,
          kvHeads,
          size,
          b.topBlocks(),
          count,
          lists + (long) r0 * kvHeads * count * Integer.BYTES);
    }
    return new Lists(lists, count, kvHeads * count, true);
  }

  // ---- indexer top-k: own heads ----

  private Lists selectOwnHeads(
      IndexerTopK t, int l, CudaModel.Activations a, int start, int n, int dense) {
    int heads = c.heads();
    int topK = t.k();
    int sinks = Math.min(SINKS, topK / 4);
    int local = Math.min(LOCAL, topK / 4);
    int keep = OVERSAMPLE * ((topK + PAGE - 1) / PAGE);
    int perRow = (keep + 2) * PAGE;
    int rows = n - dense;
    int pages = (start + n - 1) / PAGE; // complete pages before the last row's own
    long listBytes = (long) rows * topK * Integer.BYTES;
    long f = Float.BYTES;
    long bytesPerRow =
        f * ((long) heads * pages + pages + 2L * keep + (long) heads * perRow + 2L * perRow + topK);
    int slice = sliceRows(rows, bytesPerRow);
    long lists = scratchFor(listBytes, slice * bytesPerRow);
    long probs = sliceBase(lists, listBytes);
    long weights = probs + (long) slice * heads * pages * f;
    long kept = weights + (long) slice * pages * f;
    long keptScores = kept + (long) slice * keep * f;
    long z = keptScores + (long) slice * keep * f;
    long cand = z + (long) slice * heads * perRow * f;
    long p = cand + (long) slice * perRow * f;
    long outScores = p + (long) slice * perRow * f;
    long qn = a.qkv.address();
    long qg = se != null ? a.qkGrouped.address() : 0L;
    int window = se != null ? se.neighborWindow() : 0;
    boolean llamacpp = se != null && se.mode() == SelfExtendMode.LLAMACPP;
    float scale = model.attentionScale();
    for (int r0 = 0; r0 < rows; r0 += slice) {
      int m = Math.min(slice, rows - r0);
      int first = start + dense + r0;
      long qRow = (long) (dense + r0) * c.queryDim() * f;
      long qgRow = se != null ? qg + qRow : 0L;
      int length = (first + m - 1) / PAGE;
      int lastLen = first + m;
      if ((lastLen + PAGE - 1) / PAGE > keep + 2) {
        // stage 1 (some row has more pages than it keeps): page weights, the best `keep` pages
        k.pageProbs(
            qn + qRow,
            qgRow,
            pageMin.address(l),
            pageMax.address(l),
            se != null ? groupPageMin.address(l) : 0L,
            se != null ? groupPageMax.address(l) : 0L,
            first,
            m,
            heads,
            c.kvHeads(),
            c.headDim(),
            PAGE,
            window,
            llamacpp,
            scale,
            length,
            probs);
        k.pageWeights(probs, first, m, heads, PAGE, sinks, local, length, weights);
        k.topk(weights, m, length, keep, kept, keptScores, 0L, false);
      }
      k.gatherCandidates(kept, first, m, keep, PAGE, perRow, cand);
      k.candidateProbs(
          qn + qRow,
          qgRow,
          values.address(l),
          scales.address(l),
          se != null ? groupValues.address(l) : 0L,
          se != null ? groupScales.address(l) : 0L,
          cand,
          first,
          m,
          heads,
          c.kvHeads(),
          c.headDim(),
          window,
          llamacpp,
          scale,
          perRow,
          z);
      k.candidateWeights(z, cand, first, m, heads, sinks, local, perRow, p);
      k.topk(p, m, perRow, topK, lists + (long) r0 * topK * Integer.BYTES, outScores, cand, false);
    }
    return new Lists(lists, topK, topK, false);
  }

  // ---- indexer top-k: a lightning indexer from the model file ----

  private Lists selectIndexer(
      IndexerTopK t, int l, CudaModel.Activations a, int start, int n, int dense) {
    int heads = indexer.heads();
    int d = indexer.headDim();
    int topK = t.k();
    int rows = n - dense;
    int len = start + n; // keys of the last row
    long f = Float.BYTES;
    long listBytes = (long) rows * topK * Integer.BYTES;
    long bytesPerRow = f * ((long) heads * d + heads + len + topK);
    int slice = sliceRows(rows, bytesPerRow);
    long lists = scratchFor(listBytes, slice * bytesPerRow);
    long q = sliceBase(lists, listBytes); // 16-byte aligned, as the tiled score kernel wants
    long w = q + (long) slice * heads * d * f;
    long scores = w + (long) slice * heads * f;
    long outScores = scores + (long) slice * len * f;
    for (int r0 = 0; r0 < rows; r0 += slice) {
      int m = Math.min(slice, rows - r0);
      int first = start + dense + r0;
      long x = a.xb.address() + (long) (dense + r0) * c.dim() * f;
      model.matmul(indexer.wq().get(l), x, q, m, a);
      model.matmul(indexer.weightsProj().get(l), x, w, m, a);
      // the rows' positions are the step's (a.positions): no host copy, no stall of the stream
      long rowPositions = a.positions.address() + (long) (dense + r0) * Integer.BYTES;
      k.ropePrefix(
          q, rowPositions, indexer.invFreq().address(), m, heads, indexer.ropeDims(), d, heads * d);
      int keys = first + m;
      k.indexerScores(q, w, indexerKeys.address(l), keys, m, heads, d, indexer.scale(), scores);
      k.maskFuture(scores, m, keys, first);
      k.topk(scores, m, keys, topK, lists + (long) r0 * topK * Integer.BYTES, outScores, 0L, false);
    }
    return new Lists(lists, topK, topK, false);
  }

  // ---- scratch ----

  /**
   * The scratch budget of a slice of rows ({@link #SLICE_BYTES} by default); a small one makes a
   * chunk's rows go through many slices, as a long context's do (tests).
   */
  void setSliceBytes(long bytes) {
    this.sliceBytes = bytes;
  }

  /** Rows per slice so that {@code bytesPerRow} each stay within the slice budget. */
  private int sliceRows(int rows, long bytesPerRow) {
    return (int) Math.max(1, Math.min(rows, sliceBytes / Math.max(1, bytesPerRow)));
  }

  /**
   * The step scratch for {@code listBytes} of key lists at its base (and, under SelfExtend, room
   * for their split into two more) followed by {@code sliceBytes}; returns the base. The lists of
   * an earlier call are then invalid.
   */
  private long scratchFor(long listBytes, long sliceBytes) {
    long bytes = (se != null ? 3 : 1) * aligned(listBytes) + sliceBytes;
    if (scratch == null || scratch.bytes() < bytes) {
      if (scratch != null) {
        scratch.close();
      }
      scratch = cx.alloc(Math.max(bytes, 1L << 16));
    }
    return scratch.address();
  }

  /** Where the slice scratch starts after lists of {@code listBytes} at {@code base}. */
  private long sliceBase(long base, long listBytes) {
    return base + (se != null ? 3 : 1) * aligned(listBytes);
  }

  /** {@code bytes} rounded up to 256 (keeps every region 16-byte aligned for vector loads). */
  private static long aligned(long bytes) {
    return (bytes + 255) & ~255L;
  }

  @Override
  public void close() {
    for (LayerArray a : arrays) {
      a.close();
    }
    if (scratch != null) {
      scratch.close();
      scratch = null;
    }
  }
}
