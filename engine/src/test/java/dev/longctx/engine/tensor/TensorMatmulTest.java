package dev.longctx.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code dot} and {@code matmul} of every type against a float64 reference product of the
 * reference-decoded weights, on random non-zero activations.
 *
 * <p>Tolerance: activations stay in binary32 (the float path was measured faster than int8
 * activations, see {@link MatmulBench}), so the only error is binary32 rounding of the decoded
 * weights (K-quants, half an ulp) and of the sums. Each result is a sum of {@code cols} products
 * accumulated in at most {@code cols / 8 + 32} sequential steps (lanes of 8 or 16, per-block or
 * per-chunk partial sums, lane reduction), so by the standard bound |error| ≤ γ_m · Σ|w·x| with γ_m
 * ≈ m · 2^-24, and we allow twice that.
 */
class TensorMatmulTest {

  @AfterEach
  void restoreThreads() {
    Parallel.setThreads(2);
  }

  static double tolerance(int cols, double absSum) {
    return 2 * (cols / 8.0 + 32) * 0x1p-24 * absSum + 1e-30;
  }

  /** (type, rows, cols, tokens): ragged row tiles, token tiles and column chunks. */
  static Stream<Arguments> shapes() {
    List<Arguments> out = new ArrayList<>();
    int[][] shapes = {
      {37, 32, 1},
      {37, 32, 2},
      {19, 32, 7},
      {67, 256, 64},
      {5, 256, 130},
      {130, 2304, 1},
      {21, 2304, 7},
      {18, 2304, 130},
      {1, 256, 3},
      {64, 768, 2}
    };
    for (GgmlType type : TensorReference.TYPES) {
      for (int[] s : shapes) {
        int cols = s[1];
        if (type.blockSize() == 256 && cols % 256 != 0) {
          cols = 256;
        }
        out.add(Arguments.of(type, s[0], cols, s[2]));
      }
    }
    for (GgmlType type : new GgmlType[] {GgmlType.F32, GgmlType.F16, GgmlType.BF16}) {
      out.add(Arguments.of(type, 9, 7, 5));
      out.add(Arguments.of(type, 13, 100, 4));
      out.add(Arguments.of(type, 6, 517, 1));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} {1}x{2} tokens={3}")
  @MethodSource("shapes")
  void matmulAndDotMatchFloat64Reference(GgmlType type, int rows, int cols, int tokens) {
    Random rnd = new Random(31L * rows + cols + 7L * tokens + type.ordinal());
    MemorySegment raw = TensorReference.randomRaw(type, rows, cols, rnd);
    FloatTensor w = FloatTensor.of(type, raw, rows, cols);
    double[] ref = TensorReference.decodeAll(type, raw, rows, cols);
    float[] x = TensorReference.randomActivations(tokens * cols + 3, rnd);

    float[] y = new float[tokens * rows + 5];
    Arrays.fill(y, Float.NaN);
    w.matmul(x, y, tokens);
    for (int t = 0; t < tokens; t++) {
      for (int r = 0; r < rows; r++) {
        double exact = 0;
        double absSum = 0;
        for (int c = 0; c < cols; c++) {
          double p = ref[r * cols + c] * x[t * cols + c];
          exact += p;
          absSum += Math.abs(p);
        }
        float got = y[t * rows + r];
        assertThat(got).as("y[t=%d][r=%d] written", t, r).isNotNaN();
        assertThat((double) got)
            .as("%s %dx%d tokens=%d y[t=%d][r=%d]", type, rows, cols, tokens, t, r)
            .isCloseTo(exact, org.assertj.core.data.Offset.offset(tolerance(cols, absSum)));
        if (t == tokens - 1 && r % 3 == 0) {
          // dot at an unaligned offset into x, same bound.
          double d = w.dot(r, x, t * cols);
          assertThat(d)
              .isCloseTo(exact, org.assertj.core.data.Offset.offset(tolerance(cols, absSum)));
        }
      }
    }
    for (int i = tokens * rows; i < y.length; i++) {
      assertThat(y[i]).as("beyond tokens*rows untouched").isNaN();
    }
    if (cols > 1) {
      // dot reads x at any offset (not just multiples of the vector length).
      double exact = 0;
      double absSum = 0;
      for (int c = 0; c < cols; c++) {
        double p = ref[c] * x[3 + c];
        exact += p;
        absSum += Math.abs(p);
      }
      assertThat((double) w.dot(0, x, 3))
          .isCloseTo(exact, org.assertj.core.data.Offset.offset(tolerance(cols, absSum)));
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("typesForThreads")
  void matmulIsBitIdenticalOnOneAndTwoThreads(GgmlType type) {
    Random rnd = new Random(99 + type.ordinal());
    int rows = 150;
    int cols = 1024 + 256;
    MemorySegment raw = TensorReference.randomRaw(type, rows, cols, rnd);
    FloatTensor w = FloatTensor.of(type, raw, rows, cols);
    for (int tokens : new int[] {1, 2, 7, 64}) {
      float[] x = TensorReference.randomActivations(tokens * cols, rnd);
      Parallel.setThreads(1);
      float[] y1 = new float[tokens * rows];
      w.matmul(x, y1, tokens);
      Parallel.setThreads(2);
      float[] y2 = new float[tokens * rows];
      Arrays.fill(y2, Float.NaN);
      w.matmul(x, y2, tokens);
      assertThat(y2).as("%s tokens=%d", type, tokens).containsExactly(y1);
    }
  }

  static Stream<GgmlType> typesForThreads() {
    return Arrays.stream(TensorReference.TYPES);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("typesForThreads")
  void multiRowDotIsBitIdenticalToSingleRowDot(GgmlType type) {
    // The decode path streams rows in groups; every grouping must give dot's exact bits.
    Random rnd = new Random(17 + type.ordinal());
    int rows = 23;
    int cols = type.blockSize() == 256 ? 512 : 96;
    FloatTensor w =
        FloatTensor.of(type, TensorReference.randomRaw(type, rows, cols, rnd), rows, cols);
    float[] x = TensorReference.randomActivations(cols + 5, rnd);
    for (int n = 1; n <= rows - 2; n += 3) {
      float[] y = new float[n + 4];
      Arrays.fill(y, Float.NaN);
      w.dotRows(2, n, x, 5, y, 3);
      for (int i = 0; i < n; i++) {
        assertThat(Float.floatToRawIntBits(y[3 + i]))
            .as("%s n=%d row %d", type, n, 2 + i)
            .isEqualTo(Float.floatToRawIntBits(w.dot(2 + i, x, 5)));
      }
      assertThat(y[2]).isNaN();
      assertThat(y[3 + n]).isNaN();
    }
  }

  @Test
  void prefillEqualsTokenByTokenDecodeWithinRounding() {
    // The GEMM and the matrix-vector path compute the same products through different kernels.
    Random rnd = new Random(5);
    int rows = 70;
    int cols = 2048 + 256;
    for (GgmlType type : TensorReference.TYPES) {
      FloatTensor w =
          FloatTensor.of(type, TensorReference.randomRaw(type, rows, cols, rnd), rows, cols);
      int tokens = 9;
      float[] x = TensorReference.randomActivations(tokens * cols, rnd);
      float[] batch = new float[tokens * rows];
      w.matmul(x, batch, tokens);
      for (int t = 0; t < tokens; t++) {
        float[] one = new float[rows];
        w.matmul(Arrays.copyOfRange(x, t * cols, (t + 1) * cols), one, 1);
        for (int r = 0; r < rows; r++) {
          assertThat(batch[t * rows + r])
              .isCloseTo(
                  one[r], org.assertj.core.data.Offset.offset(1e-3f * (1 + Math.abs(one[r]))));
        }
      }
    }
  }
}
