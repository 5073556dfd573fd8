package dev.longctx.engine.attention;

import dev.longctx.engine.attention.AttentionPolicy.BlockTopK;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Partial;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * The attention of one sequence under an {@link AttentionPolicy} other than plain dense: the
 * per-sequence state beside the KV cache (INT8 selector keys, block summaries, lightning-indexer
 * keys) and the computation for a chunk of queries of one layer.
 *
 * <p>Each query first gets its key set (all causal keys, the indexer's top-k shared by all heads,
 * or per KV head the top blocks), then attends over it. Under SelfExtend the key set is split at
 * the query's neighbor boundary: neighbor keys are attended with the query rotated at its own
 * position against keys rotated at theirs (the cache's normal keys), grouped keys with the query at
 * its grouped position against keys at ⌊j/G⌋ (the cache's second key array, ALGORITHMS.md §2.4
 * design 1); the two partials are merged by the exact LSE rule (§4.2), which gives the same result
 * as one softmax over the merged logit map (§2.3).
 */
public final class SequenceAttention {

  private final AttentionPolicy policy;
  private final SelfExtend se;
  private final int heads;
  private final int kvHeads;
  private final int headDim;
  private final int kvDim;
  private final int group;
  private final float scale;
  private final OwnHeadsSelector ownHeads;
  private final BlockSummaries[] blocks;
  private final LightningIndexer indexer;
  private final float[][] indexerKeys;
  private int capacity;

  private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

  /** Growable per-thread working memory. */
  private static final class Buffers {
    float[] p = new float[0];
    float[] parts = new float[0];
    float[] lses = new float[0];

    float[] p(int n) {
      if (p.length < n) {
        p = new float[Math.max(n, p.length * 2)];
      }
      return p;
    }
  }

  public SequenceAttention(AttentionPolicy policy, LlamaConfig c, int maxTokens) {
    policy.checkContext(maxTokens, c.contextLength());
    this.policy = policy;
    this.se = policy.positions();
    this.heads = c.heads();
    this.kvHeads = c.kvHeads();
    this.headDim = c.headDim();
    this.kvDim = c.kvDim();
    this.group = c.groupSize();
    this.scale = (float) (1.0 / Math.sqrt(headDim));
    this.capacity = Math.min(maxTokens, 256);
    int layers = c.layers();
    OwnHeadsSelector own = null;
    BlockSummaries[] b = null;
    LightningIndexer ix = null;
    float[][] ixKeys = null;
    if (policy instanceof IndexerTopK t) {
      switch (t.indexer()) {
        case IndexerSource.OwnHeads o ->
            own = new OwnHeadsSelector(layers, heads, kvHeads, headDim, se, capacity);
        case IndexerSource.Trained m -> {
          ix = m.indexer();
          if (ix.layers() != layers || ix.dim() != c.dim()) {
            throw new IllegalArgumentException(
                "the indexer has "
                    + ix.layers()
                    + " layers of input width "
                    + ix.dim()
                    + ", the model "
                    + layers
                    + " of width "
                    + c.dim());
          }
          ixKeys = new float[layers][capacity * ix.headDim()];
        }
      }
    } else if (policy instanceof BlockTopK t) {
      b = new BlockSummaries[layers];
      for (int l = 0; l < layers; l++) {
        b[l] = new BlockSummaries(kvHeads, headDim, t.blockSize(), capacity);
      }
    }
    this.ownHeads = own;
    this.blocks = b;
    this.indexer = ix;
    this.indexerKeys = ixKeys;
  }

  public AttentionPolicy policy() {
    return policy;
  }

  /** Whether the KV cache must keep keys rotated at SelfExtend's grouped positions too. */
  public boolean needsGroupKeys() {
    return se != null;
  }

  /** Makes room for {@code tokens} in the side state. */
  public void reserve(int tokens) {
    if (tokens <= capacity) {
      return;
    }
    int c = Math.max(tokens, capacity * 2);
    if (ownHeads != null) {
      ownHeads.reserve(c);
    }
    for (int l = 0; blocks != null && l < blocks.length; l++) {
      blocks[l].reserve(c);
    }
    for (int l = 0; indexerKeys != null && l < indexerKeys.length; l++) {
      indexerKeys[l] = Arrays.copyOf(indexerKeys[l], c * indexer.headDim());
    }
    capacity = c;
  }

  /** Bytes of the side state now allocated (selector keys, block summaries, indexer keys). */
  public long bytesAllocated() {
    long sum = 0;
    if (ownHeads != null) {
      sum += ownHeads.bytesAllocated();
    }
    for (int l = 0; blocks != null && l < blocks.length; l++) {
      sum += blocks[l].bytesAllocated();
    }
    for (int l = 0; indexerKeys != null && l < indexerKeys.length; l++) {
      sum += (long) indexerKeys[l].length * Float.BYTES;
    }
    return sum;
  }

  /**
   * Records tokens {@code [start, start + n)} of layer {@code layer} in the side state: row t of
   * {@code keys} (rotated at its position), of {@code groupKeys} (at ⌊j/G⌋, or null without
   * SelfExtend) and of {@code x} (the layer's normalized input) belong to position start + t.
   */
  public void append(int layer, int start, int n, float[] keys, float[] groupKeys, float[] x) {
    for (int t = 0; t < n; t++) {
      int pos = start + t;
      if (ownHeads != null) {
        ownHeads.put(layer, pos, keys, groupKeys, t * kvDim);
      }
      if (blocks != null) {
        // With SelfExtend, past blocks are (mostly) attended at grouped positions: summarize those.
        blocks[layer].put(pos, se != null ? groupKeys : keys, t * kvDim);
      }
    }
    if (indexer != null) {
      indexer.keys(layer, x, n, start, indexerKeys[layer]);
    }
  }

  /** Whether the selector reads the layer's normalized input (a model-file lightning indexer). */
  public boolean needsLayerInput() {
    return indexer != null;
  }

  /**
   * The key sets the chunk's {@code n} queries (positions {@code start..}) of one layer attend
   * over: entry {@code t·kvHeads + g} lists the positions (ascending) for query t's KV head g, or
   * is null where the query attends every causal key. Indexer top-k gives all heads of a query the
   * same array. This is the selection {@link #attend} uses; a coordinator computes it once and
   * sends it to the shards holding the keys.
   */
  public int[][] select(int layer, int start, int n, float[] qn, float[] qg, float[] x) {
    int[][] selection = new int[n * kvHeads][];
    if (policy instanceof IndexerTopK t) {
      selectIndexer(t, layer, start, n, qn, qg, x, selection);
    } else if (policy instanceof BlockTopK b) {
      selectBlocks(b, layer, start, n, qn, qg, selection);
    }
    return selection;
  }

  /**
   * Attention of the chunk's {@code n} queries (positions {@code start..}) of one layer: {@code qn}
   * rotated at their positions, {@code qg} at SelfExtend's grouped query positions (null without
   * SelfExtend), both {@code [n][heads][headDim]}; output to {@code out} in the same shape. The
   * cache is paged: key s at {@code keyPages[s >>> pageShift]}, row {@code s mod 2^pageShift} of
   * {@code [token][kvHead][headDim]} (grouped keys and values likewise; one contiguous array is a
   * single page with {@code Attention.CONTIGUOUS}). {@code x} is the layer's normalized input (for
   * a model-file indexer).
   */
  public void attend(
      int layer,
      int start,
      int n,
      float[] qn,
      float[] qg,
      float[][] keyPages,
      float[][] groupKeyPages,
      float[][] valuePages,
      int pageShift,
      float[] x,
      float[] out) {
    int[][] selection = select(layer, start, n, qn, qg, x);
    Kv kv = new Kv(keyPages, groupKeyPages, valuePages, pageShift);
    Parallel.forRange(
        n * kvHeads,
        (from, to) -> {
          for (int u = from; u < to; u++) {
            int t = u / kvHeads;
            int g = u % kvHeads;
            attendGroup(
                start + t,
                t * heads * headDim + g * group * headDim,
                g,
                selection[u],
                qn,
                qg,
                kv,
                out);
          }
        });
  }

  /** One layer's paged cache as {@link #attend} receives it. */
  private record Kv(float[][] keys, float[][] groupKeys, float[][] values, int shift) {}

  /**
   * {@code Attention.attendGroupPaged} over keys {@code [from, to)}, or over {@code
   * positions[posFrom, posTo)} when positions is not null; grouped keys when {@code grouped}.
   */
  private void attendRun(
      float[] q,
      int qOff,
      Kv kv,
      boolean grouped,
      int base,
      int[] positions,
      int from,
      int to,
      float[] out,
      int outOff,
      float[] lse,
      int lseOff) {
    float[][] keys = grouped ? kv.groupKeys() : kv.keys();
    if (positions == null) {
      Attention.attendGroupPaged(
          q,
          qOff,
          group,
          keys,
          kv.values(),
          kv.shift(),
          base,
          kvDim,
          from,
          to,
          headDim,
          scale,
          out,
          outOff,
          lse,
          lseOff);
    } else {
      Attention.attendGroupPagedPositions(
          q,
          qOff,
          group,
          keys,
          kv.values(),
          kv.shift(),
          base,
          kvDim,
          positions,
          from,
          to - from,
          headDim,
          scale,
          out,
          outOff,
          lse,
          lseOff);
    }
  }

  /**
   * One GQA group of one query at position i over {@code positions} (sorted ascending; null: all
   * keys ≤ i).
   */
  private void attendGroup(
      int i, int qOff, int g, int[] positions, float[] qn, float[] qg, Kv kv, float[] out) {
    int base = g * headDim;
    Buffers buf = BUFFERS.get();
    if (buf.parts.length < 2 * group * headDim) {
      buf.parts = new float[2 * group * headDim];
      buf.lses = new float[2 * group];
    }
    float[] lses = buf.lses;
    int count = positions == null ? i + 1 : positions.length;
    if (se == null) {
      attendRun(qn, qOff, kv, false, base, positions, 0, count, out, qOff, lses, 0);
      return;
    }
    // SelfExtend: neighbor keys [ns, i] at true positions, grouped keys [0, ns) at ⌊j/G⌋.
    int ns = se.neighborStart(i);
    int split = positions == null ? ns : lowerBound(positions, ns);
    float[] parts = buf.parts;
    int gStride = group * headDim;
    attendRun(qn, qOff, kv, false, base, positions, split, count, parts, 0, lses, 0);
    attendRun(qg, qOff, kv, true, base, positions, 0, split, parts, gStride, lses, group);
    float[] two = new float[2 * headDim];
    float[] twoLse = new float[2];
    for (int h = 0; h < group; h++) {
      System.arraycopy(parts, h * headDim, two, 0, headDim);
      System.arraycopy(parts, gStride + h * headDim, two, headDim, headDim);
      twoLse[0] = lses[h];
      twoLse[1] = lses[group + h];
      Partial.merge(two, twoLse, 2, headDim, out, qOff + h * headDim);
    }
  }

  /** First index of sorted {@code a} whose value is ≥ {@code key}. */
  private static int lowerBound(int[] a, int key) {
    int lo = 0;
    int hi = a.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (a[mid] < key) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // ---------------------------------------------------------------------------------------------
  // Indexer top-k (ALGORITHMS.md §1.2 steps 9–11, §5.2)

  private void selectIndexer(
      IndexerTopK t,
      int layer,
      int start,
      int n,
      float[] qn,
      float[] qg,
      float[] x,
      int[][] selection) {
    float[] iq = null;
    float[] iw = null;
    if (indexer != null) {
      iq = new float[n * indexer.heads() * indexer.headDim()];
      iw = new float[n * indexer.heads()];
      indexer.queries(layer, x, n, start, iq, iw);
    }
    float[] fiq = iq;
    float[] fiw = iw;
    boolean perToken = n > 1;
    Parallel.RangeBody body =
        (from, to) -> {
          for (int tt = from; tt < to; tt++) {
            int i = start + tt;
            int len = i + 1;
            if (len <= t.k() || i < t.denseBelowTokens()) {
              continue; // every causal key is selected: dense (§1.3 "Short sequences")
            }
            int[] chosen;
            if (indexer != null) {
              float[] p = BUFFERS.get().p(len);
              int ih = indexer.heads();
              indexer.score(
                  fiq, tt * ih * indexer.headDim(), fiw, tt * ih, indexerKeys[layer], len, p);
              chosen = TopK.select(p, null, len, t.k()).positions();
              Arrays.sort(chosen);
            } else {
              chosen = ownHeads.select(layer, i, t.k(), qn, qg, tt * heads * headDim, !perToken);
            }
            for (int g = 0; g < kvHeads; g++) {
              selection[tt * kvHeads + g] = chosen;
            }
          }
        };
    if (perToken) {
      Parallel.forRange(n, body);
    } else {
      body.run(0, n);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Block top-k (ALGORITHMS.md §3.1 MoBA, §3.3 Quest)

  private void selectBlocks(
      BlockTopK b, int layer, int start, int n, float[] qn, float[] qg, int[][] selection) {
    int size = b.blockSize();
    Parallel.forRange(
        n * kvHeads,
        (from, to) -> {
          for (int u = from; u < to; u++) {
            int tt = u / kvHeads;
            int g = u % kvHeads;
            int i = start + tt;
            int current = i / size; // complete past blocks: 0 .. current−1 ((b+1)·B ≤ i)
            if (current <= b.topBlocks() - 1) {
              continue; // every block is selected: dense
            }
            float[] scores = new float[current];
            float[] q = se != null ? qg : qn;
            for (int h = g * group; h < (g + 1) * group; h++) {
              // One selection per KV head: the scores of the group's query heads are summed (our
              // choice for GQA, ALGORITHMS.md §3.3 "Scope", §5.2 notes).
              blocks[layer].addScores(
                  b.score(), q, tt * heads * headDim + h * headDim, g, current, scores);
            }
            int[] chosen = TopK.select(scores, null, current, b.topBlocks() - 1).positions();
            Arrays.sort(chosen);
            int tail = i - current * size + 1;
            int[] positions = new int[chosen.length * size + tail];
            int k = 0;
            for (int blk : chosen) {
              for (int s = blk * size; s < (blk + 1) * size; s++) {
                positions[k++] = s;
              }
            }
            for (int s = current * size; s <= i; s++) {
              positions[k++] = s; // the current block, always (§3.1 "Causality")
            }
            selection[u] = positions;
          }
        });
  }
}
