package dev.longctx.engine.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Kernel benchmark: prints matvec GB/s (weight bytes / time) and GEMM GFLOP/s at 128 and 512 tokens
 * for Q8_0, Q4_0, F16 and F32 at 2048×8192 and 8192×2048 on 1 and 2 threads, next to the machine's
 * memory copy and read bandwidth; then two sanity checks: vector vs scalar dot (is the Vector API
 * really compiled to SIMD?) and float vs int8 activations for Q8_0.
 *
 * <p>Run from the repository root after {@code ./mvnw -o -q -pl engine test-compile}:
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:engine/target/test-classes \
 *     dev.longctx.engine.tensor.MatmulBench [seconds-per-measurement, default 1] [kernels|TYPES]
 * </pre>
 *
 * {@code kernels} prints only the in-cache kernel table; a comma-separated type list (e.g. {@code
 * Q4_0,Q8_0}) restricts the matvec/GEMM table to those types and skips the rest.
 *
 * <p>Add {@code -Dlongctx.vector.bits=256} to force 256-bit vectors on an AVX-512 machine. Matvec
 * rotates over enough copies of the weights to exceed the last-level cache, so it measures DRAM. On
 * a shared machine, numbers taken while others compile are noisy.
 */
public final class MatmulBench {

  private static double seconds = 1.0;

  private MatmulBench() {}

  public static void main(String[] args) {
    if (args.length > 0) {
      seconds = Double.parseDouble(args[0]);
    }
    if (args.length > 1 && args[1].equals("kernels")) {
      Parallel.setThreads(1);
      kernels();
      return;
    }
    GgmlType[] types = {GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.F16, GgmlType.F32};
    boolean only = args.length > 1;
    if (only) {
      types =
          java.util.Arrays.stream(args[1].split(","))
              .map(t -> GgmlType.valueOf(t.trim().toUpperCase(Locale.ROOT)))
              .toArray(GgmlType[]::new);
    }
    System.out.printf(
        Locale.ROOT,
        "vector: %s, %d lanes; cpus: %d%n",
        Vec.F,
        Vec.L,
        Runtime.getRuntime().availableProcessors());
    memoryBandwidth();
    poolLatency();
    System.out.println();
    System.out.println("type  rows x cols  thr  matvec GB/s  GEMM128 GFLOP/s  GEMM512 GFLOP/s");
    int[][] shapes = {{2048, 8192}, {8192, 2048}};
    for (GgmlType type : types) {
      for (int[] shape : shapes) {
        List<FloatTensor> copies = copies(type, shape[0], shape[1]);
        for (int threads : new int[] {1, 2}) {
          Parallel.setThreads(threads);
          double gbs = matvec(copies);
          double g128 = gemm(copies.get(0), 128);
          double g512 = gemm(copies.get(0), 512);
          System.out.printf(
              Locale.ROOT,
              "%-5s %5d x %-5d %3d  %11.1f  %15.1f  %15.1f%n",
              type,
              shape[0],
              shape[1],
              threads,
              gbs,
              g128,
              g512);
        }
      }
    }
    Parallel.setThreads(1);
    if (only) {
      return;
    }
    System.out.println();
    kernels();
    System.out.println();
    simdCheck();
    System.out.println();
    int8Activations();
    Parallel.setThreads(2);
  }

  /** Round trip of an empty two-chunk parallel call: the fixed cost decode pays ~100× a token. */
  private static void poolLatency() {
    Parallel.setThreads(2);
    int[] sink = new int[2];
    for (int i = 0; i < 200_000; i++) {
      Parallel.forChunks(2, 1, (s, e) -> sink[s]++);
    }
    int n = 200_000;
    long t0 = System.nanoTime();
    for (int i = 0; i < n; i++) {
      Parallel.forChunks(2, 1, (s, e) -> sink[s]++);
    }
    System.out.printf(
        Locale.ROOT,
        "pool: %.2f µs per 2-thread dispatch (empty body)%n",
        (System.nanoTime() - t0) / 1e3 / n);
  }

