package dev.longctx.engine.cuda;

import dev.longctx.engine.tensor.GgmlType;

/**
 * Typed launches of the kernels in {@code longctx.cu}: grid shapes and argument order live here
 * only. Buffers are device addresses (so callers can pass row offsets); every launch is checked and
 * queued on the default stream.
 */
final class CudaKernels implements AutoCloseable {

  static final int THREADS = 256;

  /** Warps per block of the matrix-vector kernels: one warp per output row. */
  static final int MATVEC_WARPS = 8;

  /** Output rows per warp of matvec_split (SPLIT_ROWS in longctx.cu). */
  static final int SPLIT_ROWS = 2;

  /** Output rows per warp of matvec_kquant (KQ_ROWS in longctx.cu). */
  static final int KQUANT_ROWS = 2;

  /** Must match ATT_THREADS and MAX_HEAD_DIM in longctx.cu. */
  static final int ATTENTION_THREADS = 128;

  static final int MAX_HEAD_DIM = 256;

  /** Keys per block and the largest head dim of the tiled indexer kernel (longctx.cu). */
  static final int INDEXER_KEYS = 32;

  static final int INDEXER_MAX_DIM = 128;

  /** Keys from which the indexer scores go through a cuBLAS GEMM (when cuBLAS loads). */
  static final int INDEXER_GEMM_MIN_KEYS = 4096;

  /** Query rows per block and threads of the tensor-core prefill kernel (TC_ROWS in longctx.cu). */
  static final int TC_ROWS = 64;

  static final int TC_THREADS = 128;

  /** Rows from which dense attention runs on the tensor cores (sm_80+, head dim 64 or 128). */
  static final int TC_MIN_ROWS = 64;

  /** Keys per tile of the tensor-core kernel (TC_KEYS): its key splits are multiples of it. */
  static final int TC_KEYS = 64;

  /** Threads of a split-attention block (SPLIT_THREADS in longctx.cu). */
  static final int SPLIT_THREADS = 128;

  /** Must match TOPK_THREADS and TOPK_MAX in longctx.cu. */
  static final int TOPK_THREADS = 1024;

  static final int TOPK_MAX = 4096;

  /**
   * Shortest piece of a two-launch top-k: one block handles up to this many scores about as fast as
   * two launches would (measured on an H200, docs/PERFORMANCE.md).
   */
  static final int TOPK_MIN_CHUNK = 16384;

  private final CudaContext cx;
  private boolean tensorCores = true;
  private int tensorCoreHeadsPerBlock = 1;
  private boolean pipelinedPrefill;
  private boolean wideKQuants = true;

  /** Split attention partials, top-k candidates, indexer head products. */
  private final Scratch partials = new Scratch();

  private final Scratch candidates = new Scratch();
  private final Scratch products = new Scratch();

  CudaKernels(CudaContext cx) {
    this.cx = cx;
  }

  /**
   * Whether dense (causal or per-row range) chunks of {@value #TC_MIN_ROWS}+ rows use the
   * tensor-core kernel (FP16 products, FP32 softmax and accumulation; on by default) or the FP32
   * split kernel.
   */
  void setTensorCores(boolean enabled) {
    this.tensorCores = enabled;
  }

  /**
   * Query heads a tensor-core prefill block takes (1 or 2; 1 by default): 2 stages each K/V tile
   * once for two heads of a GQA group (half the cache traffic, twice the threads a block). Used
   * where the group size is even; {@code CudaBench} measures both.
   */
  void setTensorCoreHeadsPerBlock(int heads) {
    if (heads != 1 && heads != 2) {
      throw new IllegalArgumentException("heads per block must be 1 or 2, got " + heads);
    }
    this.tensorCoreHeadsPerBlock = heads;
  }

  /**
   * Whether tensor-core prefill over an F16 cache runs the pipelined kernel (cp.async K/V tiles
   * overlapping the products; the same tile math as the staged one, off by default until measured
   * against it, which {@code CudaBench} prints next to it). It takes one or two heads a block as
   * {@link #setTensorCoreHeadsPerBlock} says.
   */
  void setPipelinedPrefill(boolean enabled) {
    this.pipelinedPrefill = enabled;
  }

  /**
   * Whether Q4_K matrices (GGUF layout) multiply through matvec_kquant (16-byte loads, two rows a
   * warp; the default) or through matvec's older path, a super-block per warp step and a byte per
   * lane, which {@code CudaBench} measures beside it. Q6_K takes matvec_kquant in the split layout
   * and the older path in the GGUF layout.
   */
  void setWideKQuants(boolean enabled) {
    this.wideKQuants = enabled;
  }

