package dev.longctx.engine.tokenizer;

import java.util.Arrays;

/**
 * Ranked BPE merges as an open-addressing hash map from the id pair (left, right) to (rank, merged
 * id), so lookups neither box nor build strings. Llama-3 has 280K merges; a {@code HashMap<Long,
 * Long>} of them would cost ~30 MB of objects.
 */
final class MergeTable {
  private static final long EMPTY = -1L;

  private final long[] keys;
  private final long[] values;
  private final int mask;
  private final int shift;
  private int size;

  MergeTable(int expected) {
    int cap = Integer.highestOneBit(Math.max(16, expected * 2 - 1)) << 1;
    keys = new long[cap];
    values = new long[cap];
    Arrays.fill(keys, EMPTY);
    mask = cap - 1;
    shift = 64 - Integer.numberOfTrailingZeros(cap);
  }

  /** Adds a merge unless the pair is already present (the first, highest-priority one wins). */
  void put(int left, int right, int rank, int merged) {
    long key = key(left, right);
    int i = slot(key);
    while (keys[i] != EMPTY) {
      if (keys[i] == key) {
        return;
      }
      i = (i + 1) & mask;
    }
    keys[i] = key;
    values[i] = ((long) rank << 32) | (merged & 0xffffffffL);
    size++;
  }

  /** {@code (rank << 32) | mergedId}, or -1 when the pair does not merge. */
  long get(int left, int right) {
    long key = key(left, right);
    int i = slot(key);
    while (true) {
      long k = keys[i];
      if (k == key) {
        return values[i];
      }
      if (k == EMPTY) {
        return -1L;
      }
      i = (i + 1) & mask;
    }
  }

  int size() {
    return size;
  }

  private static long key(int left, int right) {
    return ((long) left << 32) | (right & 0xffffffffL);
  }

  private int slot(long key) {
    // Fibonacci hashing: the multiply mixes all key bits into the top bits, which we keep.
    return (int) ((key * 0x9E3779B97F4A7C15L) >>> shift);
  }
}
