package dev.longctx.engine.cuda;

import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Llama-family decoder on one GPU, step for step the CPU {@code Transformer} / {@link
 * TransformerLayers} (embed → per layer: RMSNorm, q/k/v projections (+ biases), RoPE, KV store,
 * causal GQA attention, output projection, residual, RMSNorm, SwiGLU FFN, residual → final RMSNorm
 * and vocabulary projection). Weights are uploaded once in their GGUF types; the KV cache is {@link
 * CudaKvCache} (paged). Dense attention only: a sequence under another policy runs on the CPU.
 *
 * <p>Decode (one token) uses the matrix-vector kernels, reading each weight byte once. Prefill
 * chunks of at least {@value #GEMM_MIN_ROWS} tokens use cuBLAS (FP16 for quantized and FP16
 * weights, BF16 for BF16, FP32 for F32; FP32 accumulation) when libcublas loads, else the
 * matrix-vector kernel per token. Not thread-safe: one caller at a time.
 */
public final class CudaModel implements Decoder<CudaSequence>, AutoCloseable {

  /**
   * Prefill chunk: larger than the CPU's 128 so each GEMM (and each dequantization of a quantized
   * weight for it) serves more tokens.
   */
  public static final int CHUNK = 512;

  /** Rows from which a projection goes to cuBLAS. */
  static final int GEMM_MIN_ROWS = 16;

