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
            lse[t * heads + h] =
                u < 0
                    ? attendHead(
                        l,
                        h,
                        queries,
                        groupQueries,
                        t,
                        v.visible()[t],
                        v.grouped()[t],
                        out,
                        parts,
                        partLse)
                    : attendSelected(
                        l,
                        h,
                        queries,
                        groupQueries,
                        t,
                        v.selected()[u],
                        v.groupedOf()[u],
                        out,
                        parts,
                        partLse);
          }
        });
  }

  /** One head of query row {@code t} over the listed slots: the first {@code g} grouped. */
  private float attendSelected(
      int l,
      int h,
      float[] queries,
      float[] groupQueries,
      int t,
      int[] slotList,
      int g,
      float[] out,
      float[] parts,
      float[] partLse) {
    int headDim = config.headDim();
    int kvDim = config.kvDim();
    int base = (h / config.groupSize()) * headDim;
    int off = t * config.queryDim() + h * headDim;
    if (g == 0) {
      return Attention.attendPositions(
          queries,
          off,
          keys[l],
          values[l],
          base,
          kvDim,
          slotList,
          0,
          slotList.length,
          headDim,
          scale,
          out,
          off);
    }
    partLse[0] =
        Attention.attendPositions(
            groupQueries,
            off,
            groupKeys[l],
            values[l],
            base,
            kvDim,
            slotList,
            0,
            g,
            headDim,
            scale,
            parts,
            0);
    partLse[1] =
        Attention.attendPositions(
            queries,
            off,
            keys[l],
            values[l],
            base,
            kvDim,
            slotList,
            g,
            slotList.length - g,
            headDim,
            scale,
            parts,
            headDim);
    return Partial.merge(parts, partLse, 2, headDim, out, off);
  }

  /** One head of query row {@code t}: slots [0, g) grouped, [g, visible) plain; returns the LSE. */
  private float attendHead(
      int l,
      int h,
      float[] queries,
      float[] groupQueries,
      int t,
      int visible,
      int g,
      float[] out,
      float[] parts,
      float[] partLse) {
    int headDim = config.headDim();
    int kvDim = config.kvDim();
    int base = (h / config.groupSize()) * headDim;
    int off = t * config.queryDim() + h * headDim;
    if (g == 0) {
      return Attention.attend(
          queries, off, keys[l], values[l], base, kvDim, visible, headDim, scale, out, off);
    }
    partLse[0] =
        Attention.attend(
            groupQueries, off, groupKeys[l], values[l], base, kvDim, g, headDim, scale, parts, 0);
    partLse[1] =
        Attention.attend(
            queries,
            off,
            keys[l],
            values[l],
            base + g * kvDim,
            kvDim,
            visible - g,
            headDim,
            scale,
            parts,
            headDim);
    return Partial.merge(parts, partLse, 2, headDim, out, off);
  }
}