  /** Enough copies of a random tensor to exceed the last-level cache (≥ 256 MB in all). */
  private static List<FloatTensor> copies(GgmlType type, int rows, int cols) {
    long bytes = type.byteSize((long) rows * cols);
    int n = (int) Math.max(2, (256L << 20) / bytes + 1);
    List<FloatTensor> out = new ArrayList<>();
    Random rnd = new Random(42);
    for (int i = 0; i < n; i++) {
      out.add(FloatTensor.of(type, TensorReference.randomRaw(type, rows, cols, rnd), rows, cols));
    }
    return out;
  }

  private static double matvec(List<FloatTensor> copies) {
    FloatTensor w0 = copies.get(0);
    float[] x = TensorReference.randomActivations(w0.cols(), new Random(1));
    float[] y = new float[w0.rows()];
    long bytes = w0.data().byteSize();
    for (int i = 0; i < 3 * copies.size(); i++) {
      copies.get(i % copies.size()).matmul(x, y, 1);
    }
    long calls = 0;
    long start = System.nanoTime();
    long elapsed;
    do {
      for (FloatTensor w : copies) {
        w.matmul(x, y, 1);
      }
      calls += copies.size();
      elapsed = System.nanoTime() - start;
    } while (elapsed < seconds * 1e9);
    return bytes * calls / (double) elapsed;
  }

  private static double gemm(FloatTensor w, int tokens) {
    float[] x = TensorReference.randomActivations(tokens * w.cols(), new Random(2));
    float[] y = new float[tokens * w.rows()];
    w.matmul(x, y, tokens);
    w.matmul(x, y, tokens);
    long calls = 0;
    long start = System.nanoTime();
    long elapsed;
    do {
      w.matmul(x, y, tokens);
      calls++;
      elapsed = System.nanoTime() - start;
    } while (elapsed < seconds * 1e9);
    return 2.0 * w.rows() * w.cols() * tokens * calls / elapsed;
  }

  private static void memoryBandwidth() {
    long size = 512L << 20;
    MemorySegment a = Arena.ofAuto().allocate(size, 64);
    MemorySegment b = Arena.ofAuto().allocate(size, 64);
    a.fill((byte) 1);
    b.fill((byte) 2);
    double best = 0;
    for (int i = 0; i < 5; i++) {
      long t0 = System.nanoTime();
      MemorySegment.copy(a, 0, b, 0, size);
      best = Math.max(best, size / (double) (System.nanoTime() - t0));
    }
    // Read bandwidth: a vectorized float sum over the buffer, one thread and two.
    FloatTensor f = FloatTensor.of(GgmlType.F32, a, 1 << 13, (int) (size / 4 >> 13));
    float[] x = new float[f.cols()];
    java.util.Arrays.fill(x, 1f);
    float[] y = new float[f.rows()];
    double[] read = new double[3];
    for (int threads = 1; threads <= 2; threads++) {
      Parallel.setThreads(threads);
      for (int i = 0; i < 5; i++) {
        long t0 = System.nanoTime();
        f.matmul(x, y, 1);
        read[threads] = Math.max(read[threads], size / (double) (System.nanoTime() - t0));
      }
    }
    System.out.printf(
        Locale.ROOT,
        "memory: copy %.1f GB/s (bytes copied/s, 1 thread, 512 MB); read %.1f GB/s (1 thread),"
            + " %.1f GB/s (2 threads)%n",
        best,
        read[1],
        read[2]);
  }