  private final CudaContext cx;
  private final CudaKernels k;
  private final LlamaConfig config;
  private final int maxContext;
  private final float attentionScale;
  private final boolean interleaved;
  private final DeviceTensor embedding;
  private final DeviceTensor output;
  private final DeviceBuffer outputNorm;
  private final DeviceBuffer invFreq;
  private final List<Layer> layers = new ArrayList<>();
  private final List<AutoCloseable> owned = new ArrayList<>();
  private final long largestMatrix;
  private DeviceBuffer weightScratch;
  private boolean gemmEnabled = true;
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
      DeviceTensor qkv,
      DeviceTensor gateUp) {}

  /** Uploads {@code weights} to the device of {@code cx}; the context must outlive the model. */
  public CudaModel(CudaContext cx, LlamaConfig config, LlamaWeights weights) {
    TransformerLayers cpu = new TransformerLayers(config, weights); // checks shapes, builds RoPE
    this.cx = cx;
    this.k = new CudaKernels(cx);
    owned.add(k);
    this.config = config;
    this.maxContext = config.contextLength();
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
        // prefill uses their row ranges.
        List<FloatTensor> qkvParts = List.of(w.wq(), w.wk(), w.wv());
        List<FloatTensor> gateUpParts = List.of(w.wGate(), w.wUp());
        DeviceTensor qkv =
            DeviceTensor.stackable(qkvParts)
                ? own(DeviceTensor.stack(cx, qkvParts, p + "attn_qkv"))
                : null;
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
                qkv != null
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

  @Override
  public int maxContext() {
    return maxContext;
  }

  public CudaContext context() {
    return cx;
  }

  /** Prefill with the matrix-vector kernel only (for tests and comparisons); true by default. */
  public void setGemmEnabled(boolean enabled) {
    this.gemmEnabled = enabled;
  }

  /** Device bytes of the weights (the GGUF tensor bytes plus norms). */
  public long weightBytes() {
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

  @Override
  public CudaSequence newSequence(int maxTokens) {
    return new CudaSequence(new CudaKvCache(cx, config.layers(), config.kvDim(), maxTokens));
  }

  @Override
  public float[] prefill(CudaSequence seq, int[] tokens) {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("prefill needs at least one token");
    }
    float[] logits = new float[config.vocabSize()];
    for (int off = 0; off < tokens.length; off += CHUNK) {
      int n = Math.min(CHUNK, tokens.length - off);
      forward(seq, tokens, off, n, off + n == tokens.length ? logits : null);
    }
    return logits;
  }

  @Override
  public void release(CudaSequence seq) {
    seq.close();
  }

  @Override
  public float[] decode(CudaSequence seq, int token) {
    float[] logits = new float[config.vocabSize()];
    forward(seq, new int[] {token}, 0, 1, logits);
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

    Activations(CudaContext cx, LlamaConfig c, int capacity) {
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
    }

    @Override
    public void close() {
      for (DeviceBuffer b :
          new DeviceBuffer[] {x, xb, qkv, att, gateUp, logits, tokens, positions, half}) {
        b.close();
      }
    }
  }

  Activations newActivations(int rows) {
    return new Activations(cx, config, Math.max(rows, 1));
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
    cx.bind();
    CudaKvCache cache = seq.cache();
    int start = cache.length();
    cache.reserve(start + n);
    Activations a = seq.activations(this, n);
    int[] ids = new int[n];
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      ids[t] = tokens[off + t];
      positions[t] = start + t;
    }
    cx.write(a.tokens, 0, ids, n);
    cx.write(a.positions, 0, positions, n);

    int dim = c.dim();
    k.embed(embedding, a.tokens.address(), a.x.address(), n);
    for (int l = 0; l < c.layers(); l++) {
      Layer w = layers.get(l);
      // project (TransformerLayers.project)
      k.rmsnorm(a.xb.address(), a.x.address(), w.attnNorm.address(), n, dim, c.rmsEps());
      // q [n, queryDim], then k and v [n, kvDim] each, in one buffer
      long q = a.qkv.address();
      long kk = q + (long) n * c.queryDim() * Float.BYTES;
      long v = kk + (long) n * c.kvDim() * Float.BYTES;
      long xb = a.xb.address();
      if (n == 1 && w.qkv != null) {
        k.matvec(w.qkv, xb, q, 1);
      } else {
        matmul(w.wq, xb, q, n, a);
        matmul(w.wk, xb, kk, n, a);
        matmul(w.wv, xb, v, n, a);
      }
      if (w.bq != null) {
        k.addBias(q, w.bq.address(), c.queryDim(), n);
        k.addBias(kk, w.bk.address(), c.kvDim(), n);
        k.addBias(v, w.bv.address(), c.kvDim(), n);
      }
      // rotate
      k.rope(
          q,
          a.positions.address(),
          invFreq.address(),
          n,
          c.heads(),
          c.headDim(),
          c.queryDim(),
          interleaved);
      k.rope(
          kk,
          a.positions.address(),
          invFreq.address(),
          n,
          c.kvHeads(),
          c.headDim(),
          c.kvDim(),
          interleaved);
      // store, attend (causal over [0, start + t])
      k.kvStore(cache.keyTable(l), CudaKvCache.PAGE_TOKENS, kk, start, n, c.kvDim());
      k.kvStore(cache.valueTable(l), CudaKvCache.PAGE_TOKENS, v, start, n, c.kvDim());
      k.attention(
          q,
          cache.keyTable(l),
          cache.valueTable(l),
          CudaKvCache.PAGE_TOKENS,
          a.att.address(),
          0L,
          n,
          c.heads(),
          c.kvHeads(),
          c.headDim(),
          attentionScale,
          start,
          0L,
          0,
          0,
          false);
      // finish (TransformerLayers.finish)
      matmul(w.wo, a.att.address(), xb, n, a);
      k.add(a.x.address(), a.xb.address(), (long) n * dim);
      k.rmsnorm(a.xb.address(), a.x.address(), w.ffnNorm.address(), n, dim, c.rmsEps());
      long gate = a.gateUp.address();
      long up = gate + (long) n * c.hiddenDim() * Float.BYTES;
      if (n == 1 && w.gateUp != null) {
        k.matvec(w.gateUp, xb, gate, 1);
      } else {
        matmul(w.wGate, xb, gate, n, a);
        matmul(w.wUp, xb, up, n, a);
      }
      k.swiglu(gate, up, (long) n * c.hiddenDim());
      matmul(w.wDown, gate, xb, n, a);
      k.add(a.x.address(), a.xb.address(), (long) n * dim);
    }
    cache.setLength(start + n);
    if (logits != null) {
      long last = a.x.address() + (long) (n - 1) * dim * Float.BYTES;
      k.rmsnorm(a.xb.address(), last, outputNorm.address(), 1, dim, c.rmsEps());
      k.matvec(output, a.xb.address(), a.logits.address(), 1);
      cx.read(a.logits, 0, logits, c.vocabSize()); // waits for the step
    }
  }

  /** {@code y[n, rows] = x[n, cols] · Wᵀ}: cuBLAS for prefill chunks, the matvec kernel else. */
  private void matmul(DeviceTensor w, long x, long y, int n, Activations a) {
    CudaBlas blas = n >= GEMM_MIN_ROWS && gemmEnabled ? cx.blas() : null;
    if (blas == null) {
      k.matvec(w, x, y, n);
      return;
    }
    if (w.type() == GgmlType.F32) {
      blas.gemm(CudaBlas.Precision.FP32, w.address(), x, y, w.rows(), w.cols(), n);
      return;
    }
    boolean fp16 = w.type() != GgmlType.BF16;
    long weights = w.address();
    if (w.type() == GgmlType.Q8_0 || w.type() == GgmlType.Q4_0) {
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

  @Override
  public void close() {
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
