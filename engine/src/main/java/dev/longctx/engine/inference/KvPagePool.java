package dev.longctx.engine.inference;

import java.util.ArrayDeque;

/**
 * Fixed-size KV pages of one shape ({@code pageTokens × kvDim} floats each), handed out to caches
 * and taken back when a sequence is released, so memory freed by one sequence serves the next
 * without a new allocation. Thread-safe: the sequences of a server share one pool.
 *
 * <p>Accounting is exact: {@link #bytesAllocated} counts every page this pool ever created (in use
 * or free), {@link #pagesInUse} those held by caches now.
 */
public final class KvPagePool {

  private final int pageTokens;
  private final int pageShift;
  private final int kvDim;
  private final ArrayDeque<float[]> free = new ArrayDeque<>();
  private long created;

  /** A pool of pages of {@code pageTokens} tokens (a power of two) of {@code kvDim} floats. */
  public KvPagePool(int pageTokens, int kvDim) {
    if (pageTokens < 1 || Integer.bitCount(pageTokens) != 1) {
      throw new IllegalArgumentException("page size must be a power of two, got " + pageTokens);
    }
    if (kvDim < 1) {
      throw new IllegalArgumentException("kvDim must be >= 1, got " + kvDim);
    }
    this.pageTokens = pageTokens;
    this.pageShift = Integer.numberOfTrailingZeros(pageTokens);
    this.kvDim = kvDim;
  }

  public int pageTokens() {
    return pageTokens;
  }

  /** log2 of {@link #pageTokens}: token s lives in page {@code s >>> pageShift}. */
  public int pageShift() {
    return pageShift;
  }

  public int kvDim() {
    return kvDim;
  }

  /** Bytes of one page. */
  public long pageBytes() {
    return (long) pageTokens * kvDim * Float.BYTES;
  }

  /** A page, reused when one is free. Its content is unspecified. */
  public synchronized float[] acquire() {
    float[] page = free.poll();
    if (page == null) {
      page = new float[pageTokens * kvDim];
      created++;
    }
    return page;
  }

  /** Takes a page back; it must have come from this pool and not be used after. */
  public synchronized void release(float[] page) {
    if (page.length != pageTokens * kvDim) {
      throw new IllegalArgumentException(
          "page of " + page.length + " floats is not from this pool");
    }
    free.push(page);
  }

  /** Pages held by caches now. */
  public synchronized long pagesInUse() {
    return created - free.size();
  }

  /** Pages waiting to be reused. */
  public synchronized int pagesFree() {
    return free.size();
  }

  /** Bytes of every page this pool created, in use or free. */
  public synchronized long bytesAllocated() {
    return created * pageBytes();
  }
}