  /**
   * Every type's single-row kernels in cache on one thread, and the bytes each allocates per row
   * once compiled: anything but 0 means C2 left a Vector API call out of line and boxed vectors.
   */
  private static void kernels() {
    int rows = 64;
    int cols = 4096;
    Random rnd = new Random(5);
    float[] x = TensorReference.randomActivations(cols, rnd);
    float[] buf = new float[cols];
    com.sun.management.ThreadMXBean mx =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    System.out.println(
        "kernels in cache, 1 thread: dot and dotRows G elem/s (GB/s), dequantize G elem/s, bytes"
            + " allocated per row");
    for (GgmlType type : TensorReference.TYPES) {
      FloatTensor w =
          FloatTensor.of(type, TensorReference.randomRaw(type, rows, cols, rnd), rows, cols);
      double dot =
          time(
              () -> {
                float s = 0;
                for (int r = 0; r < rows; r++) {
                  s += w.dot(r, x, 0);
                }
                return s;
              });
      float[] y = new float[rows];
      double dotRows =
          time(
              () -> {
                w.dotRows(0, rows, x, 0, y, 0);
                return y[rows - 1];
              });
      double dq =
          time(
              () -> {
                for (int r = 0; r < rows; r++) {
                  w.dequantizeRow(r, buf, 0);
                }
                return buf[7];
              });
      long id = Thread.currentThread().threadId();
      long before = mx.getThreadAllocatedBytes(id);
      float sink = 0;
      for (int rep = 0; rep < 100; rep++) {
        for (int r = 0; r < rows; r++) {
          sink += w.dot(r, x, 0);
          w.dequantizeRow(r, buf, 0);
        }
        w.dotRows(0, rows, x, 0, y, 0);
      }
      long perRow = (mx.getThreadAllocatedBytes(id) - before) / (100L * rows);
      System.out.printf(
          Locale.ROOT,
          "  %-5s dot %6.2f (%5.1f GB/s)  dotRows %6.2f  dequantize %6.2f  alloc %d B/row%s%n",
          type,
          rows * (double) cols / dot,
          w.data().byteSize() / dot,
          rows * (double) cols / dotRows,
          rows * (double) cols / dq,
          perRow,
          sink == 42 ? " " : "");
    }
  }

  /** In-cache, single thread: the vector kernels against plain scalar loops over the same data. */
  private static void simdCheck() {
    int rows = 64;
    int cols = 4096;
    Random rnd = new Random(3);
    float[] x = TensorReference.randomActivations(cols, rnd);
    for (GgmlType type : new GgmlType[] {GgmlType.F32, GgmlType.Q8_0}) {
      FloatTensor w =
          FloatTensor.of(type, TensorReference.randomRaw(type, rows, cols, rnd), rows, cols);
      MemorySegment seg = w.data();
      double vec =
          time(
              () -> {
                float s = 0;
                for (int r = 0; r < rows; r++) {
                  s += w.dot(r, x, 0);
                }
                return s;
              });
      double scalar =
          time(
              () -> {
                float s = 0;
                for (int r = 0; r < rows; r++) {
                  s +=
                      type == GgmlType.F32 ? scalarF32(seg, r, cols, x) : scalarQ8(seg, r, cols, x);
                }
                return s;
              });
      System.out.printf(
          Locale.ROOT,
          "SIMD check %-5s dot (in cache, 1 thread): vector %.2f G elem/s, scalar loop %.2f G elem/s"
              + " (%.1fx)%n",
          type,
          rows * (double) cols / vec,
          rows * (double) cols / scalar,
          scalar / vec);
    }
  }

