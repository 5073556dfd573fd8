package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.tensor.Parallel;

/**
 * The Llama-family decoder forward pass (pre-norm blocks: RMSNorm → GQA attention with RoPE →
 * residual → RMSNorm → SwiGLU → residual; final RMSNorm and the vocabulary projection).
 *
 * <p>Tokens are processed in chunks: every projection of a chunk is one matrix-matrix product, so a
 * weight tile is read once per chunk of tokens rather than once per token (prefill); a one-token
 * chunk is the bandwidth-bound decode step. Stateless apart from the weights: the per-sequence
 * state is a {@link Sequence}.
 *
 * <p>Attention runs under an {@link AttentionPolicy}: the model's default ({@link #withAttention})
 * or one chosen per sequence ({@link #newSequence(int, AttentionPolicy)}). Dense sequences take the
 * plain path below; the others delegate to {@link SequenceAttention}.
 */
public final class Transformer implements Decoder<Sequence> {

  /** Prefill chunk: large enough for GEMM efficiency, small enough to bound scratch memory. */
  public static final int DEFAULT_CHUNK = 128;

  private final TransformerLayers layers;
  private final LlamaConfig config;
  private final LlamaWeights weights;
  private final float attentionScale;
  private final AttentionPolicy defaultPolicy;

  public Transformer(LlamaConfig config, LlamaWeights weights) {
    this.layers = new TransformerLayers(config, weights);
    this.config = config;
    this.weights = weights;
    this.defaultPolicy = AttentionPolicy.dense();
    this.attentionScale = (float) (1.0 / Math.sqrt(config.headDim()));
  }

  private Transformer(Transformer base, AttentionPolicy policy) {
    this.layers = base.layers;
    this.config = base.config;
    this.weights = base.weights;
    this.attentionScale = base.attentionScale;
    this.defaultPolicy = policy;
  }

  /**
   * This model with {@code policy} as the default for {@link #newSequence(int)} (the weights are
   * shared). Fails if the policy does not fit the model (e.g. a SelfExtend window not below the
   * trained context).
   */
  public Transformer withAttention(AttentionPolicy policy) {
    if (policy == null) {
      throw new IllegalArgumentException("policy must not be null");
    }
    policy.checkContext(1, config.contextLength());
    return new Transformer(this, policy);
  }

  /** The policy {@link #newSequence(int)} uses. */
  public AttentionPolicy attentionPolicy() {
    return defaultPolicy;
  }

  /** The longest sequence the default policy supports on this model. */
  @Override
  public int maxContext() {
    return defaultPolicy.maxContext(config.contextLength());
  }

  @Override
  public LlamaConfig config() {
    return config;
  }

  public LlamaWeights weights() {
    return weights;
  }

  /** The layer arithmetic this forward pass is built from (for split, sharded execution). */
  public TransformerLayers layers() {
    return layers;
  }

  /** A new, empty sequence that may grow to {@code maxTokens}, under the default policy. */
  @Override
  public Sequence newSequence(int maxTokens) {
    return newSequence(maxTokens, defaultPolicy);
  }

  /**
   * A new, empty sequence under {@code policy} (per request). Fails naming the limit when {@code
   * maxTokens} exceeds what the policy supports (SelfExtend: (L_train − w)·G + w).
   */
  public Sequence newSequence(int maxTokens, AttentionPolicy policy) {
    if (policy instanceof AttentionPolicy.Dense) {
      return new Sequence(new KvCache(config.layers(), config.kvDim(), maxTokens));
    }
    SequenceAttention attention = new SequenceAttention(policy, config, maxTokens);
    KvCache cache =
        new KvCache(config.layers(), config.kvDim(), maxTokens, attention.needsGroupKeys());
    return new Sequence(cache, policy, attention);
  }

  /** Feeds {@code tokens} after the sequence's current end; returns the last token's logits. */
  @Override
  public float[] prefill(Sequence seq, int[] tokens) {
    if (tokens.length == 0) {
      throw new IllegalArgumentException("prefill needs at least one token");
    }
    float[] logits = new float[config.vocabSize()];
    for (int off = 0; off < tokens.length; off += DEFAULT_CHUNK) {
      int n = Math.min(DEFAULT_CHUNK, tokens.length - off);
      boolean last = off + n == tokens.length;
      forward(seq, tokens, off, n, last ? LogitRows.LAST : LogitRows.NONE, logits);
    }
    return logits;
  }

