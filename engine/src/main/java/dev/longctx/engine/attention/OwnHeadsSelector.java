package dev.longctx.engine.attention;

import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * The training-free own-heads selector (ALGORITHMS.md §5.2 "own heads, quantized keys"), in two
 * stages so that a query does not pay a full-precision, all-heads score for every key:
 *
 * <ol>
 *   <li><b>Page pruning</b> (Quest, §3.3): per page of {@value #PAGE} tokens and KV head the cache
 *       keeps the element-wise min and max of the keys. Every query head's Quest bound of every
 *       page is turned into a softmax over pages and the heads' softmaxes are summed — the page
 *       analogue of p̂ below. The best {@code OVERSAMPLE·⌈k/PAGE⌉} pages survive. This reads 2·d
 *       floats per 16 tokens per KV head: 1/8 of the fp32 keys, none of the values.
 *   <li><b>Exact scoring</b> of the surviving tokens: {@code p̂_s = Σ_h softmax_s(q_h·k̃_s/√d)}
 *       over the candidates with every query head, k̃ the INT8 keys (one widening per key row
 *       serves a whole GQA group); the top k under (score desc, position asc) are selected.
 * </ol>
 *
 * <p>The first {@value #SINKS} tokens (attention sinks) and the last {@value #LOCAL} (the local
 * window) are always selected, counted within k (§5.1 "recommended extras"; for k < 4·LOCAL each is
 * capped at k/4). The page holding the query is always a candidate, so a page bound never sees keys
 * after the query and prefill selects what decode selects. Under SelfExtend the logits use the same
 * two position mappings as attention (neighbor keys at their positions, farther keys at ⌊j/G⌋,
 * §2.2), and bounds come from pages of the matching key array.
 *
 * <p>The selection is one set shared by all heads of the query, as DSA's (§1.2, §5.2 "per layer").
 */
final class OwnHeadsSelector {

  /** Page size, sinks, local window, oversampling: {@link IndexerSource.OwnHeads}'s (the GPU's). */
  static final int PAGE = IndexerSource.OwnHeads.PAGE;

  static final int SINKS = IndexerSource.OwnHeads.SINKS;
  static final int LOCAL = IndexerSource.OwnHeads.LOCAL;
  static final int OVERSAMPLE = IndexerSource.OwnHeads.OVERSAMPLE;

  private final int heads;
  private final int kvHeads;
  private final int headDim;
  private final int group;
  private final float scale;
  private final SelfExtend se;
  private final QuantizedKeys[] keys;
  private final QuantizedKeys[] groupKeys;
  private final BlockSummaries[] pages;
  private final BlockSummaries[] groupPages;

  private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

  /** Growable per-thread working memory. */
  private static final class Buffers {
    float[] bounds = new float[0];
    float[] weights = new float[0];
    float[] z = new float[0];
    float[] p = new float[0];
    int[] positions = new int[0];

    void ensure(int heads, int pageCount, int candidates) {
      if (bounds.length < heads * pageCount) {
        bounds = new float[Math.max(heads * pageCount, bounds.length * 2)];
      }
      if (weights.length < pageCount) {
        weights = new float[Math.max(pageCount, weights.length * 2)];
      }
      if (z.length < heads * candidates) {
        z = new float[Math.max(heads * candidates, z.length * 2)];
      }
      if (p.length < candidates) {
        p = new float[Math.max(candidates, p.length * 2)];
        positions = new int[p.length];
      }
    }
  }

  OwnHeadsSelector(int layers, int heads, int kvHeads, int headDim, SelfExtend se, int capacity) {
    this.heads = heads;
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.group = heads / kvHeads;
    this.scale = (float) (1.0 / Math.sqrt(headDim));
    this.se = se;
    this.keys = new QuantizedKeys[layers];
    this.pages = new BlockSummaries[layers];
    this.groupKeys = se != null ? new QuantizedKeys[layers] : null;
    this.groupPages = se != null ? new BlockSummaries[layers] : null;
    for (int l = 0; l < layers; l++) {
      keys[l] = new QuantizedKeys(kvHeads, headDim, capacity);
      pages[l] = new BlockSummaries(kvHeads, headDim, PAGE, capacity, false);
      if (se != null) {
        groupKeys[l] = new QuantizedKeys(kvHeads, headDim, capacity);
        groupPages[l] = new BlockSummaries(kvHeads, headDim, PAGE, capacity, false);
      }
    }
  }

  void reserve(int tokens) {
    for (int l = 0; l < keys.length; l++) {
      keys[l].reserve(tokens);
      pages[l].reserve(tokens);
      if (se != null) {
        groupKeys[l].reserve(tokens);
        groupPages[l].reserve(tokens);
      }
    }
  }

  /** Bytes of the INT8 keys, their scales and the page bounds now allocated. */
  long bytesAllocated() {
    long sum = 0;
    for (int l = 0; l < keys.length; l++) {
      sum += keys[l].bytesAllocated() + pages[l].bytesAllocated();
      if (se != null) {
        sum += groupKeys[l].bytesAllocated() + groupPages[l].bytesAllocated();
      }
    }
    return sum;
  }

  /**
   * Records token {@code pos} of layer {@code layer}: its keys at {@code k[off ..]} (rotated at its
   * position) and, under SelfExtend, at {@code gk[off ..]} (rotated at ⌊pos/G⌋).
   */
  void put(int layer, int pos, float[] k, float[] gk, int off) {
    keys[layer].put(pos, k, off);
    pages[layer].put(pos, k, off);
    if (se != null) {
      groupKeys[layer].put(pos, gk, off);
      groupPages[layer].put(pos, gk, off);
    }
  }

  /**
   * The k positions ({@code k < i + 1}) query {@code i} attends, sorted ascending. {@code qn} and
   * {@code qg} hold the query's heads at {@code qBase} (rotated at its position and at SelfExtend's
   * grouped query position). {@code parallel}: spread the KV heads over the worker threads (a
   * decode step; a prefill chunk parallelizes over queries instead).
   */
  int[] select(int layer, int i, int k, float[] qn, float[] qg, int qBase, boolean parallel) {
    int len = i + 1;
    int ns = se == null ? 0 : se.neighborStart(i);
    int sinks = Math.min(SINKS, k / 4);
    int local = Math.min(LOCAL, k / 4);
    int pageCount = (len + PAGE - 1) / PAGE;
    int keep = OVERSAMPLE * ((k + PAGE - 1) / PAGE);
    Buffers buf = BUFFERS.get();
    int[] cand;
    int candidates;
    if (pageCount <= keep + 2) {
      buf.ensure(heads, 0, len);
      cand = buf.positions;
      for (int s = 0; s < len; s++) {
        cand[s] = s;
      }
      candidates = len;
    } else {
      buf.ensure(heads, pageCount, (keep + 2) * PAGE);
      int[] kept =
          keptPages(layer, i, ns, pageCount, keep, sinks, local, qn, qg, qBase, buf, parallel);
      cand = buf.positions;
      candidates = 0;
      for (int b : kept) {
        for (int s = b * PAGE, end = Math.min(len, (b + 1) * PAGE); s < end; s++) {
          cand[candidates++] = s;
        }
      }
    }
    float[] p = buf.p;
    scoreCandidates(layer, ns, cand, candidates, qn, qg, qBase, buf, parallel);
    for (int c = 0; c < candidates; c++) {
      int s = cand[c];
      if (s < sinks || s >= len - local) {
        p[c] = Float.POSITIVE_INFINITY;
      }
    }
    int[] chosen = TopK.select(p, cand, candidates, k).positions();
    Arrays.sort(chosen);
    return chosen;
  }

  /**
   * Stage 1: the indices of the pages that survive, sorted ascending: the {@code keep} best by the
   * summed per-head softmax of the Quest bounds, plus the pages holding forced tokens and the
   * query's own (partial) page.
   */
  private int[] keptPages(
      int layer,
      int i,
      int ns,
      int pageCount,
      int keep,
      int sinks,
      int local,
      float[] qn,
      float[] qg,
      int qBase,
      Buffers buf,
      boolean parallel) {
    float[] bounds = buf.bounds;
    int current = i / PAGE; // pages < current are complete; their bounds see only keys ≤ i
    // Pages entirely before the neighbor start are attended at grouped positions, pages entirely
    // after it at true positions; the one straddling ns takes the larger of its two bounds.
    int groupedEnd = ns / PAGE;
    int trueStart = (ns + PAGE - 1) / PAGE;
    Parallel.RangeBody body =
        (from, to) -> {
          for (int h = from * group; h < to * group; h++) {
            int kh = h / group;
            int qOff = qBase + h * headDim;
            int o = h * current;
            if (groupedEnd > 0) {
              groupPages[layer].bounds(
                  qg, qOff, kh, 0, Math.min(groupedEnd, current), scale, bounds, o);
            }
            if (trueStart < current) {
              pages[layer].bounds(qn, qOff, kh, trueStart, current, scale, bounds, o + trueStart);
            }
            if (groupedEnd < trueStart && groupedEnd < current) {
              float[] two = new float[1];
              groupPages[layer].bounds(qg, qOff, kh, groupedEnd, groupedEnd + 1, scale, two, 0);
              float g = two[0];
              pages[layer].bounds(qn, qOff, kh, groupedEnd, groupedEnd + 1, scale, two, 0);
              bounds[o + groupedEnd] = Math.max(g, two[0]);
            }
            float max = Ops.max(bounds, o, current);
            double sum = Ops.expSub(bounds, o, current, max);
            Ops.scale(bounds, o, current, (float) (1.0 / sum));
          }
        };
    if (parallel) {
      Parallel.forRange(kvHeads, body);
    } else {
      body.run(0, kvHeads);
    }
    float[] w = buf.weights;
    System.arraycopy(bounds, 0, w, 0, current);
    for (int h = 1; h < heads; h++) {
      Ops.add(w, 0, bounds, h * current, current);
    }
    // Forced: the sinks' pages and the local window's complete pages (the partial page is added
    // below in any case).
    for (int b = 0; b * PAGE < sinks; b++) {
      w[b] = Float.POSITIVE_INFINITY;
    }
    for (int b = Math.max(0, (i + 1 - local) / PAGE); b < current; b++) {
      w[b] = Float.POSITIVE_INFINITY;
    }
    int[] best = TopK.select(w, null, current, keep).positions();
    int[] kept = Arrays.copyOf(best, best.length + 1);
    kept[best.length] = current;
    Arrays.sort(kept);
    return kept;
  }

  /**
   * Stage 2: {@code buf.p[c] = Σ_h softmax_c(scale·q_h·k̃_{cand[c]})} over the candidates (sorted
   * ascending), grouped keys with the grouped query before {@code ns}, true ones from it on.
   */
  private void scoreCandidates(
      int layer,
      int ns,
      int[] cand,
      int candidates,
      float[] qn,
      float[] qg,
      int qBase,
      Buffers buf,
      boolean parallel) {
    float[] z = buf.z;
    Parallel.RangeBody body =
        (from, to) -> {
          for (int kh = from; kh < to; kh++) {
            int qOff = qBase + kh * group * headDim;
            int zo = kh * group * candidates;
            // Runs of consecutive candidate positions, split at the neighbor start.
            for (int c = 0; c < candidates; ) {
              int s0 = cand[c];
              int e = c + 1;
              while (e < candidates && cand[e] == cand[e - 1] + 1 && (cand[e] != ns || ns == 0)) {
                e++;
              }
              if (s0 < ns) {
                groupKeys[layer].scoresGroup(
                    qg, qOff, group, kh, s0, s0 + e - c, scale, z, zo + c, candidates);
              } else {
                keys[layer].scoresGroup(
                    qn, qOff, group, kh, s0, s0 + e - c, scale, z, zo + c, candidates);
              }
              c = e;
            }
            for (int h = 0; h < group; h++) {
              int o = zo + h * candidates;
              float max = Ops.max(z, o, candidates);
              double sum = Ops.expSub(z, o, candidates, max);
              Ops.scale(z, o, candidates, (float) (1.0 / sum));
            }
          }
        };
    if (parallel) {
      Parallel.forRange(kvHeads, body);
    } else {
      body.run(0, kvHeads);
    }
    float[] p = buf.p;
    System.arraycopy(z, 0, p, 0, candidates);
    for (int h = 1; h < heads; h++) {
      Ops.add(p, 0, z, h * candidates, candidates);
    }
  }
}
