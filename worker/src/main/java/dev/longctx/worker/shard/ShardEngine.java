package dev.longctx.worker.shard;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import java.security.SecureRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A shard: the model's weights (loaded once) and the per-request states of the sequence ranges
 * placed here, with KV capacity accounting in tokens. Calls for one request are serialised by the
 * coordinator; different requests run concurrently.
 */
public final class ShardEngine {

  private final int shardId;
  private final long epoch;
  private final LlamaConfig config;
  private final TransformerLayers layers;
  private final long capacityTokens;
  private final String fingerprint;
  private final ConcurrentHashMap<String, ShardState> requests = new ConcurrentHashMap<>();
  private final AtomicLong reserved = new AtomicLong();

  public ShardEngine(
      int shardId,
      LlamaConfig config,
      LlamaWeights weights,
      long capacityTokens,
      String fingerprint) {
    this.shardId = shardId;
    this.epoch = new SecureRandom().nextLong() & Long.MAX_VALUE;
    this.config = config;
    this.layers = new TransformerLayers(config, weights);
    this.capacityTokens = capacityTokens;
    this.fingerprint = fingerprint;
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
    for (ShardState s : requests.values()) {
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
    ShardState state = new ShardState(layers, capacity, policy);
    long after = reserved.addAndGet(capacity);
    if (after > capacityTokens) {
      reserved.addAndGet(-capacity);
      return false;
    }
    requests.put(requestId, state);
    return true;
  }

  /** The state of an open request, or null. */
  ShardState get(String requestId) {
    return requests.get(requestId);
  }

  /** Drops a request; returns the positions it held (0 if unknown). */
  long release(String requestId) {
    ShardState s = requests.remove(requestId);
    if (s == null) {
      return 0;
    }
    reserved.addAndGet(-s.capacity());
    return s.slots();
  }
}
