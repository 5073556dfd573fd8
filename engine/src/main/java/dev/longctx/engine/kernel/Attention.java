package dev.longctx.engine.kernel;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
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
 * hot loop allocates nothing. {@link #attendGroup} runs the query heads of a GQA group in one pass
 * over their shared keys, reading each key and value row from memory once (about 2.3x faster than
 * one call per head for 4 heads per group at 32K keys).
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

  /**
   * Reusable working memory of one attention call at a time; grows to the largest group and headDim
   * seen. Not thread-safe: one per thread.
   */
  public static final class Scratch {
    final int[] rows = new int[TILE];
    final float[][] keyRows = new float[TILE][];
    final float[][] valueRows = new float[TILE][];
    final float[][] onePage = new float[1][];
    final float[][] oneValuePage = new float[1][];
    float[] scores = new float[0];
    float[] acc = new float[0];
    float[] max = new float[0];
    double[] sum = new double[0];
    float[] lse = new float[0];

    public Scratch() {}

    void ensure(int group, int headDim) {
      if (max.length < group) {
        scores = new float[group * TILE];
        max = new float[group];
        sum = new double[group];
        lse = new float[group];
      }
      if (acc.length < group * headDim) {
        acc = new float[group * headDim];
      }
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

  /**
   * Grouped-query attention: the {@code groupSize} query heads at {@code q[qOffset + g · headDim]}
   * that share one KV head attend over keys {@code s < len} in a single pass, so each key and value
   * row is read from memory once for the whole group rather than once per query head (decode is
   * bound by that traffic). Head g's output goes to {@code out[outOffset + g · headDim ..]} and its
   * LSE to {@code lse[lseOffset + g]}; each equals what {@link #attend} gives for that head alone.
   */
  public static void attendGroup(
      float[] q,
      int qOffset,
      int groupSize,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int len,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      float[] lse,
      int lseOffset) {
    Scratch scratch = SCRATCH.get();
    run(
        q, qOffset, groupSize, keys, values, base, stride, null, 0, len, headDim, scale, out,
        outOffset, scratch);
    System.arraycopy(scratch.lse, 0, lse, lseOffset, groupSize);
  }

  /**
   * {@link #attendGroup} over the keys at {@code positions[posOffset .. posOffset + count)} only,
   * as {@link #attendPositions} does for one head.
   */
  public static void attendGroupPositions(
      float[] q,
      int qOffset,
      int groupSize,
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
      float[] lse,
      int lseOffset) {
    Scratch scratch = SCRATCH.get();
    run(
        q, qOffset, groupSize, keys, values, base, stride, positions, posOffset, count, headDim,
        scale, out, outOffset, scratch);
    System.arraycopy(scratch.lse, 0, lse, lseOffset, groupSize);
  }

  /**
   * Page shift meaning "one page": every position maps to page 0 ({@code s >>> 31 == 0} for s ≥ 0).
   */
  public static final int CONTIGUOUS = 31;

  /**
   * {@link #attendGroup} over keys {@code s ∈ [from, to)} of a paged cache (ALGORITHMS.md §4.2's
   * online softmax runs straight across page boundaries): key s at {@code keyPages[s >>>
   * pageShift][base + (s mod 2^pageShift)·stride]}, values likewise.
   */
  public static void attendGroupPaged(
      float[] q,
      int qOffset,
      int groupSize,
      float[][] keyPages,
      float[][] valuePages,
      int pageShift,
      int base,
      int stride,
      int from,
      int to,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      float[] lse,
      int lseOffset) {
    Scratch scratch = SCRATCH.get();
    run(
        q,
        qOffset,
        groupSize,
        keyPages,
        valuePages,
        pageShift,
        base,
        stride,
        from,
        null,
        0,
        Math.max(0, to - from),
        headDim,
        scale,
        out,
        outOffset,
        scratch);
    System.arraycopy(scratch.lse, 0, lse, lseOffset, groupSize);
  }

  /**
   * {@link #attendGroupPaged} over the keys at {@code positions[posOffset .. posOffset + count)}.
   */
  public static void attendGroupPagedPositions(
      float[] q,
      int qOffset,
      int groupSize,
      float[][] keyPages,
      float[][] valuePages,
      int pageShift,
      int base,
      int stride,
      int[] positions,
      int posOffset,
      int count,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      float[] lse,
      int lseOffset) {
    Scratch scratch = SCRATCH.get();
    run(
        q,
        qOffset,
        groupSize,
        keyPages,
        valuePages,
        pageShift,
        base,
        stride,
        0,
        positions,
        posOffset,
        count,
        headDim,
        scale,
        out,
        outOffset,
        scratch);
    System.arraycopy(scratch.lse, 0, lse, lseOffset, groupSize);
  }

  /**
   * Single-head form of {@link #run(float[], int, int, float[], float[], int, int, int[], int, int,
   * int, float, float[], int, Scratch)}; returns the LSE.
   */
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
    run(
        q, qOffset, 1, keys, values, base, stride, positions, posOffset, count, headDim, scale, out,
        outOffset, scratch);
    return scratch.lse[0];
  }

  /** The group kernel over one contiguous array: a single page. */
  private static void run(
      float[] q,
      int qOffset,
      int group,
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
    scratch.onePage[0] = keys;
    scratch.oneValuePage[0] = values;
    run(
        q,
        qOffset,
        group,
        scratch.onePage,
        scratch.oneValuePage,
        CONTIGUOUS,
        base,
        stride,
        0,
        positions,
        posOffset,
        count,
        headDim,
        scale,
        out,
        outOffset,
        scratch);
    scratch.onePage[0] = null;
    scratch.oneValuePage[0] = null;
  }

  /**
   * The tiled online softmax for {@code group} query heads sharing the keys; {@code positions ==
   * null} means keys {@code first .. first + count − 1}. Key s lives in {@code keyPages[s >>>
   * pageShift]} at {@code base + (s & (2^pageShift − 1))·stride} (one contiguous array: a single
   * page with {@link #CONTIGUOUS}). Leaves the LSEs in {@code scratch.lse[0 .. group)}.
   */
  private static void run(
      float[] q,
      int qOffset,
      int group,
      float[][] keyPages,
      float[][] valuePages,
      int pageShift,
      int base,
      int stride,
      int first,
      int[] positions,
      int posOffset,
      int count,
      int headDim,
      float scale,
      float[] out,
      int outOffset,
      Scratch scratch) {
    scratch.ensure(group, headDim);
    float[] scores = scratch.scores;
    int[] rows = scratch.rows;
    float[][] keyRows = scratch.keyRows;
    float[][] valueRows = scratch.valueRows;
    int mask = (1 << pageShift) - 1;
    float[] acc = scratch.acc;
    float[] max = scratch.max;
    double[] sum = scratch.sum;
    Arrays.fill(acc, 0, group * headDim, 0f);
    Arrays.fill(max, 0, group, Float.NEGATIVE_INFINITY);
    Arrays.fill(sum, 0, group, 0.0);
    for (int t0 = 0; t0 < count; t0 += TILE) {
      int n = Math.min(TILE, count - t0);
      for (int j = 0; j < n; j++) {
        int s = positions == null ? first + t0 + j : positions[posOffset + t0 + j];
        keyRows[j] = keyPages[s >>> pageShift];
        valueRows[j] = valuePages[s >>> pageShift];
        rows[j] = base + (s & mask) * stride;
      }
      for (int g = 0; g < group; g++) {
        // After the first head, the tile's keys and values come from L1/L2, not memory.
        int sc = g * TILE;
        int ac = g * headDim;
        scoreTile(q, qOffset + g * headDim, keyRows, rows, n, headDim, scale, scores, sc);
        float tileMax = Ops.max(scores, sc, n);
        if (tileMax == Float.NEGATIVE_INFINITY) {
          continue; // every key of the tile is masked out: weight 0
        }
        if (tileMax > max[g]) {
          if (max[g] != Float.NEGATIVE_INFINITY) {
            // Online softmax: rescale what was accumulated against the old maximum, once per tile.
            float correction = (float) Math.exp(max[g] - tileMax);
            sum[g] *= correction;
            Ops.scale(acc, ac, headDim, correction);
          }
          max[g] = tileMax;
        }
        sum[g] += Ops.expSub(scores, sc, n, max[g]);
        accumulate(valueRows, rows, scores, sc, n, headDim, acc, ac);
      }
    }
    for (int g = 0; g < group; g++) {
      int o = outOffset + g * headDim;
      if (sum[g] == 0) {
        Arrays.fill(out, o, o + headDim, 0f);
        scratch.lse[g] = Float.NEGATIVE_INFINITY;
        continue;
      }
      float inv = (float) (1.0 / sum[g]);
      int ac = g * headDim;
      int d = 0;
      for (int bound = F.loopBound(headDim); d < bound; d += F.length()) {
        FloatVector.fromArray(F, acc, ac + d).mul(inv).intoArray(out, o + d);
      }
      for (; d < headDim; d++) {
        out[o + d] = acc[ac + d] * inv;
      }
      scratch.lse[g] = (float) (max[g] + Math.log(sum[g]));
    }
  }

  /**
   * {@code scores[sc + j] = scale · q·k_{rows[j]}}, four keys per pass so each q vector is loaded
   * once.
   */
  private static void scoreTile(
      float[] q,
      int qOffset,
      float[][] keyRows,
      int[] rows,
      int n,
      int headDim,
      float scale,
      float[] scores,
      int sc) {
    int bound = F.loopBound(headDim);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      int r0 = rows[j];
      int r1 = rows[j + 1];
      int r2 = rows[j + 2];
      int r3 = rows[j + 3];
      float[] k0 = keyRows[j];
      float[] k1 = keyRows[j + 1];
      float[] k2 = keyRows[j + 2];
      float[] k3 = keyRows[j + 3];
      FloatVector a0 = FloatVector.zero(F);
      FloatVector a1 = FloatVector.zero(F);
      FloatVector a2 = FloatVector.zero(F);
      FloatVector a3 = FloatVector.zero(F);
      int d = 0;
      for (; d < bound; d += F.length()) {
        FloatVector qv = FloatVector.fromArray(F, q, qOffset + d);
        a0 = qv.fma(FloatVector.fromArray(F, k0, r0 + d), a0);
        a1 = qv.fma(FloatVector.fromArray(F, k1, r1 + d), a1);
        a2 = qv.fma(FloatVector.fromArray(F, k2, r2 + d), a2);
        a3 = qv.fma(FloatVector.fromArray(F, k3, r3 + d), a3);
      }
      float s0 = Lanes.sum(a0);
      float s1 = Lanes.sum(a1);
      float s2 = Lanes.sum(a2);
      float s3 = Lanes.sum(a3);
      for (; d < headDim; d++) {
        float qd = q[qOffset + d];
        s0 += qd * k0[r0 + d];
        s1 += qd * k1[r1 + d];
        s2 += qd * k2[r2 + d];
        s3 += qd * k3[r3 + d];
      }
      scores[sc + j] = s0 * scale;
      scores[sc + j + 1] = s1 * scale;
      scores[sc + j + 2] = s2 * scale;
      scores[sc + j + 3] = s3 * scale;
    }
    for (; j < n; j++) {
      scores[sc + j] = Ops.dot(q, qOffset, keyRows[j], rows[j], headDim) * scale;
    }
  }

  /**
   * {@code acc[ac ..] += Σ_j p[pc + j] · v_{rows[j]}}, one headDim chunk at a time so the
   * accumulator chunk stays in a register across the tile.
   */
  private static void accumulate(
      float[][] valueRows, int[] rows, float[] p, int pc, int n, int headDim, float[] acc, int ac) {
    int d = 0;
    for (int bound = F.loopBound(headDim); d < bound; d += F.length()) {
      FloatVector a = FloatVector.fromArray(F, acc, ac + d);
      for (int j = 0; j < n; j++) {
        a =
            FloatVector.fromArray(F, valueRows[j], rows[j] + d)
                .fma(FloatVector.broadcast(F, p[pc + j]), a);
      }
      a.intoArray(acc, ac + d);
    }
    for (; d < headDim; d++) {
      float a = acc[ac + d];
      for (int j = 0; j < n; j++) {
        a += p[pc + j] * valueRows[j][rows[j] + d];
      }
      acc[ac + d] = a;
    }
  }
}