  CudaContext context() {
    return cx;
  }

  private static int gridFor(long count) {
    return (int) Math.max(1, Math.min((count + THREADS - 1) / THREADS, 1 << 16));
  }

  /**
   * {@code y[t, :] = W · x[t, :]} for t < n: matvec for the GGUF layouts, matvec_split ({@value
   * #SPLIT_ROWS} rows per warp) for the split layout of Q8_0 / Q4_0, matvec_kquant ({@value
   * #KQUANT_ROWS}) for Q4_K and the split layout of Q6_K.
   */
  void matvec(DeviceTensor w, long x, long y, int n) {
    boolean split = w.layout() == DeviceTensor.Layout.SPLIT;
    boolean kquant = split && w.type() == GgmlType.Q6_K || wideKQuants && w.type() == GgmlType.Q4_K;
    if (kquant || split) {
      int rowsPerBlock = MATVEC_WARPS * (kquant ? KQUANT_ROWS : SPLIT_ROWS);
      cx.launch(
          kquant ? "matvec_kquant" : "matvec_split",
          (w.rows() + rowsPerBlock - 1) / rowsPerBlock,
          n,
          MATVEC_WARPS * 32,
          w.address(),
          w.scalesAddress(),
          w.kernelType(),
          x,
          y,
          w.rows(),
          w.cols(),
          n);
      return;
    }
    cx.launch(
        "matvec",
        (w.rows() + MATVEC_WARPS - 1) / MATVEC_WARPS,
        n,
        MATVEC_WARPS * 32,
        w.address(),
        w.kernelType(),
        x,
        y,
        w.rows(),
        w.cols(),
        n);
  }

  /**
   * Activations for {@link #matvecQuantized}: each 32-element block of the n rows of {@code x} [n,
   * cols] as int8 quants into {@code xq} [n, cols] and a float scale into {@code xd} [n, cols / 32]
   * (d = max |x| / 127, q = round-half-even(x / d)); cols a multiple of 32.
   */
  void quantizeRows(long x, long xq, long xd, int cols, int n) {
    checkInt8Width(cols);
    int warps = THREADS / 32;
    cx.launch("quantize_rows_q8", (cols / 32 + warps - 1) / warps, n, THREADS, x, xq, xd, cols, n);
  }

  /**
   * {@code y[t, :] = W · x[t, :]} for t < n, W one that {@link DeviceTensor#takesInt8Activations
   * takes int8 activations}, x given as {@link #quantizeRows}' quants and scales: integer products
   * (dp4a) scaled per block (matvec_split_q8x for Q8_0 / Q4_0, matvec_kquant_q8x for Q4_K / Q6_K).
   */
  void matvecQuantized(DeviceTensor w, long xq, long xd, long y, int n) {
    if (!w.takesInt8Activations()) {
      throw new IllegalArgumentException(
          "quantized activations need Q8_0, Q4_0 or Q6_K in the split layout or Q4_K, not "
              + w.type()
              + " in "
              + w.layout());
    }
    boolean blocks = w.splitBlocks();
    int rowsPerBlock = MATVEC_WARPS * (blocks ? SPLIT_ROWS : KQUANT_ROWS);
    cx.launch(
        blocks ? "matvec_split_q8x" : "matvec_kquant_q8x",
        (w.rows() + rowsPerBlock - 1) / rowsPerBlock,
        n,
        MATVEC_WARPS * 32,
        w.address(),
        w.scalesAddress(),
        w.kernelType(),
        xq,
        xd,
        y,
        w.rows(),
        w.cols(),
        n);
  }

  /** {@code out[t, :]} = row {@code tokens[t]} of the table, dequantized, for t < n. */
  void embed(DeviceTensor table, long tokens, long out, int n) {
    cx.launch(
        "embed_rows",
        n,
        1,
        THREADS,
        table.address(),
        table.scalesAddress(),
        table.kernelType(),
        tokens,
        out,
        table.cols());
  }

  /** {@code out} ← W dequantized to FP16 ({@code fp16}) or BF16, [rows, cols]. */
  void dequantizeToHalf(DeviceTensor w, long out, boolean fp16) {
    long elements = (long) w.rows() * w.cols();
    cx.launch(
        "dequantize_to_half",
        // Q8_0 / Q4_0's split layout: threads take 16 quant bytes each (16 or 32 elements)
        gridFor(w.splitBlocks() ? elements / 16 : elements),
        1,
        THREADS,
        w.address(),
        w.scalesAddress(),
        w.kernelType(),
        out,
        w.rows(),
        w.cols(),
        fp16 ? 1 : 0);
  }

