package dev.longctx.engine.inference;

import java.util.Arrays;

/**
 * Keys and values of one sequence, per layer, in fixed-size pages from a {@link KvPagePool}: a
 * per-sequence page table maps token s to page {@code s >>> pageShift}, row {@code s mod
 * pageTokens}; within a page rows are laid out {@code [token][kvHead][headDim]}, so one head is
 * addressed with base {@code kvHead·headDim} and stride {@code kvDim}. Keys are stored after RoPE.
 * Pages are taken as the sequence grows (up to {@code maxTokens}) and given back by {@link
 * #release}, so a short prompt on a model with a long trained context reserves one page per array,
 * and growing never copies what is resident. The attention kernels iterate the page table ({@code
 * Attention.attendGroupPaged}: one online softmax across pages).
 *
 * <p>For SelfExtend a second key page table holds every key rotated at its grouped position ⌊j/G⌋
 * (ALGORITHMS.md §2.4 design 1: two rotated key caches, values shared, 1.5× the memory). The
 * selector state of a sparse policy (INT8 keys, page bounds, indexer keys) lives beside the cache
 * in the sequence's {@code SequenceAttention}, counted by {@code Sequence.bytesAllocated}.
 *
 * <p>Byte accounting is exact: {@link #bytesAllocated} is what the pages held now occupy ({@link
 * #capacity} tokens), {@link #bytesResident} what the resident tokens occupy, {@link
 * #bytesPerToken} what one token costs.
 */
public final class KvCache {

  /** Tokens per page when the cache makes its own pool. */
  public static final int PAGE_TOKENS = 256;

  private final KvPagePool pool;
  private final int layers;
  private final int kvDim;
  private final int maxTokens;
  private final int shift;
  private final float[][][] keys;
  private final float[][][] values;
  private final float[][][] groupKeys;
  private int pages;
  private int length;

  public KvCache(int layers, int kvDim, int maxTokens) {
    this(layers, kvDim, maxTokens, false);
  }

  /**
   * A cache with its own pool that also keeps SelfExtend's grouped keys when {@code groupKeys} is
   * set. Pages are {@value #PAGE_TOKENS} tokens, or the next power of two ≥ maxTokens when that is
   * smaller (a short sequence does not hold a mostly empty page).
   */
  public KvCache(int layers, int kvDim, int maxTokens, boolean groupKeys) {
    this(new KvPagePool(pageTokensFor(maxTokens), kvDim), layers, maxTokens, groupKeys);
  }

  /** {@value #PAGE_TOKENS}, or the smallest power of two ≥ maxTokens when that is smaller. */
  private static int pageTokensFor(int maxTokens) {
    int p = 1;
    while (p < Math.min(maxTokens, PAGE_TOKENS)) {
      p <<= 1;
    }
    return p;
  }

  /** A cache taking its pages from {@code pool} (shared with other sequences of the model). */
  public KvCache(KvPagePool pool, int layers, int maxTokens, boolean groupKeys) {
    if (maxTokens <= 0) {
      throw new IllegalArgumentException("maxTokens must be > 0, got " + maxTokens);
    }
    if (layers <= 0) {
      throw new IllegalArgumentException("layers must be > 0, got " + layers);
    }
    this.pool = pool;
    this.layers = layers;
    this.kvDim = pool.kvDim();
    this.maxTokens = maxTokens;
    this.shift = pool.pageShift();
    this.keys = new float[layers][0][];
    this.values = new float[layers][0][];
    this.groupKeys = groupKeys ? new float[layers][0][] : null;
  }

  /** Tokens whose keys and values are resident. */
  public int length() {
    return length;
  }

  /** The most tokens this cache may hold. */
  public int maxTokens() {
    return maxTokens;
  }

  /** Tokens the pages held now can store without taking more. */
  public int capacity() {
    return pages << shift;
  }

  /** Tokens per page. */
  public int pageTokens() {
    return 1 << shift;
  }

  /** Pages held now, per layer and array (keys, values, grouped keys). */
  public int pages() {
    return pages;
  }

  /** Whether SelfExtend's grouped keys are kept. */
  public boolean hasGroupKeys() {
    return groupKeys != null;
  }