  private static float scalarF32(MemorySegment seg, int r, int cols, float[] x) {
    float s = 0;
    long base = (long) r * cols * 4;
    for (int c = 0; c < cols; c++) {
      s += seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, base + 4L * c) * x[c];
    }
    return s;
  }

  private static float scalarQ8(MemorySegment seg, int r, int cols, float[] x) {
    float s = 0;
    long off = (long) r * cols / 32 * 34;
    for (int b = 0; b < cols; b += 32, off += 34) {
      float d = Float.float16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
      float bs = 0;
      for (int i = 0; i < 32; i++) {
        bs += seg.get(ValueLayout.JAVA_BYTE, off + 2 + i) * x[b + i];
      }
      s += d * bs;
    }
    return s;
  }

  /** Nanoseconds per call of the best of many repetitions. */
  private static double time(java.util.function.DoubleSupplier body) {
    double sink = 0;
    double best = Double.MAX_VALUE;
    for (int rep = 0; rep < 2000; rep++) {
      long t0 = System.nanoTime();
      sink += body.getAsDouble();
      best = Math.min(best, System.nanoTime() - t0);
    }
    if (sink == 42) {
      System.out.print("");
    }
    return best;
  }

  /**
   * The llama.cpp alternative for Q8_0: quantize the activations to int8 blocks (Q8_0 of x) and
   * take integer block dot products (bytes widened to shorts, multiplied, pairs summed and widened
   * to ints; the Vector API has no pmaddubsw/vpdpbusd), against the float path the engine uses.
   */
  private static void int8Activations() {
    int rows = 64;
    int cols = 4096;
    Random rnd = new Random(4);
    float[] x = TensorReference.randomActivations(cols, rnd);
    FloatTensor w =
        FloatTensor.of(
            GgmlType.Q8_0, TensorReference.randomRaw(GgmlType.Q8_0, rows, cols, rnd), rows, cols);
    MemorySegment seg = w.data();
    byte[] xq = new byte[cols];
    float[] xd = new float[cols / 32];
    double floatPath =
        time(
            () -> {
              float s = 0;
              for (int r = 0; r < rows; r++) {
                s += w.dot(r, x, 0);
              }
              return s;
            });
    double intPath =
        time(
            () -> {
              quantizeQ8(x, xq, xd);
              float s = 0;
              for (int r = 0; r < rows; r++) {
                s += int8Dot(seg, r, cols, xq, xd);
              }
              return s;
            });
    quantizeQ8(x, xq, xd);
    System.out.printf(
        Locale.ROOT,
        "Q8_0 dot, float activations: %.2f G elem/s; int8 activations: %.2f G elem/s"
            + " (in cache, 1 thread; check %.4f vs %.4f)%n",
        rows * (double) cols / floatPath,
        rows * (double) cols / intPath,
        w.dot(0, x, 0),
        int8Dot(seg, 0, cols, xq, xd));
  }

  private static void quantizeQ8(float[] x, byte[] xq, float[] xd) {
    for (int b = 0; b < x.length / 32; b++) {
      float amax = 0;
      for (int i = 0; i < 32; i++) {
        amax = Math.max(amax, Math.abs(x[32 * b + i]));
      }
      float d = amax / 127;
      float id = d == 0 ? 0 : 1 / d;
      xd[b] = d;
      for (int i = 0; i < 32; i++) {
        xq[32 * b + i] = (byte) Math.round(x[32 * b + i] * id);
      }
    }
  }

  private static float int8Dot(MemorySegment seg, int r, int cols, byte[] xq, float[] xd) {
    long off = (long) r * cols / 32 * 34;
    FloatVector acc = FloatVector.zero(FloatVector.SPECIES_256);
    for (int b = 0; b < cols; b += 32, off += 34) {
      ByteVector wq = ByteVector.fromMemorySegment(ByteVector.SPECIES_256, seg, off + 2, Vec.LE);
      ByteVector aq = ByteVector.fromArray(ByteVector.SPECIES_256, xq, b);
      // |w·a| ≤ 128·127, so the sum of two products still fits a short.
      ShortVector p0 =
          ((ShortVector) wq.convertShape(VectorOperators.B2S, ShortVector.SPECIES_256, 0))
              .mul((ShortVector) aq.convertShape(VectorOperators.B2S, ShortVector.SPECIES_256, 0));
      ShortVector p1 =
          ((ShortVector) wq.convertShape(VectorOperators.B2S, ShortVector.SPECIES_256, 1))
              .mul((ShortVector) aq.convertShape(VectorOperators.B2S, ShortVector.SPECIES_256, 1));
      ShortVector p = p0.add(p1);
      IntVector s =
          ((IntVector) p.convertShape(VectorOperators.S2I, IntVector.SPECIES_256, 0))
              .add((IntVector) p.convertShape(VectorOperators.S2I, IntVector.SPECIES_256, 1));
      float d = Float.float16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, off)) * xd[b / 32];
      acc =
          ((FloatVector) s.convertShape(VectorOperators.I2F, FloatVector.SPECIES_256, 0))
              .fma(FloatVector.broadcast(FloatVector.SPECIES_256, d), acc);
    }
    return acc.reduceLanes(VectorOperators.ADD);
  }
}