  /** {@code out[i]} ← x[i] in FP16 ({@code fp16}) or BF16. */
  void toHalf(long x, long out, long count, boolean fp16) {
    cx.launch("float_to_half_kernel", gridFor(count), 1, THREADS, x, out, count, fp16 ? 1 : 0);
  }

  void rmsnorm(long out, long x, long weight, int n, int dim, float eps) {
    cx.launch("rmsnorm_rows", n, 1, THREADS, out, x, weight, dim, eps);
  }

  /**
   * {@link #rmsnorm}, also writing out's int8 form (as {@link #quantizeRows}) unless int8 is null.
   */
  void rmsnorm(long out, long x, long weight, int n, int dim, float eps, CudaModel.Int8 int8) {
    if (int8 == null) {
      rmsnorm(out, x, weight, n, dim, eps);
      return;
    }
    checkInt8Width(dim);
    cx.launch(
        "rmsnorm_rows_q8", n, 1, THREADS, out, x, weight, dim, eps, int8.quants(), int8.scales());
  }

  void swiglu(long gate, long up, long count) {
    cx.launch("swiglu", gridFor(count), 1, THREADS, gate, up, count);
  }

  /**
   * {@link #swiglu}, also writing the result's int8 form (as {@link #quantizeRows} over rows of any
   * multiple of 32) unless int8 is null.
   */
  void swiglu(long gate, long up, long count, CudaModel.Int8 int8) {
    if (int8 == null) {
      swiglu(gate, up, count);
      return;
    }
    if (count % 32 != 0) {
      throw new IllegalArgumentException("int8 activations need a multiple of 32, not " + count);
    }
    cx.launch(
        "swiglu_q8", gridFor(count), 1, THREADS, gate, up, count, int8.quants(), int8.scales());
  }

  private static void checkInt8Width(int cols) {
    if (cols % 32 != 0) {
      throw new IllegalArgumentException("quantized activations need cols % 32 == 0, not " + cols);
    }
  }

  void add(long dst, long src, long count) {
    cx.launch("add_inplace", gridFor(count), 1, THREADS, dst, src, count);
  }

  void addBias(long y, long bias, int width, int n) {
    long total = (long) width * n;
    cx.launch("add_bias_rows", gridFor(total), 1, THREADS, y, bias, width, total);
  }

  /** RoPE of n rows of {@code heads} heads (row t at x + t·rowStride floats) to positions[t]. */
  void rope(
      long x,
      long positions,
      long invFreq,
      int n,
      int heads,
      int headDim,
      int rowStride,
      boolean interleaved) {
    cx.launch(
        "rope_rows",
        n,
        1,
        THREADS,
        x,
        positions,
        invFreq,
        heads,
        headDim,
        rowStride,
        interleaved ? 1 : 0);
  }

  /** Positions [start, start + n) of a paged cache layer → dst ([n, kvDim]): kvStore's inverse. */
  void kvGather(
      long pageTable, int pageSize, KvCacheType type, long dst, int start, int n, int kvDim) {
    cx.launch(
        "kv_gather" + type.kernelSuffix(),
        gridFor((long) n * kvDim),
        1,
        THREADS,
        pageTable,
        pageSize,
        dst,
        start,
        n,
        kvDim);
  }

  /**
   * Rows [0, n) of src ([n, kvDim]) → positions [start, start + n) of a paged cache layer (rounded
   * to half for an F16 cache).
   */
  void kvStore(
      long pageTable, int pageSize, KvCacheType type, long src, int start, int n, int kvDim) {
    cx.launch(
        "kv_store" + type.kernelSuffix(),
        gridFor((long) n * kvDim),
        1,
        THREADS,
        pageTable,
        pageSize,
        src,
        start,
        n,
        kvDim);
  }

  void softmax(long x, int rows, int n) {
    cx.launch("softmax_rows", rows, 1, THREADS, x, n);
  }

  /** out[row] (int) = first index of the row's maximum, −1 if none. */
  void argmax(long x, int rows, int n, long out) {
    cx.launch("argmax_rows", rows, 1, THREADS, x, n, out);
  }

