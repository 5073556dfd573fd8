package dev.longctx.engine.inference;

import java.util.Arrays;

/**
 * Keys and values of one sequence, per layer, laid out {@code [position][kvHead][headDim]} so one
 * head is addressed with base {@code kvHead·headDim} and stride {@code kvDim}. Keys are stored
 * after RoPE. Capacity grows by doubling up to {@code maxTokens}, so a short prompt on a model with
 * a long trained context does not reserve gigabytes.
 *
 * <p>For SelfExtend a second key array holds every key rotated at its grouped position ⌊j/G⌋
 * (ALGORITHMS.md §2.4 design 1: two rotated key caches, values shared, 1.5× the memory). Byte
 * accounting is exact: {@link #bytesAllocated} is what the arrays hold now, {@link #bytesPerToken}
 * what one resident token costs.
 */
public final class KvCache {

  private final int layers;
  private final int kvDim;
  private final int maxTokens;
  private final float[][] keys;
  private final float[][] values;
  private final float[][] groupKeys;
  private int capacity;
  private int length;

  public KvCache(int layers, int kvDim, int maxTokens) {
    this(layers, kvDim, maxTokens, false);
  }

  /** A cache that also keeps SelfExtend's grouped keys when {@code groupKeys} is set. */
  public KvCache(int layers, int kvDim, int maxTokens, boolean groupKeys) {
    if (maxTokens <= 0) {
      throw new IllegalArgumentException("maxTokens must be > 0, got " + maxTokens);
    }
    this.layers = layers;
    this.kvDim = kvDim;
    this.maxTokens = maxTokens;
    this.keys = new float[layers][];
    this.values = new float[layers][];
    this.groupKeys = groupKeys ? new float[layers][] : null;
    this.capacity = Math.min(maxTokens, 256);
    for (int l = 0; l < layers; l++) {
      keys[l] = new float[capacity * kvDim];
      values[l] = new float[capacity * kvDim];
      if (groupKeys) {
        this.groupKeys[l] = new float[capacity * kvDim];
      }
    }
  }

  /** Tokens whose keys and values are resident. */
  public int length() {
    return length;
  }

  /** The most tokens this cache may hold. */
  public int maxTokens() {
    return maxTokens;
  }

  /** Tokens the arrays can hold now without growing. */
  public int capacity() {
    return capacity;
  }

  /** Whether SelfExtend's grouped keys are kept. */
  public boolean hasGroupKeys() {
    return groupKeys != null;
  }

  /** Bytes held by the key and value arrays now (capacity × bytes per token). */
  public long bytesAllocated() {
    return capacity * bytesPerToken();
  }

  /** Bytes the resident tokens occupy (length × bytes per token). */
  public long bytesResident() {
    return length * bytesPerToken();
  }

  /** Bytes a cache of this shape needs per resident token. */
  public long bytesPerToken() {
    return (groupKeys != null ? 3L : 2L) * layers * kvDim * Float.BYTES;
  }

  float[] keys(int layer) {
    return keys[layer];
  }

  /** Keys of layer {@code layer} rotated at SelfExtend's grouped positions, or null. */
  float[] groupKeys(int layer) {
    return groupKeys == null ? null : groupKeys[layer];
  }

  float[] values(int layer) {
    return values[layer];
  }

  int kvDim() {
    return kvDim;
  }

  int layers() {
    return layers;
  }

  /** Makes room for {@code tokens} in total; fails naming the limit when it exceeds maxTokens. */
  void reserve(int tokens) {
    if (tokens > maxTokens) {
      throw new IllegalStateException(
          "sequence of " + tokens + " tokens exceeds the KV cache limit of " + maxTokens);
    }
    if (tokens <= capacity) {
      return;
    }
    int newCapacity = Math.min(maxTokens, Math.max(tokens, capacity * 2));
    for (int l = 0; l < layers; l++) {
      keys[l] = Arrays.copyOf(keys[l], newCapacity * kvDim);
      values[l] = Arrays.copyOf(values[l], newCapacity * kvDim);
      if (groupKeys != null) {
        groupKeys[l] = Arrays.copyOf(groupKeys[l], newCapacity * kvDim);
      }
    }
    capacity = newCapacity;
  }

  void setLength(int length) {
    this.length = length;
  }

  /** Forgets every token after the first {@code length} (e.g. to re-run from a prefix). */
  public void truncate(int length) {
    if (length < 0 || length > this.length) {
      throw new IllegalArgumentException(
          "cannot truncate a cache of " + this.length + " tokens to " + length);
    }
    this.length = length;
  }
}