  /** Bytes of the pages held now (capacity × bytes per token). */
  public long bytesAllocated() {
    return (long) capacity() * bytesPerToken();
  }

  /** Bytes the resident tokens occupy (length × bytes per token). */
  public long bytesResident() {
    return length * bytesPerToken();
  }

  /** Bytes a cache of this shape needs per resident token. */
  public long bytesPerToken() {
    return (groupKeys != null ? 3L : 2L) * layers * kvDim * Float.BYTES;
  }

  /** Key pages of layer {@code layer} (the page table; valid until the cache grows). */
  float[][] keyPages(int layer) {
    return keys[layer];
  }

  /** Grouped-key pages of layer {@code layer} (SelfExtend), or null. */
  float[][] groupKeyPages(int layer) {
    return groupKeys == null ? null : groupKeys[layer];
  }

  float[][] valuePages(int layer) {
    return values[layer];
  }

  /** log2 of the page size: token s is in page {@code s >>> pageShift()}. */
  int pageShift() {
    return shift;
  }

  int kvDim() {
    return kvDim;
  }

  int layers() {
    return layers;
  }

  /**
   * Stores token {@code pos}'s keys and values ({@code kvDim} floats each) of layer {@code layer}.
   */
  void put(int layer, int pos, float[] k, int kOffset, float[] v, int vOffset) {
    int row = (pos & ((1 << shift) - 1)) * kvDim;
    System.arraycopy(k, kOffset, keys[layer][pos >>> shift], row, kvDim);
    System.arraycopy(v, vOffset, values[layer][pos >>> shift], row, kvDim);
  }

  /** Stores token {@code pos}'s keys rotated at SelfExtend's grouped position. */
  void putGroupKeys(int layer, int pos, float[] k, int kOffset) {
    int row = (pos & ((1 << shift) - 1)) * kvDim;
    System.arraycopy(k, kOffset, groupKeys[layer][pos >>> shift], row, kvDim);
  }

  /** Copies token {@code pos}'s keys (grouped ones when {@code grouped}) to {@code dst[off ..]}. */
  void copyKeys(int layer, int pos, boolean grouped, float[] dst, int off) {
    float[][] table = grouped ? groupKeys[layer] : keys[layer];
    System.arraycopy(table[pos >>> shift], (pos & ((1 << shift) - 1)) * kvDim, dst, off, kvDim);
  }

  /** Copies token {@code pos}'s values to {@code dst[off ..]}. */
  void copyValues(int layer, int pos, float[] dst, int off) {
    System.arraycopy(
        values[layer][pos >>> shift], (pos & ((1 << shift) - 1)) * kvDim, dst, off, kvDim);
  }

  /** Makes room for {@code tokens} in total; fails naming the limit when it exceeds maxTokens. */
  void reserve(int tokens) {
    if (tokens > maxTokens) {
      throw new IllegalStateException(
          "sequence of " + tokens + " tokens exceeds the KV cache limit of " + maxTokens);
    }
    int need = (tokens + (1 << shift) - 1) >>> shift;
    if (need <= pages) {
      return;
    }
    for (int l = 0; l < layers; l++) {
      keys[l] = grow(keys[l], need);
      values[l] = grow(values[l], need);
      if (groupKeys != null) {
        groupKeys[l] = grow(groupKeys[l], need);
      }
    }
    pages = need;
  }

  private float[][] grow(float[][] table, int need) {
    float[][] t = Arrays.copyOf(table, need);
    for (int p = pages; p < need; p++) {
      t[p] = pool.acquire();
    }
    return t;
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

  /**
   * Gives every page back to the pool; the cache is then empty with capacity 0 and may grow again.
   */
  public void release() {
    for (int l = 0; l < layers; l++) {
      releaseAll(keys[l]);
      keys[l] = new float[0][];
      releaseAll(values[l]);
      values[l] = new float[0][];
      if (groupKeys != null) {
        releaseAll(groupKeys[l]);
        groupKeys[l] = new float[0][];
      }
    }
    pages = 0;
    length = 0;
  }

  private void releaseAll(float[][] table) {
    for (int p = 0; p < pages; p++) {
      pool.release(table[p]);
    }
  }
}