  /**
   * Attention of n query rows × heads over a paged cache layer. Row t's keys: when {@code selected}
   * ≠ 0, the {@code count} selected positions of its list (−1 skipped); else, when {@code ranges} ≠
   * 0 (int [n, 2] on the device), the positions [ranges[2t], ranges[2t + 1]) (an empty range gives
   * output 0 and LSE −∞); else, causally, positions [0, causalStart + t]. In ranges mode, count is
   * the longest range's length (it sizes the key splits; no range may be longer). Writes out [n,
   * heads, headDim] normalized and, when lse ≠ 0, lse [n, heads].
   *
   * <p>Without {@code selected}, chunks of {@value #TC_MIN_ROWS}+ rows with head dim 64 or 128 run
   * on the tensor-core kernel on sm_80+ (FP16 products, FP32 softmax; unless {@link
   * #setTensorCores} turned it off), causal or ranges alike — over an F16 cache the pipelined one
   * when {@link #setPipelinedPrefill} chose it; the rest on the FP32 kernels. In ranges mode the
   * tensor-core kernel stages, per block of {@value #TC_ROWS} rows, every slot between its rows'
   * lowest first and highest end, so those slots must hold stored (finite) keys and values even
   * where no row of the block sees them. The cache's elements are {@code type} (the kernels read
   * F16 pages widened to float).
   *
   * <p>Where the output comes from attention_combine (the split-K kernels, and the tensor-core
   * kernel with key splits) and {@code int8Out} is not null, the combine also writes out's int8
   * form there (CudaModel's int8 activations). Returns whether it did.
   */
  boolean attention(
      long q,
      long kPages,
      long vPages,
      int pageSize,
      KvCacheType type,
      long out,
      long lse,
      int n,
      int heads,
      int kvHeads,
      int headDim,
      float scale,
      int causalStart,
      long ranges,
      long selected,
      int count,
      int selStride,
      boolean perKvHead,
      CudaModel.Int8 int8Out) {
    if (headDim > MAX_HEAD_DIM) {
      throw new IllegalArgumentException(
          "headDim " + headDim + " exceeds the attention kernel's " + MAX_HEAD_DIM);
    }
    if (heads % kvHeads != 0) {
      throw new IllegalArgumentException(heads + " heads are not a multiple of " + kvHeads);
    }
    if (selected == 0
        && tensorCores
        && n >= TC_MIN_ROWS
        && (headDim == 64 || headDim == 128)
        && cx.computeCapability() >= 80) {
      // Split the keys when the row tiles alone leave the device short of blocks (a few rows
      // over a long context), merging the splits' partials as the decode path does. A block's
      // splits cut the span of its rows' keys from its start (the last split takes any rest).
      int longest = ranges != 0 ? count : causalStart + n;
      boolean pipelined = pipelinedPrefill && type == KvCacheType.F16;
      int perBlock = (heads / kvHeads) % tensorCoreHeadsPerBlock == 0 ? tensorCoreHeadsPerBlock : 1;
      KeySplits ks = keySplits(ceilDiv(n, TC_ROWS) * heads / perBlock, longest, 2048, TC_KEYS);
      int splits = ks.splits();
      long rows = (long) n * heads;
      long partO = splits > 1 ? partials.address(rows * splits * (headDim + 2L) * Float.BYTES) : 0L;
      long partML = splits > 1 ? partO + rows * splits * headDim * Float.BYTES : 0L;
      cx.launch(
          "attention_prefill_"
              + (pipelined ? "pipe" : "tc")
              + (perBlock == 2 ? "2_d" : "_d")
              + headDim
              + type.kernelSuffix(),
          ceilDiv(n, TC_ROWS),
          heads / perBlock * splits,
          TC_THREADS * perBlock,
          q,
          kPages,
          vPages,
          pageSize,
          out,
          lse,
          n,
          heads,
          kvHeads,
          scale,
          causalStart,
          ranges,
          splits,
          ks.keysPerSplit(),
          partO,
          partML);
      if (splits > 1) {
        return combine(partO, partML, out, lse, rows, headDim, splits, int8Out);
      }
      return false;
    }
    int group = heads / kvHeads;
    int groupBound = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : group <= 8 ? 8 : 0;
    if (groupBound == 0 || (headDim != 64 && headDim != 128)) {
      cx.launch(
          "attention" + type.kernelSuffix(),
          n,
          heads,
          ATTENTION_THREADS,
          q,
          kPages,
          vPages,
          pageSize,
          out,
          lse,
          heads,
          kvHeads,
          headDim,
          scale,
          causalStart,
          ranges,
          selected,
          count,
          selStride,
          perKvHead ? 1 : 0);
      return false;
    }
    // Flash decoding: a single row's keys are split over enough blocks to fill the device; a
    // prefill chunk of many rows fills it without splitting.
    int rowBlocks = n * kvHeads;
    int longest = selected != 0 || ranges != 0 ? count : causalStart + n;
    KeySplits ks = keySplits(rowBlocks, longest, 64, 16);
    int splits = ks.splits();
    long rows = (long) n * heads;
    long partO = partials.address(rows * splits * (headDim + 2L) * Float.BYTES);
    long partML = partO + rows * splits * headDim * Float.BYTES;
    cx.launch(
        "attention_split_g" + groupBound + "_d" + headDim + type.kernelSuffix(),
        rowBlocks,
        splits,
        SPLIT_THREADS,
        q,
        kPages,
        vPages,
        pageSize,
        partO,
        partML,
        heads,
        kvHeads,
        scale,
        causalStart,
        ranges,
        selected,
        count,
        selStride,
        perKvHead ? 1 : 0,
        splits,
        ks.keysPerSplit());
    return combine(partO, partML, out, lse, rows, headDim, splits, int8Out);
  }

