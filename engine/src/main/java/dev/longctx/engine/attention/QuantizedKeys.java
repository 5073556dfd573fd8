package dev.longctx.engine.attention;

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

  /**
   * {@code out[outOffset + s − from] = scale · q·k̃_s} for keys {@code s ∈ [from, to)} of KV head
   * {@code kvHead}.
   */
  void scores(
      float[] q,
      int qOffset,
      int kvHead,
      int from,
      int to,
      float scale,
      float[] out,
      int outOffset) {
    int bound = F.length() == B.length() ? F.loopBound(headDim) : 0;
    for (int s = from; s < to; s++) {
      int row = s * kvHeads + kvHead;
      int base = row * headDim;
      float acc = 0;
      int d = 0;
      if (bound > 0) {
        FloatVector a = FloatVector.zero(F);
        for (; d < bound; d += F.length()) {
          FloatVector kv =
              (FloatVector)
                  ByteVector.fromArray(B, values, base + d).convertShape(VectorOperators.B2F, F, 0);
          a = FloatVector.fromArray(F, q, qOffset + d).fma(kv, a);
        }
        acc = a.reduceLanes(VectorOperators.ADD);
      }
      for (; d < headDim; d++) {
        acc += q[qOffset + d] * values[base + d];
      }
      out[outOffset + s - from] = acc * scales[row] * scale;
    }
  }
}
