package dev.longctx.engine.attention;

import dev.longctx.engine.kernel.Lanes;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * An INT8 copy of one layer's cached keys for the own-heads selector (ALGORITHMS.md §5.2): every
 * (token, KV head) row is stored as {@code round(k / σ)} with {@code σ = max|k| / 127}, one fp32
 * scale per row, so a score pass reads headDim + 4 bytes per row instead of 4·headDim.
 */
final class QuantizedKeys {

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
  private static final VectorSpecies<Byte> B =
      VectorSpecies.of(byte.class, VectorShape.forBitSize(F.length() * Byte.SIZE));

  private final int kvHeads;
  private final int headDim;
  private byte[] values;
  private float[] scales;
  private int capacity;

  QuantizedKeys(int kvHeads, int headDim, int capacity) {
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.capacity = capacity;
    this.values = new byte[capacity * kvHeads * headDim];
    this.scales = new float[capacity * kvHeads];
  }

  void reserve(int tokens) {
    if (tokens > capacity) {
      int c = Math.max(tokens, capacity * 2);
      values = Arrays.copyOf(values, c * kvHeads * headDim);
      scales = Arrays.copyOf(scales, c * kvHeads);
      capacity = c;
    }
  }

  long bytesAllocated() {
    return (long) capacity * kvHeads * (headDim + Float.BYTES);
  }

  /** Quantizes token {@code pos}'s keys ({@code kvHeads·headDim} floats at {@code k[off]}). */
  void put(int pos, float[] k, int off) {
    for (int h = 0; h < kvHeads; h++) {
      int src = off + h * headDim;
      float amax = 0;
      for (int d = 0; d < headDim; d++) {
        amax = Math.max(amax, Math.abs(k[src + d]));
      }
      int row = pos * kvHeads + h;
      float sigma = amax == 0 ? 1f : amax / 127f;
      scales[row] = amax == 0 ? 0f : sigma;
      float inv = 1f / sigma;
      int dst = row * headDim;
      for (int d = 0; d < headDim; d++) {
        values[dst + d] = (byte) Math.round(k[src + d] * inv);
      }
    }
  }

  /** Rows dequantized per tile by {@link #scoresGroup}: small enough to stay in L1. */
  private static final int TILE = 32;

  private static final ThreadLocal<float[]> TILE_BUFFER =
      ThreadLocal.withInitial(() -> new float[0]);

  /**
   * {@code out[outOffset + g·outStride + s − from] = scale · q_g·k̃_s} for keys {@code s ∈ [from,
   * to)} of KV head {@code kvHead} and the {@code groupSize} query heads at {@code q[qOffset +
   * g·headDim]} that share KV head {@code kvHead}: head g's score of key s goes to {@code
   * out[outOffset + g·outStride + s − from]}. Each INT8 row is read and widened once per tile for
   * the whole group, so the cost per key is one conversion plus {@code groupSize} float dots (the
   * selector's hot loop, §5.2).
   */
  void scoresGroup(
      float[] q,
      int qOffset,
      int groupSize,
      int kvHead,
      int from,
      int to,
      float scale,
      float[] out,
      int outOffset,
      int outStride) {
    float[] tile = TILE_BUFFER.get();
    if (tile.length < TILE * headDim) {
      tile = new float[TILE * headDim];
      TILE_BUFFER.set(tile);
    }
    int bound = F.length() == B.length() ? F.loopBound(headDim) : 0;
    for (int t0 = from; t0 < to; t0 += TILE) {
      int n = Math.min(TILE, to - t0);
      for (int j = 0; j < n; j++) {
        int row = (t0 + j) * kvHeads + kvHead;
        int base = row * headDim;
        int dst = j * headDim;
        float sc = scales[row] * scale;
        int d = 0;
        for (; d < bound; d += F.length()) {
          ((FloatVector)
                  ByteVector.fromArray(B, values, base + d).convertShape(VectorOperators.B2F, F, 0))
              .mul(sc)
              .intoArray(tile, dst + d);
        }
        for (; d < headDim; d++) {
          tile[dst + d] = values[base + d] * sc;
        }
      }
      for (int g = 0; g < groupSize; g++) {
        int qo = qOffset + g * headDim;
        int o = outOffset + g * outStride + t0 - from;
        for (int j = 0; j < n; j++) {
          out[o + j] = dot(q, qo, tile, j * headDim);
        }
      }
    }
  }

  /**
   * {@code q·row} with the lanes summed in {@link Lanes#sum}'s fixed order: a selection must be a
   * function of its inputs alone (a near-tie would otherwise flip between two runs of the same
   * sequence).
   */
  private float dot(float[] q, int qo, float[] row, int ro) {
    int d = 0;
    float acc = 0;
    int bound = F.loopBound(headDim);
    if (bound > 0) {
      FloatVector s = FloatVector.zero(F);
      for (; d < bound; d += F.length()) {
        s = FloatVector.fromArray(F, q, qo + d).fma(FloatVector.fromArray(F, row, ro + d), s);
      }
      acc = Lanes.sum(s);
    }
    for (; d < headDim; d++) {
      acc += q[qo + d] * row[ro + d];
    }
    return acc;
  }
}
