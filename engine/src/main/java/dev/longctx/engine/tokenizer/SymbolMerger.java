package dev.longctx.engine.tokenizer;

import java.util.Arrays;

/**
 * The merge loop shared by both BPE flavours: a doubly linked list of symbols and a binary heap of
 * candidate adjacent pairs, always merging the best pair (lowest priority value, ties to the
 * leftmost), in O(n log n) instead of rescanning the sequence after every merge (llama2.c's O(n²)
 * loop takes seconds on a 200 KB text).
 *
 * <p>A heap entry becomes stale when either of its symbols changes; each symbol carries a version
 * bumped on every change, and a popped entry is used only if both versions still match.
 */
final class SymbolMerger {

  /** How two adjacent symbols merge. */
  interface PairRule {
    /** Value meaning "these two symbols do not merge". */
    long NONE = Long.MIN_VALUE;

    /**
     * {@code (priority << 32) | mergedId} for merging symbols {@code left} and {@code right} of
     * {@code m} (lower priority merges first), or {@link #NONE}.
     */
    long merge(SymbolMerger m, int left, int right);
  }

  // Per symbol: token id (-1 = not a token yet), text span [start, end), neighbours, version.
  final int[] id;
  final int[] start;
  final int[] end;
  private final int[] prev;
  private final int[] next;
  private final int[] version;
  private final int count;

  // The heap, as parallel arrays: key = (priority << 32) | left symbol index.
  private long[] hKey;
  private int[] hRight;
  private int[] hMerged;
  private int[] hVerL;
  private int[] hVerR;
  private int hSize;

  SymbolMerger(int capacity) {
    id = new int[capacity];
    start = new int[capacity];
    end = new int[capacity];
    prev = new int[capacity];
    next = new int[capacity];
    version = new int[capacity];
    count = capacity;
    int h = Math.max(16, capacity);
    hKey = new long[h];
    hRight = new int[h];
    hMerged = new int[h];
    hVerL = new int[h];
    hVerR = new int[h];
  }

  /** Sets symbol {@code i}; symbols must be set for all indices before {@link #run}. */
  void set(int i, int tokenId, int from, int to) {
    id[i] = tokenId;
    start[i] = from;
    end[i] = to;
    prev[i] = i - 1;
    next[i] = i + 1 < count ? i + 1 : -1;
  }

  /**
   * Merges until no adjacent pair merges; then {@link #first()}/{@link #next(int)} walk the result.
   */
  void run(PairRule rule) {
    for (int i = 0; i + 1 < count; i++) {
      offer(rule, i, i + 1);
    }
    while (hSize > 0) {
      int left = (int) hKey[0];
      int right = hRight[0];
      int merged = hMerged[0];
      int verL = hVerL[0];
      int verR = hVerR[0];
      pop();
      if (version[left] != verL || version[right] != verR) {
        continue;
      }
      // The left symbol absorbs the right one.
      id[left] = merged;
      end[left] = end[right];
      version[left]++;
      version[right]++;
      int after = next[right];
      next[left] = after;
      if (after >= 0) {
        prev[after] = left;
      }
      next[right] = -2; // marks "removed" for debugging; never walked
      if (prev[left] >= 0) {
        offer(rule, prev[left], left);
      }
      if (after >= 0) {
        offer(rule, left, after);
      }
    }
  }

  int first() {
    return count > 0 ? 0 : -1;
  }

  int next(int i) {
    return next[i];
  }

  private void offer(PairRule rule, int left, int right) {
    long r = rule.merge(this, left, right);
    if (r == PairRule.NONE) {
      return;
    }
    long key = (r & 0xffffffff00000000L) | left;
    if (hSize == hKey.length) {
      int n = hSize * 2;
      hKey = Arrays.copyOf(hKey, n);
      hRight = Arrays.copyOf(hRight, n);
      hMerged = Arrays.copyOf(hMerged, n);
      hVerL = Arrays.copyOf(hVerL, n);
      hVerR = Arrays.copyOf(hVerR, n);
    }
    int i = hSize++;
    // Sift up.
    while (i > 0) {
      int parent = (i - 1) >>> 1;
      if (hKey[parent] <= key) {
        break;
      }
      move(parent, i);
      i = parent;
    }
    hKey[i] = key;
    hRight[i] = right;
    hMerged[i] = (int) r;
    hVerL[i] = version[left];
    hVerR[i] = version[right];
  }

  private void pop() {
    int last = --hSize;
    if (last == 0) {
      return;
    }
    long key = hKey[last];
    int right = hRight[last];
    int merged = hMerged[last];
    int verL = hVerL[last];
    int verR = hVerR[last];
    int i = 0;
    // Sift down.
    while (true) {
      int c = 2 * i + 1;
      if (c >= last) {
        break;
      }
      if (c + 1 < last && hKey[c + 1] < hKey[c]) {
        c++;
      }
      if (hKey[c] >= key) {
        break;
      }
      move(c, i);
      i = c;
    }
    hKey[i] = key;
    hRight[i] = right;
    hMerged[i] = merged;
    hVerL[i] = verL;
    hVerR[i] = verR;
  }

  private void move(int from, int to) {
    hKey[to] = hKey[from];
    hRight[to] = hRight[from];
    hMerged[to] = hMerged[from];
    hVerL[to] = hVerL[from];
    hVerR[to] = hVerR[from];
  }

  /**
   * Maps a float so that signed int order equals float order, for use as a heap priority (ties then
   * break on the left symbol's position, which is the sequence order).
   */
  static int sortableFloat(float f) {
    int bits = Float.floatToIntBits(f);
    return bits ^ ((bits >> 31) & 0x7fffffff);
  }
}
