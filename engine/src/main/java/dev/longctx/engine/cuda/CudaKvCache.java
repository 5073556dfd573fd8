package dev.longctx.engine.cuda;

import dev.longctx.engine.model.LlamaConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * One sequence's keys and values on the device, paged: fixed pages of {@value #PAGE_TOKENS}
 * positions, each page holding every layer's keys and values ({@code [layer][K|V][pageToken]
 * [kvDim]} elements of the cache's {@link KvCacheType}), and per layer a device page table of page
 * addresses that the kernels follow. Pages are allocated as the sequence grows, never moved.
 *
 * <p>For SelfExtend a third array per layer holds every key rotated at its grouped position ⌊j/G⌋
 * ({@code [layer][K|V|Kg]}, ALGORITHMS.md §2.4 design 1), with its own page table.
 *
 * <p>Byte accounting follows the CPU {@code KvCache}'s: {@link #bytesPerToken} = 2·layers·kvDim·e
 * (3·… with grouped keys) for e-byte elements (4 for F32, as on the CPU; 2 for F16), {@link
 * #bytesResident} = length × that; {@link #bytesAllocated} counts whole pages.
 */
public final class CudaKvCache implements AutoCloseable {

  /** Positions per page. */
  public static final int PAGE_TOKENS = 256;

  private final CudaContext cx;
  private final int layers;
  private final int kvDim;
  private final int maxTokens;
  private final KvCacheType type;
  private final List<DeviceBuffer> pages = new ArrayList<>();
  private final DeviceBuffer[] keyTables;
  private final DeviceBuffer[] valueTables;
  private final DeviceBuffer[] groupKeyTables;
  private int length;

  CudaKvCache(CudaContext cx, int layers, int kvDim, int maxTokens, KvCacheType type) {
    this(cx, layers, kvDim, maxTokens, false, type);
  }

  /** A cache that also keeps SelfExtend's grouped keys when {@code groupKeys} is set. */
  CudaKvCache(
      CudaContext cx, int layers, int kvDim, int maxTokens, boolean groupKeys, KvCacheType type) {
    if (maxTokens <= 0) {
      throw new IllegalArgumentException("maxTokens must be > 0, got " + maxTokens);
    }
    this.cx = cx;
    this.layers = layers;
    this.kvDim = kvDim;
    this.maxTokens = maxTokens;
    this.type = type;
    int maxPages = (maxTokens + PAGE_TOKENS - 1) / PAGE_TOKENS;
    keyTables = new DeviceBuffer[layers];
    valueTables = new DeviceBuffer[layers];
    groupKeyTables = groupKeys ? new DeviceBuffer[layers] : null;
    for (int l = 0; l < layers; l++) {
      keyTables[l] = cx.alloc((long) maxPages * Long.BYTES);
      valueTables[l] = cx.alloc((long) maxPages * Long.BYTES);
      if (groupKeys) {
        groupKeyTables[l] = cx.alloc((long) maxPages * Long.BYTES);
      }
    }
  }

  public int length() {
    return length;
  }

  public int maxTokens() {
    return maxTokens;
  }

  /** Whether SelfExtend's grouped keys are kept. */
  public boolean hasGroupKeys() {
    return groupKeyTables != null;
  }

  /** The element type of the keys and values. */
  public KvCacheType type() {
    return type;
  }

  public long bytesPerToken() {
    return arrays() * layers * kvDim * type.bytes();
  }

  /**
   * Bytes a token takes in a cache of {@code config}'s shape and element type (with SelfExtend's
   * grouped keys).
   */
  public static long bytesPerToken(LlamaConfig config, boolean groupKeys, KvCacheType type) {
    return (groupKeys ? 3L : 2L) * config.layers() * config.kvDim() * type.bytes();
  }

  /**
   * Device memory kept free of KV pages for activations, the prefill weight scratch and the
   * attention scratch: the larger of 1 GiB and 5 % of the device.
   */
  public static long headroomBytes(long totalBytes) {
    return Math.max(1L << 30, totalBytes / 20);
  }

  /**
   * The KV positions a device can hold: its free memory after the weights, less {@link
   * #headroomBytes}, in whole pages of {@code bytesPerToken}-byte tokens. With {@code requested} >
   * 0 (a configured capacity) returns it when it fits and fails naming both numbers when it does
   * not; with 0, returns what fits (0 when nothing does).
   */
  public static long tokensThatFit(
      long freeBytes, long totalBytes, long bytesPerToken, long requested) {
    long budget = Math.max(0, freeBytes - headroomBytes(totalBytes));
    long fit = budget / (bytesPerToken * PAGE_TOKENS) * PAGE_TOKENS;
    if (requested <= 0) {
      return fit;
    }
    if (requested > fit) {
      throw new IllegalArgumentException(
          String.format(
              "a KV cache of %d tokens needs %.2f GiB on the GPU, but %.2f GiB are free after the"
                  + " weights and %.2f GiB of headroom: at most %d tokens fit (serve: lower"
                  + " kv.cacheTokens / --kv-cache-tokens, or leave it unset to use what fits;"
                  + " generate: lower --ctx)",
              requested,
              requested * (double) bytesPerToken / (1L << 30),
              freeBytes / (double) (1L << 30),
              headroomBytes(totalBytes) / (double) (1L << 30),
              fit));
    }
    return requested;
  }

  /** Arrays per layer in a page: keys, values (and grouped keys). */
  private long arrays() {
    return groupKeyTables != null ? 3L : 2L;
  }

  public long bytesResident() {
    return length * bytesPerToken();
  }

  public long bytesAllocated() {
    return (long) pages.size() * PAGE_TOKENS * bytesPerToken();
  }

  /** Device address of layer {@code l}'s key page table. */
  long keyTable(int l) {
    return keyTables[l].address();
  }

  long valueTable(int l) {
    return valueTables[l].address();
  }

  /** Device address of layer {@code l}'s grouped-key page table (SelfExtend only). */
  long groupKeyTable(int l) {
    return groupKeyTables[l].address();
  }

  /** Pages for {@code tokens} positions in total; fails naming the limit beyond maxTokens. */
  void reserve(int tokens) {
    if (tokens > maxTokens) {
      throw new IllegalStateException(
          "sequence of " + tokens + " tokens exceeds the KV cache limit of " + maxTokens);
    }
    long layerBytes = (long) PAGE_TOKENS * kvDim * type.bytes();
    while ((long) pages.size() * PAGE_TOKENS < tokens) {
      int p = pages.size();
      long arrays = arrays();
      DeviceBuffer page = cx.alloc(arrays * layers * layerBytes);
      pages.add(page);
      long[] k = new long[1];
      long[] v = new long[1];
      long[] g = new long[1];
      for (int l = 0; l < layers; l++) {
        k[0] = page.address() + (arrays * l) * layerBytes;
        v[0] = page.address() + (arrays * l + 1) * layerBytes;
        cx.write(keyTables[l], p, k, 1);
        cx.write(valueTables[l], p, v, 1);
        if (groupKeyTables != null) {
          g[0] = page.address() + (arrays * l + 2) * layerBytes;
          cx.write(groupKeyTables[l], p, g, 1);
        }
      }
    }
  }

  void setLength(int length) {
    this.length = length;
  }

  /** Forgets every token after the first {@code length}. */
  public void truncate(int length) {
    if (length < 0 || length > this.length) {
      throw new IllegalArgumentException(
          "cannot truncate a cache of " + this.length + " tokens to " + length);
    }
    this.length = length;
  }

  @Override
  public void close() {
    for (DeviceBuffer b : pages) {
      b.close();
    }
    pages.clear();
    for (int l = 0; l < layers; l++) {
      keyTables[l].close();
      valueTables[l].close();
      if (groupKeyTables != null) {
        groupKeyTables[l].close();
      }
    }
  }
}
