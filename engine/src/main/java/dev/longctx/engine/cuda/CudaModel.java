package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The Llama-family decoder on one GPU, step for step the CPU {@code Transformer} / {@link
 * TransformerLayers} (embed → per layer: RMSNorm, q/k/v projections (+ biases), RoPE, KV store,
 * causal GQA attention, output projection, residual, RMSNorm, SwiGLU FFN, residual → final RMSNorm
 * and vocabulary projection). Weights are uploaded once in their GGUF types; the KV cache is {@link
 * CudaKvCache} (paged).
 *
 * <p>Attention runs under an {@link AttentionPolicy}, chosen as on the CPU: the model's default
 * ({@link #withAttention}) or per sequence ({@link #newSequence(int, AttentionPolicy)}). Dense and
 * SelfExtend (ALGORITHMS.md §2, both position modes) run here, with the CPU {@code
 * SequenceAttention}'s math: the neighbor keys at their own positions and the grouped keys at ⌊j/G⌋
 * (a second rotated key array, §2.4 design 1) are attended separately and merged by the LSE rule
 * (§4.2). The top-k policies (indexer top-k with the own-heads selector or a model-file lightning
 * indexer, block top-k) select each sparse query's keys on the device ({@link CudaSelector}: the
 * selector state beside the KV cache, the scores and the top-k in kernels) and attend over the
 * selected keys with the same kernels, as the CPU {@code SequenceAttention} does.
 *
 * <p>Decode (one token) uses the matrix-vector kernels, reading each weight byte once. Prefill
 * chunks of at least {@value #GEMM_MIN_ROWS} tokens use cuBLAS (FP16 for quantized and FP16
 * weights, BF16 for BF16, FP32 for F32; FP32 accumulation) when libcublas loads, else the
 * matrix-vector kernel per token. Thread-safe: sequences, steps and releases of a model and its
 * {@link #withAttention} views take one lock (they share the device scratch, and the device runs
 * one stream anyway), so a server may drive several requests from several threads.
 */
public final class CudaModel implements Decoder<CudaSequence>, AutoCloseable {

  /**
   * Prefill chunk: larger than the CPU's 128 so each GEMM (and each dequantization of a quantized
   * weight for it) serves more tokens.
   */
  public static final int CHUNK = 512;

  /** −∞ as float bits (an empty attention partial's LSE). */
  private static final int NEG_INF_BITS = 0xff800000;

  /** Rows from which a projection goes to cuBLAS. */
  static final int GEMM_MIN_ROWS = 16;

  private final CudaContext cx;
  private final CudaKernels k;
  private final LlamaConfig config;
  private final AttentionPolicy defaultPolicy;

  /** The model whose device memory a {@link #withAttention} view shares, or null. */
  private final CudaModel base;

  /** Serializes device work: the base model's, shared by its views. */
  private final Object lock;

  private final float attentionScale;
  private final boolean interleaved;
  private final DeviceTensor embedding;
  private final DeviceTensor output;
  private final DeviceBuffer outputNorm;
  private final DeviceBuffer invFreq;
  private final List<Layer> layers = new ArrayList<>();
  private final List<AutoCloseable> owned = new ArrayList<>();
  private final Map<LightningIndexer, DeviceIndexer> indexers = new IdentityHashMap<>();
  private final long largestMatrix;
  private DeviceBuffer weightScratch;
  private DeviceBuffer attendScratch;
  private boolean gemmEnabled = true;
  private boolean quantizedActivations;
  private KvCacheType kvCacheType = KvCacheType.F32;
  private boolean decodeGraphs;
  private boolean ownsContext;

  private record Layer(
      DeviceBuffer attnNorm,
      DeviceTensor wq,
      DeviceTensor wk,
      DeviceTensor wv,
      DeviceTensor wo,
      DeviceBuffer bq,
      DeviceBuffer bk,
      DeviceBuffer bv,
      DeviceBuffer ffnNorm,
      DeviceTensor wGate,
      DeviceTensor wUp,
      DeviceTensor wDown,
      // decode's leading stack: q/k/v, or q/k where v's type differs (null: none stackable)
      DeviceTensor qkv,
      DeviceTensor gateUp) {}

  /** Uploads {@code weights} to the device of {@code cx}; the context must outlive the model. */
  public CudaModel(CudaContext cx, LlamaConfig config, LlamaWeights weights) {
    TransformerLayers cpu = new TransformerLayers(config, weights); // checks shapes, builds RoPE
    this.cx = cx;
    this.k = new CudaKernels(cx);
    owned.add(k);
    this.config = config;
    this.defaultPolicy = AttentionPolicy.dense();
    this.base = null;
    this.lock = new Object();
    this.attentionScale = (float) (1.0 / Math.sqrt(config.headDim()));
    Rope rope = cpu.rope();
    this.interleaved = rope.layout() == Rope.Layout.INTERLEAVED;
    double[] freqs = new double[config.headDim() / 2];
    for (int i = 0; i < freqs.length; i++) {
      freqs[i] = rope.frequency(i);
    }
    Map<FloatTensor, DeviceTensor> uploaded = new IdentityHashMap<>();
    try {
      this.invFreq = own(cx.upload(freqs));
      this.embedding = tensor(uploaded, weights.tokenEmbedding(), "token_embd");
      this.output = tensor(uploaded, weights.output(), "output");
      this.outputNorm = own(cx.upload(weights.outputNorm()));
      long largest = 0;
      for (int l = 0; l < config.layers(); l++) {
        LlamaWeights.Layer w = weights.layers().get(l);
        String p = "blk." + l + ".";
        // Decode reads q/k/v and gate/up each as one stacked matrix (one launch, more rows);
        // prefill uses their row ranges. Where v's type differs from q's and k's (llama.cpp's
        // Q4_K_M gives attn_v Q6_K), q and k are stacked and v read apart.
        List<FloatTensor> qkvParts = List.of(w.wq(), w.wk(), w.wv());
        List<FloatTensor> qkParts = List.of(w.wq(), w.wk());
        List<FloatTensor> gateUpParts = List.of(w.wGate(), w.wUp());
        List<FloatTensor> leading =
            DeviceTensor.stackable(qkvParts)
                ? qkvParts
                : DeviceTensor.stackable(qkParts) ? qkParts : null;
        DeviceTensor qkv =
            leading == null
                ? null
                : own(
                    DeviceTensor.stack(
                        cx, leading, p + (leading == qkvParts ? "attn_qkv" : "attn_qk")));
        DeviceTensor gateUp =
            DeviceTensor.stackable(gateUpParts)
                ? own(DeviceTensor.stack(cx, gateUpParts, p + "ffn_gate_up"))
                : null;
        int qRows = w.wq().rows();
        int kRows = w.wk().rows();
        int hidden = w.wGate().rows();
        Layer layer =
            new Layer(
                own(cx.upload(w.attnNorm())),
                qkv != null ? qkv.rows(0, qRows) : tensor(uploaded, w.wq(), p + "attn_q"),
                qkv != null ? qkv.rows(qRows, kRows) : tensor(uploaded, w.wk(), p + "attn_k"),
                leading == qkvParts
                    ? qkv.rows(qRows + kRows, w.wv().rows())
                    : tensor(uploaded, w.wv(), p + "attn_v"),
                tensor(uploaded, w.wo(), p + "attn_output"),
                w.bq() == null ? null : own(cx.upload(w.bq())),
                w.bk() == null ? null : own(cx.upload(w.bk())),
                w.bv() == null ? null : own(cx.upload(w.bv())),
                own(cx.upload(w.ffnNorm())),
                gateUp != null
                    ? gateUp.rows(0, hidden)
                    : tensor(uploaded, w.wGate(), p + "ffn_gate"),
                gateUp != null
                    ? gateUp.rows(hidden, w.wUp().rows())
                    : tensor(uploaded, w.wUp(), p + "ffn_up"),
                tensor(uploaded, w.wDown(), p + "ffn_down"),
                qkv,
                gateUp);
        layers.add(layer);
        for (DeviceTensor t :
            List.of(layer.wq, layer.wk, layer.wv, layer.wo, layer.wGate, layer.wUp, layer.wDown)) {
          largest = Math.max(largest, (long) t.rows() * t.cols());
        }
      }
      this.largestMatrix = largest;
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /** A view of {@code base} (its device weights) with {@code policy} as default. */
  private CudaModel(CudaModel base, AttentionPolicy policy) {
    this.cx = base.cx;
    this.k = base.k;
    this.config = base.config;
    this.defaultPolicy = policy;
    this.base = base.base != null ? base.base : base;
    this.lock = base.lock;
    this.attentionScale = base.attentionScale;
    this.interleaved = base.interleaved;
    this.invFreq = base.invFreq;
    this.embedding = base.embedding;
    this.output = base.output;
    this.outputNorm = base.outputNorm;
    this.layers.addAll(base.layers);
    this.largestMatrix = base.largestMatrix;
    this.gemmEnabled = base.gemmEnabled;
    this.kvCacheType = base.kvCacheType;
    this.decodeGraphs = base.decodeGraphs;
    this.quantizedActivations = base.quantizedActivations;
  }

  /**
   * Opens device 0 and uploads the model there; closing the model closes the device context too.
   * Fails with the reason when CUDA is not usable.
   */
  public static CudaModel open(LlamaConfig config, LlamaWeights weights) {
    CudaContext cx = CudaContext.open();
    try {
      CudaModel m = new CudaModel(cx, config, weights);
      m.ownsContext = true;
      return m;
    } catch (RuntimeException e) {
      cx.close();
      throw e;
    }
  }

  private <T extends AutoCloseable> T own(T resource) {
    owned.add(resource);
    return resource;
  }

  /**
   * A model-file lightning indexer's weights on the device (per layer: W_q, W_k, the head-weight
   * projection, LayerNorm γ and β) and the inverse frequencies of its RoPE.
   */
  record DeviceIndexer(
      List<DeviceTensor> wq,
      List<DeviceTensor> wk,
      List<DeviceTensor> weightsProj,
      List<DeviceBuffer> normWeight,
      List<DeviceBuffer> normBias,
      DeviceBuffer invFreq,
      int heads,
      int headDim,
      int ropeDims,
      float scale) {

    /** Layer l's LayerNorm β, or 0 for none. */
    long normBiasAddress(int l) {
      DeviceBuffer b = normBias.get(l);
      return b == null ? 0L : b.address();
    }
  }

  /**
   * {@code indexer} uploaded once (by the base model, shared by its views and sequences), after
   * checking that it fits this model as the CPU {@code SequenceAttention} does.
   */
  DeviceIndexer deviceIndexer(LightningIndexer indexer) {
    CudaModel m = base != null ? base : this;
    DeviceIndexer d = m.indexers.get(indexer);
    if (d != null) {
      return d;
    }
    if (indexer.layers() != config.layers() || indexer.dim() != config.dim()) {
      throw new IllegalArgumentException(
          "the indexer has "
              + indexer.layers()
              + " layers of input width "
              + indexer.dim()
              + ", the model "
              + config.layers()
              + " of width "
              + config.dim());
    }
    Map<FloatTensor, DeviceTensor> uploaded = new IdentityHashMap<>();
    List<DeviceTensor> wq = new ArrayList<>();
    List<DeviceTensor> wk = new ArrayList<>();
    List<DeviceTensor> proj = new ArrayList<>();
    List<DeviceBuffer> gamma = new ArrayList<>();
    List<DeviceBuffer> beta = new ArrayList<>();
    for (int l = 0; l < indexer.layers(); l++) {
      LightningIndexer.Layer y = indexer.layer(l);
      String p = "indexer." + l + ".";
      wq.add(m.tensor(uploaded, y.wq(), p + "wq"));
      wk.add(m.tensor(uploaded, y.wk(), p + "wk"));
      proj.add(m.tensor(uploaded, y.weightsProj(), p + "weights_proj"));
      gamma.add(m.own(cx.upload(y.kNormWeight())));
      beta.add(y.kNormBias() == null ? null : m.own(cx.upload(y.kNormBias())));
    }
    double[] freqs = new double[indexer.ropeDims() / 2];
    for (int i = 0; i < freqs.length; i++) {
      freqs[i] = indexer.ropeFrequency(i);
    }
    d =
        new DeviceIndexer(
            wq,
            wk,
            proj,
            gamma,
            beta,
            m.own(cx.upload(freqs)),
            indexer.heads(),
            indexer.headDim(),
            indexer.ropeDims(),
            indexer.scale());
    m.indexers.put(indexer, d);
    return d;
  }

  private DeviceTensor tensor(Map<FloatTensor, DeviceTensor> uploaded, FloatTensor t, String name) {
    DeviceTensor d = uploaded.get(t);
    if (d == null) {
      d = own(DeviceTensor.upload(cx, t, name));
      uploaded.put(t, d);
    }
    return d;
  }

  @Override
  public LlamaConfig config() {
    return config;
  }

  /**
   * The longest sequence the default policy supports: the trained context for dense, {@code
   * (L_train − w)·G + w} for SelfExtend (ALGORITHMS.md §2.2).
   */
  @Override
  public int maxContext() {
    return defaultPolicy.positions() == null
        ? config.contextLength()
        : defaultPolicy.maxContext(config.contextLength());
  }

  /**
   * This model with {@code policy} as the default for {@link #newSequence(int)}, as {@code
   * Transformer.withAttention}: the view shares this model's device weights, so this model must
   * stay open while the view is used (closing the view frees only its own scratch). Fails for a
   * policy the GPU does not run or one that does not fit the model.
   */
  public CudaModel withAttention(AttentionPolicy policy) {
    requireSupported(policy);
    policy.checkContext(1, config.contextLength());
    return new CudaModel(this, policy);
  }

  /** The policy {@link #newSequence(int)} uses. */
  public AttentionPolicy attentionPolicy() {
    return defaultPolicy;
  }

  /**
   * Whether {@code policy} runs on the GPU: dense, SelfExtend, and the top-k policies with at most
   * {@value CudaKernels#TOPK_MAX} keys (indexer) or blocks (block top-k) chosen per query, except
   * an indexer read from its own file.
   */
  public static boolean supports(AttentionPolicy policy) {
    return unsupportedReason(policy) == null;
  }

  /** Why {@code policy} does not run on the GPU, or null when it does. */
  public static String unsupportedReason(AttentionPolicy policy) {
    return switch (policy) {
      case AttentionPolicy.IndexerTopK t when t.k() > CudaKernels.TOPK_MAX ->
          "the GPU top-k selects at most " + CudaKernels.TOPK_MAX + " keys, --top-k is " + t.k();
      case AttentionPolicy.BlockTopK b when b.topBlocks() - 1 > CudaKernels.TOPK_MAX ->
          "the GPU top-k selects at most "
              + CudaKernels.TOPK_MAX
              + " blocks, --top-blocks is "
              + b.topBlocks();
      default -> null;
    };
  }

  /**
   * Fails, naming the policy and the reason, unless it runs on the GPU ({@link #supports}). The CLI
   * calls it before uploading a model.
   */
  public static void requireSupported(AttentionPolicy policy) {
    if (policy == null) {
      throw new IllegalArgumentException("policy must not be null");
    }
    String reason = unsupportedReason(policy);
    if (reason != null) {
      throw new IllegalArgumentException(
          "attention policy "
              + policy.name()
              + " cannot run on the CUDA backend: "
              + reason
              + " (use the CPU backend for it)");
    }
  }

  public CudaContext context() {
    return cx;
  }

  /** Prefill with the matrix-vector kernel only (for tests and comparisons); true by default. */
  public void setGemmEnabled(boolean enabled) {
    this.gemmEnabled = enabled;
  }

  /**
   * The element type of the KV caches of sequences and ranges created from now on (F32 by default;
   * {@link #withAttention} views take this model's type when they are made).
   */
  public void setKvCacheType(KvCacheType type) {
    this.kvCacheType = Objects.requireNonNull(type, "type");
  }

  public KvCacheType kvCacheType() {
    return kvCacheType;
  }

  /**
   * Whether the decode steps (dense attention, one token) of a sequence or a GPU shard's range run
   * as one CUDA graph launch ({@link LaunchGraph}: the step's launches recorded, the graph updated
   * in place where only arguments changed); off by default until measured against direct launches,
   * which {@code CudaBench} prints next to it. Results are the same either way: the same kernels
   * with the same arguments in the same order.
   */
  public void setDecodeGraphs(boolean enabled) {
    this.decodeGraphs = enabled;
  }

  public boolean decodeGraphs() {
    return decodeGraphs;
  }

  /**
   * Whether the matrix-vector products of Q8_0 / Q4_0 matrices (decode, and prefill rows without
   * cuBLAS) run on 8-bit activations: each input row quantized per 32-element block, then integer
   * products (CudaKernels.matvecQuantized, as llama.cpp's MMVQ kernels), about a third of the
   * instructions per weight byte of the float product. Off by default: the activations' rounding
   * moves the logits away from the CPU backend's (within the bound CudaModelTest checks), and the
   * speed-up is to be measured ({@code CudaBench} prints both).
   */
  public void setQuantizedActivations(boolean enabled) {
    this.quantizedActivations = enabled;
  }

  public boolean quantizedActivations() {
    return quantizedActivations;
  }

  /** Device bytes of the weights (the GGUF tensor bytes plus norms). */
  public long weightBytes() {
    if (base != null) {
      return base.weightBytes();
    }
    long sum = 0;
    for (AutoCloseable r : owned) {
      sum +=
          switch (r) {
            case DeviceTensor t -> t.bytes();
            case DeviceBuffer b -> b.bytes();
            default -> 0L;
          };
    }
    return sum;
  }

  /** A new, empty sequence that may grow to {@code maxTokens}, under the default policy. */
  @Override
  public CudaSequence newSequence(int maxTokens) {
    return newSequence(maxTokens, defaultPolicy);
  }

  /**
   * A new, empty sequence under {@code policy} (per request), as {@code Transformer.newSequence}:
   * dense or SelfExtend; fails naming the limit when {@code maxTokens} exceeds what SelfExtend
   * supports ((L_train − w)·G + w), and naming the policy for one the GPU does not run.
   */
  public CudaSequence newSequence(int maxTokens, AttentionPolicy policy) {
    requireSupported(policy);
    synchronized (lock) {
      return allocate(maxTokens, policy);
    }
  }

  private CudaSequence allocate(int maxTokens, AttentionPolicy policy) {
    policy.checkContext(maxTokens, config.contextLength());
    SelfExtend se = policy.positions();
    CudaKvCache cache =
        new CudaKvCache(cx, config.layers(), config.kvDim(), maxTokens, se != null, kvCacheType);
    DeviceBuffer positionList = null;
    try {
      positionList = se == null ? null : selfExtendPositionList(se, maxTokens);
      return new CudaSequence(
          cache, policy, positionList, CudaSelector.of(this, policy, maxTokens));
    } catch (RuntimeException e) {
      if (positionList != null) {
        positionList.close();
      }
      cache.close();
      throw e;
    }
  }

  /**
   * SelfExtend's key position list for a sequence of up to {@code maxTokens}: w − 1 entries −1 (no
   * key), then 0, 1, 2, …: row t of a chunk starting at `start` reads the w entries from start + t,
   * i.e. keys [i − w + 1, i] (the exact neighbor window, −1 where negative); from w − 1 on, the
   * first c entries are keys [0, c) (llama.cpp's grouped run).
   */
  DeviceBuffer selfExtendPositionList(SelfExtend se, int maxTokens) {
    int pad = se.neighborWindow() - 1;
    int[] list = new int[pad + maxTokens];
    for (int m = 0; m < list.length; m++) {
      list[m] = m < pad ? -1 : m - pad;
    }
    return cx.upload(list);
  }

  @Override
  public float[] prefill(CudaSequence seq, int[] tokens) {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("prefill needs at least one token");
    }
    float[] logits = new float[config.vocabSize()];
    synchronized (lock) {
      for (int off = 0; off < tokens.length; off += CHUNK) {
        int n = Math.min(CHUNK, tokens.length - off);
        forward(seq, tokens, off, n, off + n == tokens.length ? logits : null);
      }
    }
    return logits;
  }

  @Override
  public void release(CudaSequence seq) {
    synchronized (lock) {
      seq.close();
    }
  }

  @Override
  public float[] decode(CudaSequence seq, int token) {
    float[] logits = new float[config.vocabSize()];
    synchronized (lock) {
      forward(seq, new int[] {token}, 0, 1, logits);
    }
    return logits;
  }

  /** Device buffers of one step of up to {@code capacity} rows. */
  static final class Activations implements AutoCloseable {
    final int capacity;
    final DeviceBuffer x;
    final DeviceBuffer xb;
    final DeviceBuffer qkv;
    final DeviceBuffer att;
    final DeviceBuffer gateUp;
    final DeviceBuffer logits;
    final DeviceBuffer tokens;
    final DeviceBuffer positions;
    final DeviceBuffer half;
    // Whether a.half holds the int8 form of the next layer's attention input, written by the
    // previous layer's last norm (CudaModel.finishLayer for projectLayer with normed).
    boolean int8Ready;
    // Whether a.half holds the int8 form of att, written by the attention's merge (runLayers for
    // finishLayer).
    boolean attInt8Ready;
    // SelfExtend only (null for dense): q [n, queryDim] then k [n, kvDim] rotated at the grouped
    // positions (one buffer, a copy of the front of qkv), the grouped partial's output, both
    // partials' LSEs, the grouped positions of the step's rows, and llama.cpp mode's per-row
    // neighbor key lists [rows, w].
    final DeviceBuffer qkGrouped;
    final DeviceBuffer attGrouped;
    final DeviceBuffer lseNeighbor;
    final DeviceBuffer lseGrouped;
    final DeviceBuffer groupQueryPositions;
    final DeviceBuffer groupKeyPositions;
    final DeviceBuffer neighborLists;

    Activations(CudaContext cx, LlamaConfig c, int capacity, SelfExtend se) {
      this.capacity = capacity;
      long f = Float.BYTES;
      long widest = Math.max(Math.max(c.dim(), c.queryDim()), c.hiddenDim());
      x = cx.alloc(capacity * c.dim() * f);
      xb = cx.alloc(capacity * c.dim() * f);
      qkv = cx.alloc(capacity * (c.queryDim() + 2L * c.kvDim()) * f);
      att = cx.alloc(capacity * c.queryDim() * f);
      gateUp = cx.alloc(capacity * 2L * c.hiddenDim() * f);
      logits = cx.alloc(c.vocabSize() * f);
      tokens = cx.alloc(capacity * (long) Integer.BYTES);
      positions = cx.alloc(capacity * (long) Integer.BYTES);
      half = cx.alloc(capacity * widest * 2);
      boolean on = se != null;
      long ints = Integer.BYTES;
      qkGrouped = on ? cx.alloc(capacity * (c.queryDim() + (long) c.kvDim()) * f) : null;
      attGrouped = on ? cx.alloc(capacity * c.queryDim() * f) : null;
      lseNeighbor = on ? cx.alloc(capacity * c.heads() * f) : null;
      lseGrouped = on ? cx.alloc(capacity * c.heads() * f) : null;
      groupQueryPositions = on ? cx.alloc(capacity * ints) : null;
      groupKeyPositions = on ? cx.alloc(capacity * ints) : null;
      neighborLists =
          on && se.mode() == SelfExtendMode.LLAMACPP
              ? cx.alloc((long) capacity * se.neighborWindow() * ints)
              : null;
    }

    @Override
    public void close() {
      for (DeviceBuffer b :
          new DeviceBuffer[] {
            x,
            xb,
            qkv,
            att,
            gateUp,
            logits,
            tokens,
            positions,
            half,
            qkGrouped,
            attGrouped,
            lseNeighbor,
            lseGrouped,
            groupQueryPositions,
            groupKeyPositions,
            neighborLists
          }) {
        if (b != null) {
          b.close();
        }
      }
    }
  }

  Activations newActivations(int rows, SelfExtend se) {
    return new Activations(cx, config, Math.max(rows, 1), se);
  }

  private void forward(CudaSequence seq, int[] tokens, int off, int n, float[] logits) {
    LlamaConfig c = config;
    for (int t = 0; t < n; t++) {
      int token = tokens[off + t];
      if (token < 0 || token >= c.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + token + " is outside the vocabulary [0, " + c.vocabSize() + ")");
      }
    }
    CudaKvCache cache = seq.cache();
    int start = cache.length();
    cache.reserve(start + n);
    Activations a = seq.activations(this, n);
    int[] ids = Arrays.copyOfRange(tokens, off, off + n);
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      positions[t] = start + t;
    }
    embedRows(a, ids, positions, n, seq.selfExtend());
    if (n == 1 && logits != null) {
      decodeStep(seq, a, start, 0);
    } else {
      runLayers(seq, a, start, n);
      if (logits != null) {
        projectLogits(a, n - 1);
      }
    }
    cache.setLength(start + n);
    if (logits != null) {
      cx.read(a.logits, 0, logits, c.vocabSize()); // waits for the step
    }
  }

  /**
   * Device bytes a token of a sequence under {@code policy} takes once its state has grown: the KV
   * cache (with SelfExtend's grouped keys) plus a top-k policy's selector state ({@link
   * CudaSelector#bytesPerToken}).
   */
  public long bytesPerToken(AttentionPolicy policy) {
    return CudaKvCache.bytesPerToken(config, policy.positions() != null, kvCacheType)
        + CudaSelector.bytesPerToken(config, policy);
  }

  /**
   * The tokens of sequences under {@code policy} that fit ({@link #tokensThatFit(long, long)} of
   * {@link #bytesPerToken}), after uploading what those sequences share besides their tokens — a
   * model-file lightning indexer's weights, otherwise uploaded by the first such request, after the
   * KV budget had taken the memory they need.
   */
  public long tokensThatFit(AttentionPolicy policy, long requestedTokens) {
    if (policy.lightningIndexer() != null) {
      synchronized (lock) {
        deviceIndexer(policy.lightningIndexer());
      }
    }
    return tokensThatFit(bytesPerToken(policy), requestedTokens);
  }

  /**
   * The tokens of {@code bytesPerToken} bytes that fit in the device memory free now (after the
   * weights), less the headroom of {@link CudaKvCache#headroomBytes}: a requested count ({@code
   * requestedTokens} > 0) when it fits, else a clear error naming both numbers; with 0, what fits.
   * Fails when nothing fits. So a server sizes (or checks) its KV budget at start instead of
   * running out of device memory mid-request.
   */
  public long tokensThatFit(long bytesPerToken, long requestedTokens) {
    CudaContext.MemoryInfo memory = cx.memoryInfo();
    long fits =
        CudaKvCache.tokensThatFit(memory.free(), memory.total(), bytesPerToken, requestedTokens);
    if (fits <= 0) {
      throw new IllegalStateException(
          String.format(
              "no room for a KV cache on %s: %.2f GiB free after the weights",
              cx.deviceName(), memory.free() / (double) (1L << 30)));
    }
    return fits;
  }

  /**
   * For benchmarks only, as the CPU {@code SyntheticContext.extend}: grows {@code seq} (holding r ≥
   * 1 real tokens) to {@code depth} tokens without running the model, position p getting the keys,
   * values (SelfExtend's grouped keys, the selector state) of position p mod r, all on the device.
   * Decode then reads what it would after a real prefill of that depth; outputs and selections are
   * meaningless. A lightning indexer is refused (its keys need the layers' real inputs).
   */
  public void extendSynthetic(CudaSequence seq, int depth) {
    synchronized (lock) {
      CudaKvCache cache = seq.cache();
      int resident = cache.length();
      if (resident < 1) {
        throw new IllegalArgumentException("a synthetic context replicates resident tokens: none");
      }
      CudaSelector selector = seq.selector();
      if (selector != null && selector.needsLayerInput()) {
        throw new IllegalArgumentException(
            "a synthetic context supports the own-heads indexer only: a model indexer's keys need"
                + " the layers' real inputs");
      }
      if (depth <= resident) {
        return;
      }
      cache.reserve(depth);
      if (selector != null) {
        selector.reserve(depth);
      }
      int kvDim = config.kvDim();
      int page = CudaKvCache.PAGE_TOKENS;
      long rowBytes = (long) resident * kvDim * Float.BYTES;
      boolean grouped = cache.hasGroupKeys();
      try (DeviceBuffer rows = cx.alloc(3 * rowBytes)) {
        long keys = rows.address();
        long values = keys + rowBytes;
        long groupKeys = grouped ? values + rowBytes : 0L;
        for (int l = 0; l < config.layers(); l++) {
          k.kvGather(cache.keyTable(l), page, cache.type(), keys, 0, resident, kvDim);
          k.kvGather(cache.valueTable(l), page, cache.type(), values, 0, resident, kvDim);
          if (grouped) {
            k.kvGather(cache.groupKeyTable(l), page, cache.type(), groupKeys, 0, resident, kvDim);
          }
          for (int p = resident; p < depth; p += resident) {
            int n = Math.min(resident, depth - p);
            k.kvStore(cache.keyTable(l), page, cache.type(), keys, p, n, kvDim);
            k.kvStore(cache.valueTable(l), page, cache.type(), values, p, n, kvDim);
            if (grouped) {
              k.kvStore(cache.groupKeyTable(l), page, cache.type(), groupKeys, p, n, kvDim);
            }
            if (selector != null) {
              selector.appendKeys(l, keys, groupKeys, p, n);
            }
          }
        }
        cx.synchronize(); // the rows buffer is freed next
      }
      cache.setLength(depth);
    }
  }

  // ---- the step's pieces, shared with CudaKvRange (a GPU shard's request) ----

  /** The lock that serializes this model's device work (and its views'). */
  Object lock() {
    return lock;
  }

  CudaKernels kernels() {
    return k;
  }

  float attentionScale() {
    return attentionScale;
  }

  /**
   * A request's KV range on this GPU for a shard (DESIGN.md §4), reserving {@code capacity} slots.
   * Only the policy's positions matter (plain, or SelfExtend's, whose grouped keys are kept too): a
   * shard runs every attention method, the coordinator selecting sparse keys.
   */
  public CudaKvRange newRange(int capacity, AttentionPolicy policy) {
    synchronized (lock) {
      return new CudaKvRange(this, capacity, policy);
    }
  }

  /**
   * Device scratch of at least {@code bytes} for a range's attention (queries, outputs, LSEs, key
   * ranges and lists), shared by the ranges of this model under its lock and grown as needed.
   */
  DeviceBuffer attendScratch(long bytes) {
    CudaModel m = base != null ? base : this;
    if (m.attendScratch == null || m.attendScratch.bytes() < bytes) {
      if (m.attendScratch != null) {
        m.owned.remove(m.attendScratch);
        m.attendScratch.close();
      }
      m.attendScratch = m.own(cx.alloc(Math.max(bytes, 1L << 20)));
    }
    return m.attendScratch;
  }

  /**
   * Starts a step of {@code n} rows: their token ids and positions (and SelfExtend's grouped
   * positions) to the device, the residual stream ← the embeddings. Token ids are checked by the
   * caller.
   */
  void embedRows(Activations a, int[] ids, int[] positions, int n, SelfExtend se) {
    cx.bind();
    cx.write(a.tokens, 0, ids, n);
    cx.write(a.positions, 0, positions, n);
    if (se != null) {
      writeSelfExtendPositions(se, a, positions, n);
    }
    k.embed(embedding, a.tokens.address(), a.x.address(), n);
  }

  /**
   * Every layer of the step's n rows at slots [start, start + n), attending causally, or under a
   * top-k policy the rows past its dense bound over the keys its selector picks on the device.
   */
  void runLayers(CudaSequence seq, Activations a, int start, int n) {
    SelfExtend se = seq.selfExtend();
    CudaKvCache cache = seq.cache();
    CudaSelector selector = seq.selector();
    int dense = n;
    if (selector != null) {
      selector.reserve(start + n);
      dense = selector.denseRows(start, n);
    }
    LlamaConfig c = config;
    for (int l = 0; l < c.layers(); l++) {
      projectLayer(l, cache, a, n, start, se, l > 0);
      long q = a.qkv.address();
      if (selector != null) {
        selector.append(l, a, start, n);
        if (dense < n) {
          sparseAttention(seq, selector, a, l, start, n, dense);
        }
      }
      if (dense > 0 && se != null) {
        selfExtendAttention(seq, se, a, l, start, dense, q);
      } else if (dense > 0) {
        // The whole output from this launch (no sparse rows): its merge may write the int8 form
        // of the output projection's input too.
        Int8 toWo = dense == n ? int8Input(layers.get(l).wo, n, a) : null;
        a.attInt8Ready =
            k.attention(
                q,
                cache.keyTable(l),
                cache.valueTable(l),
                CudaKvCache.PAGE_TOKENS,
                cache.type(),
                a.att.address(),
                0L,
                dense,
                c.heads(),
                c.kvHeads(),
                c.headDim(),
                attentionScale,
                start,
                0L,
                0L,
                0,
                0,
                false,
                toWo);
      }
      finishLayer(l, a, n, true);
    }
  }

  /**
   * Attention of the step's rows [dense, n) of layer l over the keys the selector lists for them
   * (SequenceAttention.attend): plain, or under SelfExtend the listed neighbor keys with q at its
   * position and the listed grouped keys with q at its grouped position, merged by the LSE rule
   * (ALGORITHMS.md §2.3, §4.2).
   */
  private void sparseAttention(
      CudaSequence seq, CudaSelector selector, Activations a, int l, int start, int n, int dense) {
    LlamaConfig c = config;
    CudaKvCache cache = seq.cache();
    SelfExtend se = seq.selfExtend();
    int rows = n - dense;
    CudaSelector.Lists lists = selector.select(l, a, start, n, dense);
    long qRow = (long) dense * c.queryDim() * Float.BYTES;
    long lseRow = (long) dense * c.heads() * Float.BYTES;
    if (se == null) {
      attendLists(
          a.qkv.address() + qRow,
          cache.keyTable(l),
          cache,
          l,
          a.att.address() + qRow,
          0L,
          rows,
          lists);
      return;
    }
    CudaSelector.Lists[] parts = selector.splitSelfExtend(lists, start + dense, rows);
    attendLists(
        a.qkv.address() + qRow,
        cache.keyTable(l),
        cache,
        l,
        a.att.address() + qRow,
        a.lseNeighbor.address() + lseRow,
        rows,
        parts[0]);
    attendLists(
        a.qkGrouped.address() + qRow,
        cache.groupKeyTable(l),
        cache,
        l,
        a.attGrouped.address() + qRow,
        a.lseGrouped.address() + lseRow,
        rows,
        parts[1]);
    k.selfExtendMerge(
        a.att.address() + qRow,
        a.attGrouped.address() + qRow,
        a.lseNeighbor.address() + lseRow,
        a.lseGrouped.address() + lseRow,
        rows * c.heads(),
        c.headDim());
  }

  /** Attention of {@code rows} query rows over the keys of {@code lists} (−1 entries skipped). */
  private void attendLists(
      long q,
      long keyTable,
      CudaKvCache cache,
      int l,
      long out,
      long lse,
      int rows,
      CudaSelector.Lists lists) {
    attendRows(
        keyTable,
        cache.valueTable(l),
        cache.type(),
        q,
        out,
        lse,
        rows,
        0L,
        lists.address(),
        lists.count(),
        lists.rowStride(),
        lists.perKvHead());
  }

  /**
   * Attention of {@code rows} query rows over a paged layer: per-row slot ranges ({@code ranges}),
   * or per-row (per-KV-head) lists ({@code lists}, −1 entries skipped) — a shard range's and a
   * sparse sequence's attention.
   */
  void attendRows(
      long keyTable,
      long valueTable,
      KvCacheType type,
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
        type,
        out,
        lse,
        rows,
        c.heads(),
        c.kvHeads(),
        c.headDim(),
        attentionScale,
        0,
        ranges,
        lists,
        count,
        lists == 0 ? 0 : listStride,
        lists != 0 && perKvHead,
        null);
  }

  /**
   * Layer l's attention input for the step's n rows (TransformerLayers.project, rotate /
   * rotateSelfExtend): RMSNorm into a.xb, q [n, queryDim] then k and v [n, kvDim] into a.qkv (+
   * biases), RoPE at a.positions (and the grouped copies of q and k at SelfExtend's grouped
   * positions into a.qkGrouped), then k and v (and grouped k) stored at slots [slot, slot + n).
   * {@code normed}: a.xb already holds the RMSNormed input (the previous layer's {@link
   * #finishLayer} with {@code normNext}).
   */
  void projectLayer(
      int l, CudaKvCache cache, Activations a, int n, int slot, SelfExtend se, boolean normed) {
    LlamaConfig c = config;
    Layer w = layers.get(l);
    // The norm writes the int8 form of its output too when the products take it; a normed input
    // has it when the previous layer's finishLayer wrote it (a.int8Ready).
    Int8 int8 = int8Input(qkvInput(w, n), n, a);
    boolean fused = normed && a.int8Ready;
    a.int8Ready = false;
    if (!normed) {
      k.rmsnorm(a.xb.address(), a.x.address(), w.attnNorm.address(), n, c.dim(), c.rmsEps(), int8);
      fused = int8 != null;
    }
    // q [n, queryDim], then k and v [n, kvDim] each, in one buffer
    long q = a.qkv.address();
    long kk = q + (long) n * c.queryDim() * Float.BYTES;
    long v = kk + (long) n * c.kvDim() * Float.BYTES;
    long xb = a.xb.address();
    if (n == 1 && w.qkv != null) {
      matvecRows(w.qkv, xb, q, 1, a, fused);
      if (w.qkv.rows() == c.queryDim() + c.kvDim()) { // q and k stacked, v apart
        matvecRows(w.wv, xb, v, 1, a, fused);
      }
    } else {
      matmul(w.wq, xb, q, n, a, fused);
      matmul(w.wk, xb, kk, n, a, fused);
      matmul(w.wv, xb, v, n, a, fused);
    }
    if (w.bq != null) {
      k.addBias(q, w.bq.address(), c.queryDim(), n);
      k.addBias(kk, w.bk.address(), c.kvDim(), n);
      k.addBias(v, w.bv.address(), c.kvDim(), n);
    }
    // rotate (TransformerLayers.rotateSelfExtend: pre-RoPE copies rotated at grouped positions)
    if (se != null) {
      // q and k lie at the front of qkv: one copy takes both (qg at 0, kg after n·queryDim)
      cx.copy(a.qkGrouped, a.qkv, (long) n * (c.queryDim() + c.kvDim()) * Float.BYTES);
      long qg = a.qkGrouped.address();
      long kg = qg + (long) n * c.queryDim() * Float.BYTES;
      rope(qg, a.groupQueryPositions, n, c.heads(), c.queryDim());
      rope(kg, a.groupKeyPositions, n, c.kvHeads(), c.kvDim());
      k.kvStore(
          cache.groupKeyTable(l), CudaKvCache.PAGE_TOKENS, cache.type(), kg, slot, n, c.kvDim());
    }
    // RoPE of q and k at their positions, k and v to the cache: one launch
    k.ropeStore(
        q,
        kk,
        v,
        a.positions.address(),
        invFreq.address(),
        n,
        c.heads(),
        c.kvHeads(),
        c.headDim(),
        interleaved,
        cache.keyTable(l),
        cache.valueTable(l),
        CudaKvCache.PAGE_TOKENS,
        cache.type(),
        slot);
  }

  /**
   * Layer l after its attention (a.att [n, queryDim]), as TransformerLayers.finish: output
   * projection, residual, RMSNorm, SwiGLU FFN, residual. With {@code normNext} and a next layer,
   * the last residual add also RMSNorms the result with layer l + 1's attention norm into a.xb (one
   * launch), and that layer's {@link #projectLayer} is told so.
   */
  void finishLayer(int l, Activations a, int n, boolean normNext) {
    LlamaConfig c = config;
    Layer w = layers.get(l);
    int dim = c.dim();
    long xb = a.xb.address();
    boolean attInt8 = a.attInt8Ready; // set by runLayers' attention, never by a range's merge
    a.attInt8Ready = false;
    matmul(w.wo, a.att.address(), xb, n, a, attInt8);
    // With int8 activations the norm and SwiGLU also write the int8 form of the next product's
    // input (no quantization launch of its own).
    DeviceTensor gateUpInput = n == 1 && w.gateUp != null ? w.gateUp : w.wGate;
    Int8 toGateUp = int8Input(gateUpInput, n, a);
    k.addRmsnorm(a.x.address(), xb, xb, w.ffnNorm.address(), n, dim, c.rmsEps(), toGateUp);
    long gate = a.gateUp.address();
    long up = gate + (long) n * c.hiddenDim() * Float.BYTES;
    if (n == 1 && w.gateUp != null) {
      matvecRows(w.gateUp, xb, gate, 1, a, toGateUp != null);
    } else {
      matmul(w.wGate, xb, gate, n, a, toGateUp != null);
      matmul(w.wUp, xb, up, n, a, toGateUp != null);
    }
    Int8 toDown = int8Input(w.wDown, n, a);
    k.swiglu(gate, up, (long) n * c.hiddenDim(), toDown);
    matmul(w.wDown, gate, xb, n, a, toDown != null);
    if (normNext && l + 1 < c.layers()) {
      Layer next = layers.get(l + 1);
      Int8 toQkv = int8Input(qkvInput(next, n), n, a);
      k.addRmsnorm(a.x.address(), xb, xb, next.attnNorm.address(), n, dim, c.rmsEps(), toQkv);
      a.int8Ready = toQkv != null; // for projectLayer(l + 1, normed)
    } else {
      k.add(a.x.address(), xb, (long) n * dim);
    }
  }

  /** The logits of step row {@code row} (final RMSNorm, vocabulary projection) into {@code out}. */
  void logitsOf(Activations a, int row, float[] out) {
    projectLogits(a, row);
    cx.read(a.logits, 0, out, config.vocabSize()); // waits for the step
  }

  /**
   * Every layer of a one-row step at slot {@code start}, then row {@code logitRow}'s logits into
   * a.logits: as one graph launch of the sequence's {@link LaunchGraph} when decode graphs are on
   * and the step only launches kernels (dense attention: SelfExtend's steps copy on the device, a
   * selector's read back), else launch by launch. The caller reads a.logits.
   */
  void decodeStep(CudaSequence seq, Activations a, int start, int logitRow) {
    Runnable step =
        () -> {
          runLayers(seq, a, start, 1);
          projectLogits(a, logitRow);
        };
    if (decodeGraphs && seq.selector() == null && seq.selfExtend() == null) {
      seq.launchGraph(cx).run(step);
    } else {
      step.run();
    }
  }

  /** The launches of {@link #logitsOf}: step row {@code row}'s logits into a.logits. */
  private void projectLogits(Activations a, int row) {
    LlamaConfig c = config;
    long x = a.x.address() + (long) row * c.dim() * Float.BYTES;
    Int8 int8 = int8Input(output, 1, a);
    k.rmsnorm(a.xb.address(), x, outputNorm.address(), 1, c.dim(), c.rmsEps(), int8);
    matvecRows(output, a.xb.address(), a.logits.address(), 1, a, int8 != null);
  }

  private void rope(long x, DeviceBuffer positions, int n, int heads, int rowStride) {
    k.rope(
        x,
        positions.address(),
        invFreq.address(),
        n,
        heads,
        config.headDim(),
        rowStride,
        interleaved);
  }

  /**
   * Uploads the step's grouped query and key positions (AttentionPolicy.SelfExtend's mapping) and,
   * in llama.cpp mode, each row's neighbor keys [c, i] padded with −1 to w entries.
   */
  private void writeSelfExtendPositions(SelfExtend se, Activations a, int[] positions, int n) {
    int[] gq = new int[n];
    int[] gk = new int[n];
    for (int t = 0; t < n; t++) {
      gq[t] = se.groupQueryPosition(positions[t]);
      gk[t] = se.groupKeyPosition(positions[t]);
    }
    cx.write(a.groupQueryPositions, 0, gq, n);
    cx.write(a.groupKeyPositions, 0, gk, n);
    if (se.mode() == SelfExtendMode.LLAMACPP) {
      int w = se.neighborWindow();
      int[] lists = new int[n * w];
      Arrays.fill(lists, -1);
      for (int t = 0; t < n; t++) {
        int i = positions[t];
        for (int j = se.neighborStart(i); j <= i; j++) {
          lists[t * w + j - se.neighborStart(i)] = j;
        }
      }
      cx.write(a.neighborLists, 0, lists, n * w);
    }
  }

  /**
   * SelfExtend attention of the step's n rows for layer l, as the CPU {@code SequenceAttention}
   * does it: query i attends its neighbor keys [ns(i), i] with q and k at their own positions, and
   * the keys before ns(i) with q at ⌊i/G⌋ + w − w/G (llama.cpp: c/G + i − c) against the grouped
   * keys at ⌊j/G⌋ (ALGORITHMS.md §2.2, §2.4); the two partials merge by the LSE rule (§4.2), which
   * equals one softmax over the merged logit map (§2.3). Both partials run on the existing
   * attention kernel: the neighbor keys as a window of the sequence's position list (exact) or as
   * per-row lists (llama.cpp); the grouped keys as a causal prefix shifted back by w (exact: keys
   * [0, i − w]) or, per run of rows with the same chunk start c, the list prefix [0, c)
   * (llama.cpp).
   */
  private void selfExtendAttention(
      CudaSequence seq, SelfExtend se, Activations a, int l, int start, int n, long q) {
    LlamaConfig c = config;
    CudaKvCache cache = seq.cache();
    int w = se.neighborWindow();
    long list = seq.positionList().address();
    boolean exact = se.mode() == SelfExtendMode.EXACT;
    // neighbor partial → a.att, a.lseNeighbor
    k.attention(
        q,
        cache.keyTable(l),
        cache.valueTable(l),
        CudaKvCache.PAGE_TOKENS,
        cache.type(),
        a.att.address(),
        a.lseNeighbor.address(),
        n,
        c.heads(),
        c.kvHeads(),
        c.headDim(),
        attentionScale,
        0,
        0L,
        exact ? list + (long) start * Integer.BYTES : a.neighborLists.address(),
        w,
        exact ? 1 : w,
        false,
        null);
    // grouped partial → a.attGrouped, a.lseGrouped. Rows whose grouped set is empty (i < w, or
    // before the first llama.cpp chunk boundary) are not launched: their LSE is set to −∞, which
    // gives the grouped partial weight 0 in the merge. So every causal launch below starts at
    // causalStart ≥ 0, as the dense kernels (the tensor-core prefill one too) expect.
    if (se.neighborStart(start) == 0) {
      cx.fill(a.lseGrouped, 0, (long) n * c.heads(), NEG_INF_BITS); // the rows attended here
    }
    if (exact) {
      // row t sees grouped keys [0, start + t − w + 1): non-empty from t = w − start on
      int t0 = Math.max(0, w - start);
      if (t0 < n) {
        groupedAttention(a, cache, l, t0, n - t0, start + t0 - w, 0L, 0);
      }
    } else {
      for (int t0 = 0; t0 < n; ) {
        int chunkStart = se.neighborStart(start + t0);
        int t1 = t0 + 1;
        while (t1 < n && se.neighborStart(start + t1) == chunkStart) {
          t1++;
        }
        if (chunkStart > 0) {
          long prefix = list + (long) (w - 1) * Integer.BYTES;
          groupedAttention(a, cache, l, t0, t1 - t0, 0, prefix, chunkStart);
        }
        t0 = t1;
      }
    }
    k.selfExtendMerge(
        a.att.address(),
        a.attGrouped.address(),
        a.lseNeighbor.address(),
        a.lseGrouped.address(),
        n * c.heads(),
        c.headDim());
  }

  /**
   * Grouped-key attention of rows [t0, t0 + rows) of the step: causal from causalStart, or the
   * count positions listed at selected (shared by the rows).
   */
  private void groupedAttention(
      Activations a,
      CudaKvCache cache,
      int l,
      int t0,
      int rows,
      int causalStart,
      long selected,
      int count) {
    LlamaConfig c = config;
    long qRow = (long) t0 * c.queryDim() * Float.BYTES;
    k.attention(
        a.qkGrouped.address() + qRow,
        cache.groupKeyTable(l),
        cache.valueTable(l),
        CudaKvCache.PAGE_TOKENS,
        cache.type(),
        a.attGrouped.address() + qRow,
        a.lseGrouped.address() + (long) t0 * c.heads() * Float.BYTES,
        rows,
        c.heads(),
        c.kvHeads(),
        c.headDim(),
        attentionScale,
        causalStart,
        0L,
        selected,
        count,
        0,
        false,
        null);
  }

  /** {@code y[n, rows] = x[n, cols] · Wᵀ}: cuBLAS for prefill chunks, the matvec kernel else. */
  void matmul(DeviceTensor w, long x, long y, int n, Activations a) {
    matmul(w, x, y, n, a, false);
  }

  /**
   * {@link #matmul}; {@code int8Written}: x's int8 form is already in a.half ({@link #int8Input} of
   * w, written by the kernel that wrote x).
   */
  private void matmul(DeviceTensor w, long x, long y, int n, Activations a, boolean int8Written) {
    CudaBlas blas = n >= GEMM_MIN_ROWS && gemmEnabled ? cx.blas() : null;
    if (blas == null) {
      matvecRows(w, x, y, n, a, int8Written);
      return;
    }
    a.int8Ready = false; // a.half is about to hold x in half precision
    a.attInt8Ready = false;
    if (w.type() == GgmlType.F32) {
      blas.gemm(CudaBlas.Precision.FP32, w.address(), x, y, w.rows(), w.cols(), n);
      return;
    }
    boolean fp16 = w.type() != GgmlType.BF16;
    long weights = w.address();
    if (w.type() != GgmlType.F16 && w.type() != GgmlType.BF16) { // a block-quantized type
      if (weightScratch == null) {
        weightScratch = own(cx.alloc(largestMatrix * 2));
      }
      k.dequantizeToHalf(w, weightScratch.address(), true);
      weights = weightScratch.address();
    }
    k.toHalf(x, a.half.address(), (long) n * w.cols(), fp16);
    blas.gemm(
        fp16 ? CudaBlas.Precision.FP16 : CudaBlas.Precision.BF16,
        weights,
        a.half.address(),
        y,
        w.rows(),
        w.cols(),
        n);
  }

  /** Where an n-row input's int8 form lies: its quants, then its per-block scales. */
  record Int8(long quants, long scales) {}

  /**
   * The int8 form of an n-row input of w's product, in a.half (n·cols quants, then 16-byte aligned
   * n·cols / 32 scales; the half-precision copy for cuBLAS is never needed at the same time), or
   * null when that product takes float activations: {@link #setQuantizedActivations} off, w not one
   * the integer products read ({@link DeviceTensor#takesInt8Activations}), or the product going to
   * cuBLAS.
   */
  private Int8 int8Input(DeviceTensor w, int n, Activations a) {
    if (!quantizedActivations || !w.takesInt8Activations()) {
      return null;
    }
    if (n >= GEMM_MIN_ROWS && gemmEnabled && cx.blas() != null) {
      return null;
    }
    long quants = a.half.address();
    return new Int8(quants, quants + (((long) n * w.cols() + 15) & ~15L));
  }

  /** The first product of a layer's attention input: stacked q/k/v in decode, else q. */
  private static DeviceTensor qkvInput(Layer w, int n) {
    return n == 1 && w.qkv != null ? w.qkv : w.wq;
  }

  /**
   * {@code y[n, rows] = x[n, cols] · Wᵀ} by the matrix-vector kernel: over x's int8 form when w
   * takes it ({@link #int8Input}; quantized here unless {@code int8Written}), else over x.
   */
  private void matvecRows(
      DeviceTensor w, long x, long y, int n, Activations a, boolean int8Written) {
    Int8 int8 = int8Input(w, n, a);
    if (int8 == null) {
      k.matvec(w, x, y, n);
      return;
    }
    if (!int8Written) {
      k.quantizeRows(x, int8.quants(), int8.scales(), w.cols(), n);
      // a.half now holds x's, not what a producer wrote for a later product
      a.int8Ready = false;
      a.attInt8Ready = false;
    }
    k.matvecQuantized(w, int8.quants(), int8.scales(), y, n);
  }

  @Override
  public void close() {
    if (base != null) {
      // A view: the device weights belong to the base model; free only the view's own scratch.
      for (AutoCloseable r : owned) {
        try {
          r.close();
        } catch (Exception e) {
          throw new CudaException("freeing the view's device memory failed", e);
        }
      }
      owned.clear();
      return;
    }
    for (int i = owned.size() - 1; i >= 0; i--) {
      try {
        owned.get(i).close();
      } catch (Exception e) {
        throw new CudaException("freeing the model's device memory failed", e);
      }
    }
    owned.clear();
    if (ownsContext) {
      ownsContext = false;
      cx.close();
    }
  }
}
