package dev.longctx.engine.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Attention of one query head over a run of cached keys and values. Key {@code s}, element {@code
 * d} lives at {@code keys[base + s * stride + d]} (values likewise), so one head of a {@code
 * [positions][kvHeads][headDim]} cache is addressed with {@code base = kvHead * headDim} and {@code
 * stride = kvHeads * headDim}; a window starting at position w is {@code base + w * stride}.
 *
 * <p>Flash-style online softmax over tiles of {@value #TILE} keys: the tile's scores are computed
 * (four keys at a time, vectorized over headDim), exponentiated against the running maximum in one
 * vector pass, and folded into the output accumulator, which is rescaled at most once per tile. The
 * only memory besides the inputs is a per-thread {@link Scratch} (or one the caller passes), so the
 * hot loop allocates nothing.
 *
 * <p>Every method returns the log-sum-exp {@code LSE = ln Σ_s exp(scale · q·k_s)} of the scores, so
 * results over disjoint key sets merge exactly with {@link Partial#merge} (ALGORITHMS.md §4.2). An
 * empty key set gives output 0 and LSE −∞.
 */
public final class Attention {

  /** Keys scored per tile before the accumulator is rescaled. */
  public static final int TILE = 32;

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

  private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

  /** Reusable working memory of one attention call at a time; grows to the largest headDim seen. */
  public static final class Scratch {
    final float[] scores = new float[TILE];
    final int[] rows = new int[TILE];
    float[] acc = new float[0];

    public Scratch() {}

    float[] acc(int headDim) {
      if (acc.length < headDim) {
        acc = new float[headDim];
      }
      return acc;
    }
  }

  private Attention() {}

  /**
   * {@code out = Σ_s softmax_s(scale · q·k_s) · v_s} over keys {@code s < len}; returns the
   * log-sum-exp {@code ln Σ_s exp(scale · q·k_s)} so partial results over disjoint key sets can be
   * merged exactly (ALGORITHMS.md §4.2). Uses this thread's scratch.
   */
  public static float attend(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int len,
      int headDim,
      float scale,
      float[] out,
      int outOffset) {
    return attend(
        q, qOffset, keys, values, base, stride, len, headDim, scale, out, outOffset, SCRATCH.get());
  }

  /**
   * {@link #attend(float[], int, float[], float[], int, int, int, int, float, float[], int)} with
   * caller-owned scratch.
   */
  public static float attend(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int len,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      Scratch scratch) {
    return run(
        q, qOffset, keys, values, base, stride, null, 0, len, headDim, scale, out, outOffset,
        scratch);
  }

  /**
   * Attention over the keys at the listed positions {@code positions[posOffset .. posOffset +
   * count)} only (key {@code p} at {@code keys[base + p * stride]}), for sparse attention: the
   * output and LSE are those of {@link #attend} restricted to that set. Positions need not be
   * sorted; a repeated position counts twice.
   */
  public static float attendPositions(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int[] positions,
      int posOffset,
      int count,
      int headDim,
      float scale,
      float[] out,
      int outOffset) {
    return attendPositions(
        q,
        qOffset,
        keys,
        values,
        base,
        stride,
        positions,
        posOffset,
        count,
        headDim,
        scale,
        out,
        outOffset,
        SCRATCH.get());
  }

  /** {@link #attendPositions} with caller-owned scratch. */
  public static float attendPositions(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int[] positions,
      int posOffset,
      int count,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      Scratch scratch) {
    return run(
        q, qOffset, keys, values, base, stride, positions, posOffset, count, headDim, scale, out,
        outOffset, scratch);
  }

  /** The tiled online softmax; {@code positions == null} means keys 0..count-1. */
  private static float run(
      float[] q,
      int qOffset,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int[] positions,
      int posOffset,
      int count,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      Scratch scratch) {
    float[] scores = scratch.scores;
    int[] rows = scratch.rows;
    float[] acc = scratch.acc(headDim);
    java.util.Arrays.fill(acc, 0, headDim, 0f);
    float max = Float.NEGATIVE_INFINITY;
    double sum = 0;
    for (int t0 = 0; t0 < count; t0 += TILE) {
      int n = Math.min(TILE, count - t0);
      for (int j = 0; j < n; j++) {
        int s = positions == null ? t0 + j : positions[posOffset + t0 + j];
        rows[j] = base + s * stride;
      }
      scoreTile(q, qOffset, keys, rows, n, headDim, scale, scores);
      float tileMax = Ops.max(scores, 0, n);
      if (tileMax == Float.NEGATIVE_INFINITY) {
        continue; // every key of the tile is masked out: weight 0
      }
      if (tileMax > max) {
        if (max != Float.NEGATIVE_INFINITY) {
          // Online softmax: rescale what was accumulated against the old maximum, once per tile.
          float correction = (float) Math.exp(max - tileMax);
          sum *= correction;
          Ops.scale(acc, 0, headDim, correction);
        }
        max = tileMax;
      }
      sum += Ops.expSub(scores, 0, n, max);
      accumulate(values, rows, scores, n, headDim, acc);
    }
    if (sum == 0) {
      java.util.Arrays.fill(out, outOffset, outOffset + headDim, 0f);
      return Float.NEGATIVE_INFINITY;
    }
    float inv = (float) (1.0 / sum);
    int d = 0;
    for (int bound = F.loopBound(headDim); d < bound; d += F.length()) {
      FloatVector.fromArray(F, acc, d).mul(inv).intoArray(out, outOffset + d);
    }
    for (; d < headDim; d++) {
      out[outOffset + d] = acc[d] * inv;
    }
    return (float) (max + Math.log(sum));
  }

  /**
   * {@code scores[j] = scale · q·k_{rows[j]}}, four keys per pass so each q vector is loaded once.
   */
  private static void scoreTile(
      float[] q,
      int qOffset,
      float[] keys,
      int[] rows,
      int n,
      int headDim,
      float scale,
      float[] scores) {
    int bound = F.loopBound(headDim);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      int r0 = rows[j];
      int r1 = rows[j + 1];
      int r2 = rows[j + 2];
      int r3 = rows[j + 3];
      FloatVector a0 = FloatVector.zero(F);
      FloatVector a1 = FloatVector.zero(F);
      FloatVector a2 = FloatVector.zero(F);
      FloatVector a3 = FloatVector.zero(F);
      int d = 0;
      for (; d < bound; d += F.length()) {
        FloatVector qv = FloatVector.fromArray(F, q, qOffset + d);
        a0 = qv.fma(FloatVector.fromArray(F, keys, r0 + d), a0);
        a1 = qv.fma(FloatVector.fromArray(F, keys, r1 + d), a1);
        a2 = qv.fma(FloatVector.fromArray(F, keys, r2 + d), a2);
        a3 = qv.fma(FloatVector.fromArray(F, keys, r3 + d), a3);
      }
      float s0 = a0.reduceLanes(VectorOperators.ADD);
      float s1 = a1.reduceLanes(VectorOperators.ADD);
      float s2 = a2.reduceLanes(VectorOperators.ADD);
      float s3 = a3.reduceLanes(VectorOperators.ADD);
      for (; d < headDim; d++) {
        float qd = q[qOffset + d];
        s0 += qd * keys[r0 + d];
        s1 += qd * keys[r1 + d];
        s2 += qd * keys[r2 + d];
        s3 += qd * keys[r3 + d];
      }
      scores[j] = s0 * scale;
      scores[j + 1] = s1 * scale;
      scores[j + 2] = s2 * scale;
      scores[j + 3] = s3 * scale;
    }
    for (; j < n; j++) {
      scores[j] = Ops.dot(q, qOffset, keys, rows[j], headDim) * scale;
    }
  }

  /**
   * {@code acc += Σ_j p_j · v_{rows[j]}}, one headDim chunk at a time so the accumulator chunk
   * stays in a register across the tile.
   */
  private static void accumulate(
      float[] values, int[] rows, float[] p, int n, int headDim, float[] acc) {
    int d = 0;
    for (int bound = F.loopBound(headDim); d < bound; d += F.length()) {
      FloatVector a = FloatVector.fromArray(F, acc, d);
      for (int j = 0; j < n; j++) {
        a = FloatVector.fromArray(F, values, rows[j] + d).fma(FloatVector.broadcast(F, p[j]), a);
      }
      a.intoArray(acc, d);
    }
    for (; d < headDim; d++) {
      float a = acc[d];
      for (int j = 0; j < n; j++) {
        a += p[j] * values[rows[j] + d];
      }
      acc[d] = a;
    }
  }
}