  /** How a row's keys are cut: {@code splits} ranges of {@code keysPerSplit} (the last shorter). */
  private record KeySplits(int splits, int keysPerSplit) {}

  /**
   * Cuts {@code longest} keys (at most 0: none) so that the {@code rowBlocks} blocks times the
   * splits make about four blocks per multiprocessor, each range at least {@code minKeys} long and
   * a multiple of {@code granule}.
   */
  private KeySplits keySplits(int rowBlocks, int longest, int minKeys, int granule) {
    int keys = Math.max(longest, 1);
    int splits =
        Math.max(1, Math.min(ceilDiv(4 * cx.multiprocessors(), rowBlocks), ceilDiv(keys, minKeys)));
    int keysPerSplit = ceilDiv(ceilDiv(keys, splits), granule) * granule;
    return new KeySplits(ceilDiv(keys, keysPerSplit), keysPerSplit);
  }

  /** out, lse ← the LSE merge of the splits' partials (attention_combine). */
  private boolean combine(
      long partO,
      long partML,
      long out,
      long lse,
      long rows,
      int headDim,
      int splits,
      CudaModel.Int8 int8Out) {
    if (int8Out != null && headDim % 32 == 0) {
      cx.launch(
          "attention_combine_q8",
          (int) rows,
          1,
          ATTENTION_THREADS,
          partO,
          partML,
          out,
          lse,
          headDim,
          splits,
          int8Out.quants(),
          int8Out.scales());
      return true;
    }
    cx.launch(
        "attention_combine",
        (int) rows,
        1,
        ATTENTION_THREADS,
        partO,
        partML,
        out,
        lse,
        headDim,
        splits);
    return false;
  }