  /** Feeds one token; returns its logits. */
  @Override
  public float[] decode(Sequence seq, int token) {
    float[] logits = new float[config.vocabSize()];
    forward(seq, new int[] {token}, 0, 1, LogitRows.LAST, logits);
    return logits;
  }

  /** Gives the sequence's KV pages back to the pool; the sequence is empty afterwards. */
  @Override
  public void release(Sequence seq) {
    seq.cache().release();
  }

  /** Receives the logits of consecutive positions. */
  @FunctionalInterface
  public interface LogitsSink {
    /** {@code logits[row·vocab ..]} are the logits after token {@code tokens[first + row]}. */
    void accept(int first, int rows, float[] logits);
  }

  /**
   * Feeds {@code tokens[from, to)} and hands the logits of every position to {@code sink}, chunk by
   * chunk (perplexity needs all of them).
   */
  public void forwardAll(Sequence seq, int[] tokens, int from, int to, int chunk, LogitsSink sink) {
    float[] logits = new float[chunk * config.vocabSize()];
    for (int off = from; off < to; off += chunk) {
      int n = Math.min(chunk, to - off);
      forward(seq, tokens, off, n, LogitRows.ALL, logits);
      sink.accept(off, n, logits);
    }
  }

  private enum LogitRows {
    NONE,
    LAST,
    ALL
  }

  private void forward(
      Sequence seq, int[] tokens, int off, int n, LogitRows logitRows, float[] logits) {
    LlamaConfig c = config;
    int kvDim = c.kvDim();
    int start = seq.cache().length();
    KvCache cache = seq.cache();
    cache.reserve(start + n);
    SequenceAttention policyAttention = seq.attention();
    if (policyAttention != null) {
      policyAttention.reserve(start + n);
    }
    TransformerLayers.Activations s = seq.activations(layers, n);
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      positions[t] = start + t;
    }

    layers.embed(tokens, off, n, s);
    for (int l = 0; l < c.layers(); l++) {
      layers.project(l, s, n);
      AttentionPolicy.SelfExtend se = seq.policy().positions();
      if (se != null) {
        layers.rotateSelfExtend(s, n, positions, se);
      } else {
        layers.rotate(s, n, positions);
      }
      for (int t = 0; t < n; t++) {
        int pos = start + t;
        cache.put(l, pos, s.k, t * kvDim, s.v, t * kvDim);
        if (se != null) {
          cache.putGroupKeys(l, pos, s.kg, t * kvDim);
        }
      }
      if (policyAttention == null) {
        attention(s, cache.keyPages(l), cache.valuePages(l), cache.pageShift(), start, n);
      } else {
        policyAttention.append(l, start, n, s.k, se != null ? s.kg : null, s.xb);
        policyAttention.attend(
            l,
            start,
            n,
            s.q,
            se != null ? s.qg : null,
            cache.keyPages(l),
            cache.groupKeyPages(l),
            cache.valuePages(l),
            cache.pageShift(),
            s.xb,
            s.att);
      }
      layers.finish(l, s.att, s, n);
    }
    cache.setLength(start + n);

    switch (logitRows) {
      case NONE -> {}
      case LAST -> layers.logits(s, new int[] {n - 1}, logits);
      case ALL -> layers.logitsAll(s, n, logits);
    }
  }

  /**
   * Causal attention for every (token, KV head) of the chunk, in parallel: the query heads of a GQA
   * group attend in one pass over their shared keys and values ({@link Attention#attendGroup}), so
   * a decode step reads the cache once rather than once per query head.
   */
  private void attention(
      TransformerLayers.Activations s,
      float[][] keyPages,
      float[][] valuePages,
      int pageShift,
      int start,
      int n) {
    LlamaConfig c = config;
    int kvHeads = c.kvHeads();
    int headDim = c.headDim();
    int kvDim = c.kvDim();
    int group = c.groupSize();
    int units = n * kvHeads;
    // Small dynamically claimed chunks: causal rows grow with t, so equal ranges are unequal work.
    Parallel.forChunks(
        units,
        Math.max(1, units / (4 * Parallel.threads())),
        (from, to) -> {
          float[] lse = new float[group];
          for (int i = from; i < to; i++) {
            int t = i / kvHeads;
            int g = i % kvHeads;
            int qOff = t * c.queryDim() + g * group * headDim;
            Attention.attendGroupPaged(
                s.q,
                qOff,
                group,
                keyPages,
                valuePages,
                pageShift,
                g * headDim,
                kvDim,
                0,
                start + t + 1,
                headDim,
                attentionScale,
                s.att,
                qOff,
                lse,
                0);
          }
        });
  }
}
