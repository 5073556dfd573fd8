package dev.longctx.worker.shard;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.inference.CpuKvRange;
import dev.longctx.engine.inference.KvRange;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A shard: the model's weights (loaded once, on the CPU or a GPU) and the per-request {@link
 * KvRange}s of the sequence ranges placed here, with KV capacity accounting in tokens. Calls for
 * one request are serialised by the coordinator; different requests run concurrently.
 */
public final class ShardEngine {

  /** Opens a request's KV range on the shard's backend. */
  @FunctionalInterface
  public interface Ranges {
    KvRange open(int capacity, AttentionPolicy policy);
  }

  private final int shardId;
  private final long epoch;
  private final LlamaConfig config;
  private final Ranges ranges;
  private final String backend;
  private final long capacityTokens;
  private final String fingerprint;
  private final ConcurrentHashMap<String, KvRange> requests = new ConcurrentHashMap<>();
  private final AtomicLong reserved = new AtomicLong();
  private volatile IndexerSource.Trained indexer;

  /** A shard computing on the CPU. */
  public ShardEngine(
      int shardId,
      LlamaConfig config,
      LlamaWeights weights,
      long capacityTokens,
      String fingerprint) {
    this(shardId, config, cpu(config, weights), "cpu", capacityTokens, fingerprint);
  }

  /**
   * A shard whose request ranges come from {@code ranges} (the CPU's, or a GPU model's), named
   * {@code backend} in its description.
   */
  public ShardEngine(
      int shardId,
      LlamaConfig config,
      Ranges ranges,
      String backend,
      long capacityTokens,
      String fingerprint) {
    this.shardId = shardId;
    this.epoch = new SecureRandom().nextLong() & Long.MAX_VALUE;
    this.config = config;
    this.ranges = ranges;
    this.backend = backend;
    this.capacityTokens = capacityTokens;
    this.fingerprint = fingerprint;
  }

  /**
   * A shard whose request ranges live on the GPU of {@code gpu} (which must outlive the shard),
   * named {@code cuda:<device>}. The KV cache lives in the device memory the weights left: a
   * requested capacity ({@code requestedTokens} > 0) must fit there, else a clear error naming both
   * numbers now rather than an out-of-memory mid-request; 0 takes what fits. A token's bytes are
   * {@link CudaModel#bytesPerToken} of {@code policy}: the KV cache of the model's element type
   * (with SelfExtend's grouped keys) and the selector state of a range that selects in Forward.
   */
  public static ShardEngine cuda(
      int shardId,
      CudaModel gpu,
      AttentionPolicy policy,
      long requestedTokens,
      String fingerprint) {
    // The KV cache of the model's element type and the selector state a range keeps when it
    // holds a whole sparse request (or indexes a trained indexer's keys), after the indexer's
    // weights are on the device.
    long fits = gpu.tokensThatFit(policy, requestedTokens);
    return new ShardEngine(
        shardId,
        gpu.config(),
        gpu::newRange,
        "cuda:" + gpu.context().deviceName(),
        fits,
        fingerprint);
  }

  /**
   * The fingerprint a shard of the model at {@code model} reports in Describe ({@code <file
   * name>:<size in bytes>}); the coordinator refuses shards whose fingerprints differ.
   */
  public static String modelFingerprint(Path model) throws IOException {
    return model.getFileName() + ":" + Files.size(model);
  }

  private static Ranges cpu(LlamaConfig config, LlamaWeights weights) {
    TransformerLayers layers = new TransformerLayers(config, weights);
    return (capacity, policy) -> new CpuKvRange(layers, capacity, policy);
  }

  /**
   * Gives the shard its model file's lightning indexer (ALGORITHMS.md §1.2), for requests opened
   * with indexer "model": it indexes their keys and scores queries against them (§4.5). Returns
   * this shard.
   */
  public ShardEngine withIndexer(LightningIndexer modelIndexer) {
    return withIndexer(modelIndexer == null ? null : new IndexerSource.ModelFile(modelIndexer));
  }

  /**
   * Gives the shard a trained lightning indexer, the model file's (for requests opened with indexer
   * "model") or a distilled indexer file's (indexer "file", ALGORITHMS.md §5.3), or null for none.
   */
  public ShardEngine withIndexer(IndexerSource.Trained source) {
    this.indexer = source;
    return this;
  }

  /** The shard's trained lightning indexer, or null where it has none. */
  public LightningIndexer indexer() {
    IndexerSource.Trained source = indexer;
    return source == null ? null : source.indexer();
  }

  /** Where {@link #indexer()} came from (the model file or an indexer file), or null. */
  public IndexerSource.Trained indexerSource() {
    return indexer;
  }

  /** "cpu", or "cuda" with the device. */
  public String backend() {
    return backend;
  }

  public int shardId() {
    return shardId;
  }

  public long epoch() {
    return epoch;
  }

  public LlamaConfig config() {
    return config;
  }

  public String fingerprint() {
    return fingerprint;
  }

  public long capacityTokens() {
    return capacityTokens;
  }

  /** KV positions reserved by open requests. */
  public long reservedTokens() {
    return reserved.get();
  }

  /** KV positions filled. */
  public long residentTokens() {
    long n = 0;
    for (KvRange s : requests.values()) {
      n += s.slots();
    }
    return n;
  }

  public int activeRequests() {
    return requests.size();
  }

  /**
   * Opens a request's state reserving {@code capacity} positions under {@code policy}; false when
   * it does not fit.
   */
  boolean open(String requestId, int capacity, AttentionPolicy policy) {
    policy.checkContext(1, config.contextLength());
    if (requests.containsKey(requestId)) {
      throw new IllegalStateException("request " + requestId + " is already open here");
    }
    long after = reserved.addAndGet(capacity);
    if (after > capacityTokens) {
      reserved.addAndGet(-capacity);
      return false;
    }
    KvRange range;
    try {
      range = ranges.open(capacity, policy);
    } catch (RuntimeException e) {
      reserved.addAndGet(-capacity);
      throw e;
    }
    if (requests.putIfAbsent(requestId, range) != null) {
      range.close();
      reserved.addAndGet(-capacity);
      throw new IllegalStateException("request " + requestId + " is already open here");
    }
    return true;
  }

  /** The range of an open request, or null. */
  public KvRange get(String requestId) {
    return requests.get(requestId);
  }

  /** Drops a request and frees its range; returns the positions it held (0 if unknown). */
  long release(String requestId) {
    KvRange s = requests.remove(requestId);
    if (s == null) {
      return 0;
    }
    reserved.addAndGet(-s.capacity());
    long held = s.slots();
    s.close();
    return held;
  }
}