  private static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }

  /**
   * Device memory one kind of intermediate reuses from launch to launch (all work runs on one
   * stream, in order), grown when a call needs more.
   */
  private final class Scratch {
    private DeviceBuffer buffer;

    /** The address of at least {@code bytes} of this scratch. */
    long address(long bytes) {
      if (buffer == null || buffer.bytes() < bytes) {
        close();
        buffer = cx.alloc(Math.max(bytes, 1L << 20));
      }
      return buffer.address();
    }

    void close() {
      if (buffer != null) {
        buffer.close();
        buffer = null;
      }
    }
  }

  /** Frees the scratch memory. */
  @Override
  public void close() {
    partials.close();
    candidates.close();
    products.close();
  }

  /** scores[t, s] = scale · Σ_j w[t, j]·ReLU(q[t, j]·k[s]) for s < len, t < n. */
  void indexerScores(
      long q, long w, long keys, int len, int n, int heads, int headDim, float scale, long scores) {
    CudaBlas blas = len >= INDEXER_GEMM_MIN_KEYS ? cx.blas() : null;
    if (blas != null) {
      // y [n·heads, len] = q·Kᵀ in one FP32 GEMM (every head against every key), then the
      // weighted ReLU sum over heads per key.
      long rowsOfQ = (long) n * heads;
      long y = products.address(rowsOfQ * len * Float.BYTES);
      blas.gemm(CudaBlas.Precision.FP32, keys, q, y, len, headDim, (int) rowsOfQ);
      cx.launch(
          "indexer_reduce",
          (len + THREADS - 1) / THREADS,
          n,
          THREADS,
          y,
          w,
          len,
          heads,
          scale,
          scores);
      return;
    }
    if (headDim % 4 == 0 && headDim <= INDEXER_MAX_DIM && q % 16 == 0) {
      cx.launch(
          "indexer_scores_tiled",
          (len + INDEXER_KEYS - 1) / INDEXER_KEYS,
          n,
          32 * Math.min(8, heads),
          q,
          w,
          keys,
          len,
          heads,
          headDim,
          scale,
          scores);
      return;
    }
    cx.launch(
        "indexer_scores",
        (len + THREADS - 1) / THREADS,
        n,
        THREADS,
        q,
        w,
        keys,
        len,
        heads,
        headDim,
        scale,
        scores);
  }

  /**
   * Per row of scores [rows, n]: the top-k positions (−1 padded) and scores (−∞ padded), best
   * first.
   */
  void topk(long scores, int rows, int n, int k, long outPositions, long outScores) {
    topk(scores, rows, n, k, outPositions, outScores, 0L, true);
  }

  /**
   * {@link #topk(long, int, int, int, long, long)} where element i of a row stands for position
   * {@code positions[row·n + i]} (int [rows, n] on the device, −1 for no position; its score must
   * be −∞), or for position i when {@code positions} is 0; best first when {@code sorted}, else in
   * row order (the same set without the sort: what an attention list needs; for positions i, they
   * ascend).
   */
  void topk(
      long scores,
      int rows,
      int n,
      int k,
      long outPositions,
      long outScores,
      long positions,
      boolean sorted) {
    if (k <= 0 || k > TOPK_MAX) {
      throw new IllegalArgumentException("k must be in [1, " + TOPK_MAX + "], got " + k);
    }
    int order = sorted ? 1 : 0;
    // Pieces of about √(n·k) balance the two launches (each block's work is its piece, then the
    // candidates); a row short enough is done by one block.
    int chunk =
        Math.max(
            Math.max(2 * k, TOPK_MIN_CHUNK),
            ceilDiv((int) Math.ceil(Math.sqrt((double) n * k)), 1024) * 1024);
    if (chunk >= n) {
      cx.launch(
          "topk_rows",
          rows,
          1,
          TOPK_THREADS,
          scores,
          n,
          k,
          outPositions,
          outScores,
          positions,
          n,
          order);
      return;
    }
    int chunks = ceilDiv(n, chunk);
    int perRow = chunks * k;
    long candidatePositions = candidates.address((long) rows * perRow * 8);
    long candidateScores = candidatePositions + (long) rows * perRow * 4;
    // the pieces' candidates need no order: the second launch ranks them
    cx.launch(
        "topk_rows",
        rows * chunks,
        1,
        TOPK_THREADS,
        scores,
        n,
        k,
        candidatePositions,
        candidateScores,
        positions,
        chunk,
        0);
    cx.launch(
        "topk_rows",
        rows,
        1,
        TOPK_THREADS,
        candidateScores,
        perRow,
        k,
        outPositions,
        outScores,
        candidatePositions,
        perRow,
        order);
  }

  // ---- fused steps (CudaModel): fewer launches per layer ----

  /**
   * RoPE of n rows' q ([n, heads, headDim]) and k ([n, kvHeads, headDim]) to positions[t], then the
   * rotated k rows and the v rows stored at slots [start, start + n) of a paged cache layer: the
   * four launches rope(q), rope(k), kvStore(k), kvStore(v) in one, with the same results.
   */
  void ropeStore(
      long q,
      long k,
      long v,
      long positions,
      long invFreq,
      int n,
      int heads,
      int kvHeads,
      int headDim,
      boolean interleaved,
      long kPages,
      long vPages,
      int pageSize,
      KvCacheType type,
      int start) {
    cx.launch(
        "rope_store_rows" + type.kernelSuffix(),
        n,
        1,
        THREADS,
        q,
        k,
        v,
        positions,
        invFreq,
        heads,
        kvHeads,
        headDim,
        interleaved ? 1 : 0,
        kPages,
        vPages,
        pageSize,
        start);
  }

  /** x += delta, then out = RMSNorm(x)·weight per row (add then rmsnorm; out may be delta). */
  void addRmsnorm(long x, long delta, long out, long weight, int n, int dim, float eps) {
    cx.launch("add_rmsnorm_rows", n, 1, THREADS, x, delta, out, weight, dim, eps);
  }

  /** {@link #addRmsnorm}, also writing out's int8 form unless int8 is null ({@link #rmsnorm}). */
  void addRmsnorm(
      long x, long delta, long out, long weight, int n, int dim, float eps, CudaModel.Int8 int8) {
    if (int8 == null) {
      addRmsnorm(x, delta, out, weight, n, dim, eps);
      return;
    }
    checkInt8Width(dim);
    cx.launch(
        "add_rmsnorm_rows_q8",
        n,
        1,
        THREADS,
        x,
        delta,
        out,
        weight,
        dim,
        eps,
        int8.quants(),
        int8.scales());
  }

  // ---- SelfExtend (CudaModel) ----

  /**
   * SelfExtend's LSE merge (ALGORITHMS.md §4.2) of {@code rows} (query row, head) partials: {@code
   * out} holds the neighbor outputs [rows, headDim] and receives the merged ones; {@code grouped}
   * the grouped outputs; {@code lseNeighbor}, {@code lseGrouped} [rows].
   */
  void selfExtendMerge(
      long out, long grouped, long lseNeighbor, long lseGrouped, int rows, int headDim) {
    cx.launch(
        "selfextend_merge",
        rows,
        1,
        ATTENTION_THREADS,
        out,
        grouped,
        lseNeighbor,
        lseGrouped,
        headDim);
  }

  // ---- sparse selection (CudaSelector) ----

  /** Threads of the selection kernels that reduce over a block (SEL_THREADS in longctx.cu). */
  static final int SELECTION_THREADS = 128;

  /** Warps per block and largest GQA group of the warp-per-item selection kernels (longctx.cu). */
  static final int SELECTION_WARPS = 8;

  static final int MAX_SELECTION_GROUP = 16;

  /**
   * Folds the keys of positions [start, start + n) ({@code keys} [n, kvDim]) into per-block min,
   * max and (when {@code sum} ≠ 0) sum summaries of {@code blockSize} tokens.
   */
  void blockSummaryPut(
      long min, long max, long sum, long keys, int start, int n, int blockSize, int kvDim) {
    int touched = (start + n - 1) / blockSize - start / blockSize + 1;
    cx.launch(
        "block_summary_put",
        touched,
        ceilDiv(kvDim, THREADS),
        THREADS,
        min,
        max,
        sum,
        keys,
        start,
        n,
        blockSize,
        kvDim);
  }

  /**
   * Block top-k scores [n·kvHeads, rowLength] of query rows at positions start.. against the
   * complete blocks before each row's own (Quest bound or MoBA mean), −∞ for the others.
   */
  void blockScores(
      long q,
      long min,
      long max,
      long sum,
      int start,
      int n,
      int heads,
      int kvHeads,
      int headDim,
      int blockSize,
      boolean quest,
      int rowLength,
      long scores) {
    checkGroup(heads, kvHeads);
    cx.launch(
        "block_scores",
        n * kvHeads,
        ceilDiv(rowLength, SELECTION_WARPS),
        32 * SELECTION_WARPS,
        q,
        min,
        max,
        sum,
        start,
        heads,
        kvHeads,
        headDim,
        blockSize,
        quest ? 1 : 0,
        rowLength,
        scores);
  }

  /** Key lists [rows, count] of block top-k from the chosen blocks [rows, topBlocks − 1]. */
  void blockExpand(
      long chosen,
      int rows,
      int start,
      int kvHeads,
      int blockSize,
      int topBlocks,
      int count,
      long lists) {
    cx.launch(
        "block_expand",
        rows,
        1,
        THREADS,
        chosen,
        start,
        kvHeads,
        blockSize,
        topBlocks,
        count,
        lists);
  }

  /**
   * SelfExtend's split of key lists ({@code rows} lists of {@code perRow}, {@code rowsPerQuery} per
   * query row) into neighbor and grouped lists at each query's neighbor start.
   */
  void selectionSplit(
      long lists,
      int rows,
      int perRow,
      int rowsPerQuery,
      int start,
      int window,
      boolean llamacpp,
      long neighbor,
      long grouped) {
    long total = (long) rows * perRow;
    cx.launch(
        "selection_split",
        gridFor(total),
        1,
        THREADS,
        lists,
        total,
        perRow,
        rowsPerQuery,
        start,
        window,
        llamacpp ? 1 : 0,
        neighbor,
        grouped);
  }

  /**
   * INT8 keys and per-row scales of the n key rows at {@code keys}, stored at positions start...
   */
  void quantizeKeys(
      long keys, int n, int start, int kvHeads, int headDim, long values, long scales) {
    cx.launch("quantize_keys", n * kvHeads, 1, 32, keys, start, kvHeads, headDim, values, scales);
  }

  /**
   * Stage 1 of the own-heads selector: per (row, head) the page bounds (page_bounds), then their
   * softmax over the row's pages (softmax_rows_double) into {@code probs} [n, heads, rowLength].
   */
  void pageProbs(
      long qn,
      long qg,
      long min,
      long max,
      long groupMin,
      long groupMax,
      int start,
      int n,
      int heads,
      int kvHeads,
      int headDim,
      int page,
      int window,
      boolean llamacpp,
      float scale,
      int rowLength,
      long probs) {
    checkGroup(heads, kvHeads);
    cx.launch(
        "page_bounds",
        n * kvHeads,
        ceilDiv(rowLength, SELECTION_WARPS),
        32 * SELECTION_WARPS,
        qn,
        qg,
        min,
        max,
        groupMin,
        groupMax,
        start,
        heads,
        kvHeads,
        headDim,
        page,
        window,
        llamacpp ? 1 : 0,
        scale,
        rowLength,
        probs);
    softmaxRowsDouble(probs, n * heads, rowLength);
  }

  /** Stage 1's page weights [n, rowLength]: head sums, forced pages +∞, later pages −∞. */
  void pageWeights(
      long probs,
      int start,
      int n,
      int heads,
      int page,
      int sinks,
      int local,
      int rowLength,
      long w) {
    cx.launch(
        "page_weights",
        n,
        ceilDiv(rowLength, THREADS),
        THREADS,
        probs,
        start,
        heads,
        page,
        sinks,
        local,
        rowLength,
        w);
  }

  /** Stage 2's candidate positions [n, perRow] from the kept pages [n, keep]. */
  void gatherCandidates(long kept, int start, int n, int keep, int page, int perRow, long cand) {
    cx.launch("gather_candidates", n, 1, THREADS, kept, start, keep, page, perRow, cand);
  }

  /**
   * Stage 2: per (row, head) the INT8 key logits of the candidates (candidate_logits), then their
   * softmax (softmax_rows_double) into {@code z} [n, heads, perRow].
   */
  void candidateProbs(
      long qn,
      long qg,
      long values,
      long scales,
      long groupValues,
      long groupScales,
      long cand,
      int start,
      int n,
      int heads,
      int kvHeads,
      int headDim,
      int window,
      boolean llamacpp,
      float scale,
      int perRow,
      long z) {
    checkGroup(heads, kvHeads);
    cx.launch(
        "candidate_logits",
        n * kvHeads,
        ceilDiv(perRow, SELECTION_WARPS),
        32 * SELECTION_WARPS,
        qn,
        qg,
        values,
        scales,
        groupValues,
        groupScales,
        cand,
        start,
        heads,
        kvHeads,
        headDim,
        window,
        llamacpp ? 1 : 0,
        scale,
        perRow,
        z);
    softmaxRowsDouble(z, n * heads, perRow);
  }

  /** In-place softmax of rows [rows, n] with the sum in double; −∞ entries → 0. */
  void softmaxRowsDouble(long x, int rows, int n) {
    int threads = Math.min(1024, Integer.highestOneBit(Math.max(32, n)));
    cx.launch("softmax_rows_double", rows, 1, threads, x, n);
  }

  /** The warp-per-item selection kernels hold up to {@value #MAX_SELECTION_GROUP} heads a lane. */
  private static void checkGroup(int heads, int kvHeads) {
    if (heads / kvHeads > MAX_SELECTION_GROUP) {
      throw new IllegalArgumentException(
          "GQA groups of "
              + heads / kvHeads
              + " query heads exceed the GPU selection's "
              + MAX_SELECTION_GROUP);
    }
  }

  /** Stage 2's candidate scores [n, perRow]: head sums, forced tokens +∞, no candidate −∞. */
  void candidateWeights(
      long z, long cand, int start, int n, int heads, int sinks, int local, int perRow, long p) {
    cx.launch(
        "candidate_weights",
        n,
        ceilDiv(perRow, THREADS),
        THREADS,
        z,
        cand,
        start,
        heads,
        sinks,
        local,
        perRow,
        p);
  }

  /**
   * The lightning indexer's RoPE: n rows (row t at x + t·rowStride floats) of {@code heads} heads
   * {@code headStride} floats apart, the first {@code rotDims} of each rotated (rotate-half) to
   * positions[t].
   */
  void ropePrefix(
      long x,
      long positions,
      long invFreq,
      int n,
      int heads,
      int rotDims,
      int headStride,
      int rowStride) {
    cx.launch(
        "rope_prefix_rows",
        n,
        1,
        THREADS,
        x,
        positions,
        invFreq,
        heads,
        rotDims,
        headStride,
        rowStride);
  }

  /** In-place LayerNorm of n rows of width dim (γ, and β unless 0). */
  void layerNorm(long x, int n, int dim, long gamma, long beta) {
    cx.launch("layernorm_rows", n, 1, SELECTION_THREADS, x, dim, gamma, beta);
  }

  /**
   * Scores [n, len] whose row t sees keys [0, visible[t]) only (int [n] on the device; a shard's
   * slots ascend by position, so a query's visible keys are a prefix): the rest → −∞.
   */
  void maskBeyond(long scores, int n, int len, long visible) {
    cx.launch("mask_beyond", n, ceilDiv(len, THREADS), THREADS, scores, len, visible);
  }

  /** Scores [n, len] of query rows at positions start..: keys after a row's position → −∞. */
  void maskFuture(long scores, int n, int len, int start) {
    cx.launch("mask_future", n, ceilDiv(len, THREADS), THREADS, scores, len, start);
  }
}
