package dev.longctx.engine.attention;

import dev.longctx.engine.attention.AttentionPolicy.BlockTopK;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Ops;
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
  private final QuantizedKeys[] neighborIndex;
  private final QuantizedKeys[] groupIndex;
  private final BlockSummaries[] blocks;
  private final LightningIndexer indexer;
  private final float[][] indexerKeys;
  private int capacity;

  private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

  /** Growable per-thread working memory. */
  private static final class Buffers {
    float[] z = new float[0];
    float[] p = new float[0];
    float[] parts = new float[0];
    float[] lses = new float[0];

    float[] z(int n) {
      if (z.length < n) {
        z = new float[Math.max(n, z.length * 2)];
      }
      return z;
    }

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
    QuantizedKeys[] n = null;
    QuantizedKeys[] g = null;
    BlockSummaries[] b = null;
    LightningIndexer ix = null;
    float[][] ixKeys = null;
    if (policy instanceof IndexerTopK t) {
      switch (t.indexer()) {
        case IndexerSource.OwnHeads o -> {
          n = new QuantizedKeys[layers];
          g = se != null ? new QuantizedKeys[layers] : null;
          for (int l = 0; l < layers; l++) {
            n[l] = new QuantizedKeys(kvHeads, headDim, capacity);
            if (g != null) {
              g[l] = new QuantizedKeys(kvHeads, headDim, capacity);
            }
          }
        }
        case IndexerSource.ModelFile m -> {
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
        case IndexerSource.IndexerFile f ->
            throw new IllegalArgumentException(
                "indexer files (ALGORITHMS.md §5.3) cannot be read yet: " + f.path());
      }
    } else if (policy instanceof BlockTopK t) {
      b = new BlockSummaries[layers];
      for (int l = 0; l < layers; l++) {
        b[l] = new BlockSummaries(kvHeads, headDim, t.blockSize(), capacity);
      }
    }
    this.neighborIndex = n;
    this.groupIndex = g;
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
    for (int l = 0; neighborIndex != null && l < neighborIndex.length; l++) {
      neighborIndex[l].reserve(c);
      if (groupIndex != null) {
        groupIndex[l].reserve(c);
      }
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
    for (int l = 0; neighborIndex != null && l < neighborIndex.length; l++) {
      sum += neighborIndex[l].bytesAllocated();
      if (groupIndex != null) {
        sum += groupIndex[l].bytesAllocated();
      }
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
   * Records tokens {@code [start, start + n)} of layer {@code layer} in the side state, after their
   * keys are in the cache ({@code keys}: rotated at their positions; {@code groupKeys}: at ⌊j/G⌋,
   * or null without SelfExtend; {@code x}: the layer's normalized input rows of the chunk).
   */
  public void append(int layer, int start, int n, float[] keys, float[] groupKeys, float[] x) {
    appendRows(layer, start, n, keys, start * kvDim, groupKeys, x);
  }

  /**
   * {@link #append} with the chunk's keys as rows of their own: token {@code start + t}'s key at
   * {@code keys[offset + t·kvDim]} (and its grouped key at the same place in {@code groupKeys}). A
   * coordinator that selects for shards holds no full key cache, only the rows each step brings.
   */
  public void appendRows(
      int layer, int start, int n, float[] keys, int offset, float[] groupKeys, float[] x) {
    for (int t = 0; t < n; t++) {
      int pos = start + t;
      int row = offset + t * kvDim;
      if (neighborIndex != null) {
        neighborIndex[layer].put(pos, keys, row);
        if (groupIndex != null) {
          groupIndex[layer].put(pos, groupKeys, row);
        }
      }
      if (blocks != null) {
        // With SelfExtend, past blocks are (mostly) attended at grouped positions: summarize those.
        blocks[layer].put(pos, se != null ? groupKeys : keys, row);
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
   * SelfExtend), both {@code [n][heads][headDim]}; output to {@code out} in the same shape. {@code
   * x} is the layer's normalized input (for a model-file indexer).
   */
  public void attend(
      int layer,
      int start,
      int n,
      float[] qn,
      float[] qg,
      float[] keys,
      float[] groupKeys,
      float[] values,
      float[] x,
      float[] out) {
    int[][] selection = select(layer, start, n, qn, qg, x);
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
                keys,
                groupKeys,
                values,
                out);
          }
        });
  }

  /**
   * One GQA group of one query at position i over {@code positions} (sorted ascending; null: all
   * keys ≤ i).
   */
  private void attendGroup(
      int i,
      int qOff,
      int g,
      int[] positions,
      float[] qn,
      float[] qg,
      float[] keys,
      float[] groupKeys,
      float[] values,
      float[] out) {
    int base = g * headDim;
    float[] lse1 = new float[group];
    if (se == null) {
      if (positions == null) {
        Attention.attendGroup(
            qn, qOff, group, keys, values, base, kvDim, i + 1, headDim, scale, out, qOff, lse1, 0);
      } else {
        Attention.attendGroupPositions(
            qn,
            qOff,
            group,
            keys,
            values,
            base,
            kvDim,
            positions,
            0,
            positions.length,
            headDim,
            scale,
            out,
            qOff,
            lse1,
            0);
      }
      return;
    }
    // SelfExtend: neighbor keys [ns, i] at true positions, grouped keys [0, ns) at ⌊j/G⌋.
    int ns = se.neighborStart(i);
    Buffers buf = BUFFERS.get();
    if (buf.parts.length < 2 * group * headDim) {
      buf.parts = new float[2 * group * headDim];
      buf.lses = new float[2 * group];
    }
    float[] parts = buf.parts;
    float[] lses = buf.lses;
    int gStride = group * headDim;
    if (positions == null) {
      Attention.attendGroup(
          qn,
          qOff,
          group,
          keys,
          values,
          base + ns * kvDim,
          kvDim,
          i + 1 - ns,
          headDim,
          scale,
          parts,
          0,
          lses,
          0);
      Attention.attendGroup(
          qg, qOff, group, groupKeys, values, base, kvDim, ns, headDim, scale, parts, gStride, lses,
          group);
    } else {
      int split = lowerBound(positions, ns);
      Attention.attendGroupPositions(
          qn,
          qOff,
          group,
          keys,
          values,
          base,
          kvDim,
          positions,
          split,
          positions.length - split,
          headDim,
          scale,
          parts,
          0,
          lses,
          0);
      Attention.attendGroupPositions(
          qg, qOff, group, groupKeys, values, base, kvDim, positions, 0, split, headDim, scale,
          parts, gStride, lses, group);
    }
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
            float[] p = BUFFERS.get().p(len);
            if (indexer != null) {
              int ih = indexer.heads();
              indexer.score(
                  fiq, tt * ih * indexer.headDim(), fiw, tt * ih, indexerKeys[layer], len, p);
            } else {
              ownHeadScores(layer, i, tt * heads * headDim, qn, qg, p, !perToken);
            }
            int[] chosen = TopK.select(p, null, len, t.k()).positions();
            Arrays.sort(chosen);
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

  /**
   * The own-heads score of every key {@code s ≤ i} (ALGORITHMS.md §5.2): {@code p̂_s = Σ_h
   * softmax_s(q_h·k̃_s/√d)} over all query heads, k̃ the INT8 keys (the 1/H of the mean is left
   * out: it does not change the order). Under SelfExtend the logits use the same position mapping
   * as attention.
   */
  private void ownHeadScores(
      int layer, int i, int qBase, float[] qn, float[] qg, float[] p, boolean parallel) {
    int len = i + 1;
    Buffers buf = BUFFERS.get();
    float[] z = buf.z(heads * len);
    int ns = se == null ? 0 : se.neighborStart(i);
    Parallel.RangeBody perHead =
        (from, to) -> {
          for (int h = from; h < to; h++) {
            int qOff = qBase + h * headDim;
            int kh = h / group;
            int zo = h * len;
            if (ns > 0) {
              groupIndex[layer].scores(qg, qOff, kh, 0, ns, scale, z, zo);
            }
            neighborIndex[layer].scores(qn, qOff, kh, ns, len, scale, z, zo + ns);
            float max = Ops.max(z, zo, len);
            double sum = Ops.expSub(z, zo, len, max);
            Ops.scale(z, zo, len, (float) (1.0 / sum));
          }
        };
    Parallel.RangeBody sumHeads =
        (from, to) -> {
          System.arraycopy(z, from, p, from, to - from);
          for (int h = 1; h < heads; h++) {
            Ops.add(p, from, z, h * len + from, to - from);
          }
        };
    if (parallel) {
      Parallel.forRange(heads, perHead);
      Parallel.forRange(len, 1024, sumHeads);
    } else {
      perHead.run(0, heads);
      sumHeads.run(0, len);
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
