package dev.longctx.engine.inference;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Partial;
import dev.longctx.engine.tensor.Parallel;
import java.util.Arrays;

/**
 * A {@link KvRange} on the CPU: the layer arithmetic of {@link TransformerLayers}, the keys and
 * values of each layer in one array of {@code capacity} slots (allocated at the layer's first
 * step), attention by the {@link Attention} kernels.
 */
public final class CpuKvRange extends KvRange {

  private final TransformerLayers layers;
  private final float scale;
  private final float[][] keys;
  private final float[][] values;
  private final float[][] groupKeys;
  private TransformerLayers.Activations act;

  public CpuKvRange(TransformerLayers layers, int capacity, AttentionPolicy policy) {
    super(layers.config(), capacity, policy);
    this.layers = layers;
    this.scale = (float) (1.0 / Math.sqrt(config.headDim()));
    this.keys = new float[config.layers()][];
    this.values = new float[config.layers()][];
    this.groupKeys = selfExtend == null ? null : new float[config.layers()][];
  }

  @Override
  public float[] stepKeys(boolean grouped) {
    return Arrays.copyOf(grouped ? act.groupKeys() : act.keys(), rows() * config.kvDim());
  }

  @Override
  public float[] stepNormedInput() {
    return Arrays.copyOf(act.normedInput(), rows() * config.dim());
  }

  @Override
  protected void embed(int[] tokens) {
    act = layers.ensure(act, tokens.length);
    layers.embed(tokens, 0, tokens.length, act);
  }

  @Override
  protected void project(int l) {
    int n = rows();
    int kvDim = config.kvDim();
    if (keys[l] == null) {
      keys[l] = new float[capacity() * kvDim];
      values[l] = new float[capacity() * kvDim];
      if (selfExtend != null) {
        groupKeys[l] = new float[capacity() * kvDim];
      }
    }
    if (n == 0) {
      return;
    }
    layers.project(l, act, n);
    int at = firstSlot() * kvDim;
    if (selfExtend != null) {
      layers.rotateSelfExtend(act, n, stepPositions(), selfExtend);
      System.arraycopy(act.groupKeys(), 0, groupKeys[l], at, n * kvDim);
    } else {
      layers.rotate(act, n, stepPositions());
    }
    System.arraycopy(act.keys(), 0, keys[l], at, n * kvDim);
    System.arraycopy(act.values(), 0, values[l], at, n * kvDim);
  }

  @Override
  protected float[] queries(boolean grouped) {
    int qn = rows() * config.queryDim();
    return Arrays.copyOf(grouped ? act.groupQueries() : act.queries(), qn);
  }

  @Override
  protected void finish(int l, float[] attention) {
    layers.finish(l, attention, act, rows());
  }

  @Override
  protected float[] rowLogits(int[] which) {
    float[] logits = new float[which.length * config.vocabSize()];
    layers.logits(act, which, logits);
    return logits;
  }

  @Override
  protected void attendSlots(
      int l, float[] queries, float[] groupQueries, Visibility v, float[] out, float[] lse) {
    int heads = config.heads();
    int kvHeads = config.kvHeads();
    int group = config.groupSize();
    Parallel.forRange(
        v.m() * heads,
        (from, to) -> {
          float[] parts = new float[2 * config.headDim()];
          float[] partLse = new float[2];
          for (int i = from; i < to; i++) {
            int t = i / heads;
            int h = i % heads;
            int u = v.selection(t, h / group, kvHeads);
            int[] slotList = u < 0 ? null : v.selected()[u];
            lse[t * heads + h] =
                attendHead(
                    l,
                    h,
                    queries,
                    groupQueries,
                    t,
                    slotList,
                    u < 0 ? v.visible()[t] : slotList.length,
                    u < 0 ? v.grouped()[t] : v.groupedOf()[u],
                    out,
                    parts,
                    partLse);
          }
        });
  }

  /**
   * One head of query row {@code t} over {@code count} slots, the first {@code g} of them grouped:
   * the listed ones {@code slotList[0, count)}, or slots [0, count) when {@code slotList} is null.
   * Returns the LSE.
   */
  private float attendHead(
      int l,
      int h,
      float[] queries,
      float[] groupQueries,
      int t,
      int[] slotList,
      int count,
      int g,
      float[] out,
      float[] parts,
      float[] partLse) {
    int headDim = config.headDim();
    int base = (h / config.groupSize()) * headDim;
    int off = t * config.queryDim() + h * headDim;
    if (g == 0) {
      return attend(queries, off, keys[l], values[l], base, slotList, 0, count, out, off);
    }
    partLse[0] = attend(groupQueries, off, groupKeys[l], values[l], base, slotList, 0, g, parts, 0);
    partLse[1] =
        attend(queries, off, keys[l], values[l], base, slotList, g, count - g, parts, headDim);
    return Partial.merge(parts, partLse, 2, headDim, out, off);
  }

  /**
   * One head's query at {@code off} over {@code n} slots from the {@code from}-th: listed in {@code
   * slotList}, or contiguous when it is null (the contiguous kernel, not a list of every slot).
   */
  private float attend(
      float[] q,
      int off,
      float[] k,
      float[] v,
      int base,
      int[] slotList,
      int from,
      int n,
      float[] out,
      int outOff) {
    int headDim = config.headDim();
    int kvDim = config.kvDim();
    return slotList == null
        ? Attention.attend(q, off, k, v, base + from * kvDim, kvDim, n, headDim, scale, out, outOff)
        : Attention.attendPositions(
            q, off, k, v, base, kvDim, slotList, from, n, headDim, scale, out, outOff);
  }
}
