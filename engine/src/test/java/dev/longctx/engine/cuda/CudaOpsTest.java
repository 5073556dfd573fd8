package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Attention;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import dev.longctx.engine.tensor.Quantizer;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The cross-backend op suite (after ggml's test-backend-ops): each kernel of longctx.cu on fresh
 * random inputs in several shapes, against the CPU kernel and a float64 reference, with the device
 * output buffers poisoned with NaN so an unwritten element fails. Skips without a CUDA device.
 */
class CudaOpsTest {

  private final SplittableRandom random = new SplittableRandom(0x6a09e667L);
  private final List<AutoCloseable> resources = new ArrayList<>();
  private CudaContext cx;
  private CudaKernels k;

  /** The element type of the caches {@link #cache} builds. */
  private KvCacheType kvType = KvCacheType.F32;

  @BeforeEach
  void device() {
    cx = CudaTests.context();
    k = keep(new CudaKernels(cx));
  }

  @AfterEach
  void free() throws Exception {
    for (AutoCloseable r : resources) {
      r.close();
    }
    resources.clear();
  }

  private <T extends AutoCloseable> T keep(T r) {
    resources.add(r);
    return r;
  }

  private float[] randoms(int n, double scale) {
    float[] x = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
    }
    return x;
  }

  private DeviceBuffer up(float[] x) {
    return keep(cx.upload(x));
  }

  private DeviceBuffer up(int[] x) {
    return keep(cx.upload(x));
  }

  private DeviceBuffer poisoned(long n) {
    return keep(CudaTests.poisoned(cx, n));
  }

  /** Every element within {@code tol · max(1, max|ref|)} of the reference, and none NaN. */
  private static void assertClose(String what, float[] actual, double[] ref, double tol) {
    double scale = 1;
    for (double r : ref) {
      scale = Math.max(scale, Math.abs(r));
    }
    for (int i = 0; i < ref.length; i++) {
      assertThat(Float.isNaN(actual[i])).as("%s[%d] unwritten or NaN", what, i).isFalse();
      assertThat(Math.abs(actual[i] - ref[i]))
          .as("%s[%d]: %s vs reference %s", what, i, actual[i], ref[i])
          .isLessThanOrEqualTo(tol * scale);
    }
  }

  /**
   * Quantized activations (quantize_rows_q8, matvec_split_q8x): the quants and scales are exactly
   * the reference's (max |x| / 127 per 32-element block, round half to even), and the integer
   * product equals the float64 product of the weights and the dequantized activations, on the
   * shapes of {@link #matvecEveryWeightType} (rests only, whole chunks, chunks and a rest,
   * four-chunk rounds and their rest), a block of zeros included.
   */
  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
  void matvecOverQuantizedActivations(GgmlType type) {
    // the K-quants (matvec_kquant_q8x): one, two, four, five and seventeen super-blocks a row
    int[][] shapes =
        type.blockSize() == 256
            ? new int[][] {{1, 256, 1}, {37, 512, 3}, {129, 1024, 2}, {6, 1280, 1}, {3, 4352, 2}}
            : new int[][] {{1, 32, 1}, {37, 64, 3}, {129, 1024, 2}, {5, 1568, 1}, {3, 4160, 2}};
    for (int[] s : shapes) {
      int rows = s[0];
      int cols = s[1];
      int n = s[2];
      int blocks = cols / 32;
      FloatTensor w = Quantizer.quantize(type, randoms(rows * cols, 1), rows, cols);
      float[] x = randoms(n * cols, 1);
      if (cols > 32) {
        Arrays.fill(x, 32, 64, 0f); // an all-zero block: scale 0, quants 0
      }
      // the reference quantization
      byte[] q = new byte[n * cols];
      float[] d = new float[n * blocks];
      for (int b = 0; b < n * blocks; b++) {
        float max = 0;
        for (int e = 0; e < 32; e++) {
          max = Math.max(max, Math.abs(x[32 * b + e]));
        }
        d[b] = max / 127f;
        for (int e = 0; e < 32; e++) {
          q[32 * b + e] = d[b] == 0f ? 0 : (byte) Math.rint(x[32 * b + e] / d[b]);
        }
      }
      double[] ref = new double[n * rows];
      for (int t = 0; t < n; t++) {
        for (int r = 0; r < rows; r++) {
          double sum = 0;
          for (int c = 0; c < cols; c++) {
            int i = t * cols + c;
            sum += (double) w.getFloat((long) r * cols + c) * ((double) d[i / 32] * q[i]);
          }
          ref[t * rows + r] = sum;
        }
      }
      DeviceTensor dw = keep(DeviceTensor.upload(cx, w, "w"));
      DeviceBuffer xq = keep(cx.alloc((long) n * cols));
      cx.fill(xq, CudaTests.NAN_BITS);
      DeviceBuffer xd = poisoned((long) n * blocks);
      DeviceBuffer y = poisoned((long) n * rows);
      k.quantizeRows(up(x).address(), xq.address(), xd.address(), cols, n);
      k.matvecQuantized(dw, xq.address(), xd.address(), y.address(), n);
      String what = type + " " + rows + "x" + cols + " n=" + n;
      int[] words = new int[n * cols / 4];
      cx.read(xq, 0, words, words.length);
      for (int i = 0; i < n * cols; i++) {
        assertThat((byte) (words[i / 4] >> (8 * (i % 4))))
            .as("%s quant %d of %s", what, i, x[i])
            .isEqualTo(q[i]);
      }
      assertThat(CudaTests.read(cx, xd, n * blocks)).as(what + " scales").containsExactly(d);
      assertClose(what, CudaTests.read(cx, y, n * rows), ref, 2e-6 * Math.sqrt(cols));
    }
    if (type == GgmlType.Q4_K) {
      return; // its GGUF super-blocks are the integer product's layout
    }
    // only the split layout has the integer product
    int cols = type.blockSize();
    FloatTensor w = Quantizer.quantize(type, randoms(2 * cols, 1), 2, cols);
    DeviceTensor gguf = keep(DeviceTensor.upload(cx, w, "g", DeviceTensor.Layout.GGUF));
    assertThatThrownBy(() -> k.matvecQuantized(gguf, 0L, 0L, 0L, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("split layout");
    assertThatThrownBy(() -> k.quantizeRows(0L, 0L, 0L, 48, 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("cols % 32");
  }

  /**
   * A launch over CUDA's grid or block limits fails naming the kernel and the limit (the driver
   * alone would say CUDA_ERROR_INVALID_VALUE), and the context still launches afterwards.
   */
  @Test
  void launchesOverCudaLimitsFailClearly() {
    DeviceBuffer x = up(new float[] {1f, 2f});
    DeviceBuffer y = up(new float[] {3f, 4f});
    assertThatThrownBy(() -> cx.launch("add_inplace", 1, 65536, 32, x, y, 2L))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("add_inplace")
        .hasMessageContaining("grid y at most 65535");
    assertThatThrownBy(() -> cx.launch("add_inplace", 1, 1, 2048, x, y, 2L))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("at most 1024 threads");
    cx.launch("add_inplace", 1, 1, 32, x, y, 2L);
    float[] sum = new float[2];
    cx.read(x, 0, sum, 2);
    assertThat(sum).containsExactly(4f, 6f);
  }

  /**
   * The producers of int8 activations (rmsnorm_rows_q8, add_rmsnorm_rows_q8, swiglu_q8,
   * attention_combine_q8): their float output is the plain kernel's, bit for bit, and their int8
   * form is what quantize_rows_q8 makes of that output, byte for byte and scale for scale.
   */
  @Test
  void fusedProducersWriteTheInt8FormOfTheirOutput() {
    int n = 3;
    int dim = 320;
    long count = (long) n * dim;
    float eps = 1e-5f;
    float[] x = randoms(n * dim, 2);
    float[] delta = randoms(n * dim, 1);
    float[] weight = randoms(dim, 1);
    DeviceBuffer wBuf = up(weight);
    for (String producer : new String[] {"rmsnorm", "add_rmsnorm", "swiglu"}) {
      float[][] outs = new float[2][];
      DeviceBuffer fusedQ = keep(cx.alloc(count));
      DeviceBuffer fusedD = poisoned(count / 32);
      for (int fused = 0; fused < 2; fused++) {
        DeviceBuffer xs = up(x);
        DeviceBuffer out = poisoned(count);
        CudaModel.Int8 int8 =
            fused == 1 ? new CudaModel.Int8(fusedQ.address(), fusedD.address()) : null;
        switch (producer) {
          case "rmsnorm" ->
              k.rmsnorm(out.address(), xs.address(), wBuf.address(), n, dim, eps, int8);
          case "add_rmsnorm" ->
              k.addRmsnorm(
                  xs.address(),
                  up(delta).address(),
                  out.address(),
                  wBuf.address(),
                  n,
                  dim,
                  eps,
                  int8);
          default -> {
            k.swiglu(xs.address(), up(delta).address(), count, int8);
            out = xs;
          }
        }
        outs[fused] = CudaTests.read(cx, out, (int) count);
      }
      assertThat(outs[1]).as(producer + " output").containsExactly(outs[0]);
      DeviceBuffer refQ = keep(cx.alloc(count));
      DeviceBuffer refD = poisoned(count / 32);
      k.quantizeRows(up(outs[0]).address(), refQ.address(), refD.address(), dim, n);
      int[] got = new int[(int) count / 4];
      int[] want = new int[(int) count / 4];
      cx.read(fusedQ, 0, got, got.length);
      cx.read(refQ, 0, want, want.length);
      assertThat(got).as(producer + " quants").containsExactly(want);
      assertThat(CudaTests.read(cx, fusedD, (int) count / 32))
          .as(producer + " scales")
          .containsExactly(CudaTests.read(cx, refD, (int) count / 32));
    }
    // the attention's split merge (decode rows, 8 query heads over 2 KV heads of 64, 700 keys)
    int heads = 8;
    int kvHeads = 2;
    int headDim = 64;
    int len = 700;
    int rows = 2;
    CudaKvCache cache =
        cache(
            randoms(len * kvHeads * headDim, 1),
            randoms(len * kvHeads * headDim, 1),
            len,
            kvHeads * headDim);
    DeviceBuffer q = up(randoms(rows * heads * headDim, 1));
    int width = heads * headDim;
    float[][] outs = new float[2][];
    DeviceBuffer fusedQ = keep(cx.alloc((long) rows * width));
    DeviceBuffer fusedD = poisoned((long) rows * width / 32);
    for (int fused = 0; fused < 2; fused++) {
      DeviceBuffer out = poisoned((long) rows * width);
      boolean wrote =
          k.attention(
              q.address(),
              cache.keyTable(0),
              cache.valueTable(0),
              CudaKvCache.PAGE_TOKENS,
              cache.type(),
              out.address(),
              0L,
              rows,
              heads,
              kvHeads,
              headDim,
              0.125f,
              len - rows,
              0L,
              0L,
              0,
              0,
              false,
              fused == 1 ? new CudaModel.Int8(fusedQ.address(), fusedD.address()) : null);
      assertThat(wrote).as("int8 written by the merge").isEqualTo(fused == 1);
      outs[fused] = CudaTests.read(cx, out, rows * width);
    }
    assertThat(outs[1]).as("attention output").containsExactly(outs[0]);
    DeviceBuffer refQ = keep(cx.alloc((long) rows * width));
    DeviceBuffer refD = poisoned((long) rows * width / 32);
    k.quantizeRows(up(outs[0]).address(), refQ.address(), refD.address(), width, rows);
    int[] got = new int[rows * width / 4];
    int[] want = new int[rows * width / 4];
    cx.read(fusedQ, 0, got, got.length);
    cx.read(refQ, 0, want, want.length);
    assertThat(got).as("attention quants").containsExactly(want);
    assertThat(CudaTests.read(cx, fusedD, rows * width / 32))
        .as("attention scales")
        .containsExactly(CudaTests.read(cx, refD, rows * width / 32));
  }

  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
  void matvecEveryWeightType(GgmlType type) {
    // Q8_0 / Q4_0 upload in the split layout: rows of only a rest (cols < 512 / 1024), whole
    // interleaved chunks only (1024), and chunks then a rest (1568); rows long enough for the
    // F16/BF16 kernel's eight-load rounds, then its four-load and single-load rests (4160). The
    // K-quants' rows are whole 256-element super-blocks: one, two, four, five (a warp's two
    // rounds of four and a fifth) and seventeen of them; each K-quant also through its other
    // kernel (Q4_K: matvec's byte-per-lane path; Q6_K: the GGUF layout).
    int[][] shapes =
        type.blockSize() == 256
            ? new int[][] {
              {1, 256, 1}, {37, 512, 3}, {300, 256, 1}, {129, 1024, 2}, {6, 1280, 2}, {3, 4352, 2}
            }
            : new int[][] {
              {1, 32, 1}, {37, 64, 3}, {300, 256, 1}, {129, 1024, 2}, {5, 1568, 1}, {3, 4160, 2}
            };
    for (int[] s : shapes) {
      int rows = s[0];
      int cols = s[1];
      int n = s[2];
      FloatTensor w = Quantizer.quantize(type, randoms(rows * cols, 1), rows, cols);
      float[] x = randoms(n * cols, 1);
      double[] ref = new double[n * rows];
      for (int t = 0; t < n; t++) {
        for (int r = 0; r < rows; r++) {
          double sum = 0;
          for (int c = 0; c < cols; c++) {
            sum += (double) w.getFloat((long) r * cols + c) * x[t * cols + c];
          }
          ref[t * rows + r] = sum;
        }
      }
      float[] cpu = new float[n * rows];
      w.matmul(x, cpu, n);
      DeviceTensor dw = keep(DeviceTensor.upload(cx, w, "w"));
      DeviceBuffer dx = up(x);
      DeviceBuffer y = poisoned((long) n * rows);
      k.matvec(dw, dx.address(), y.address(), n);
      double tol = 2e-6 * Math.sqrt(cols);
      String what = type + " " + rows + "x" + cols + " n=" + n;
      assertClose(what + " cpu", cpu, ref, tol);
      assertClose(what + " cuda", CudaTests.read(cx, y, n * rows), ref, tol);
      if (type.blockSize() == 256) {
        DeviceTensor other = dw;
        if (type == GgmlType.Q6_K) {
          assertThat(dw.layout()).isEqualTo(DeviceTensor.Layout.SPLIT);
          other = keep(DeviceTensor.upload(cx, w, "g", DeviceTensor.Layout.GGUF));
        }
        k.setWideKQuants(false);
        DeviceBuffer y2 = poisoned((long) n * rows);
        k.matvec(other, dx.address(), y2.address(), n);
        k.setWideKQuants(true);
        assertClose(what + " cuda, other kernel", CudaTests.read(cx, y2, n * rows), ref, tol);
      }
    }
  }

  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
  void embeddingDequantizesRows(GgmlType type) {
    int vocab = 50;
    int[] dims = type.blockSize() == 256 ? new int[] {256, 1280} : new int[] {96, 1120};
    for (int dim : dims) {
      FloatTensor table = Quantizer.quantize(type, randoms(vocab * dim, 2), vocab, dim);
      int[] tokens = {0, 49, 7, 7, 23};
      DeviceBuffer out = poisoned((long) tokens.length * dim);
      k.embed(keep(DeviceTensor.upload(cx, table, "t")), up(tokens).address(), out.address(), 5);
      float[] got = CudaTests.read(cx, out, tokens.length * dim);
      float[] cpu = new float[dim];
      for (int t = 0; t < tokens.length; t++) {
        table.dequantizeRow(tokens[t], cpu, 0);
        assertThat(Arrays.copyOfRange(got, t * dim, (t + 1) * dim))
            .as("dim %d row %d", dim, t)
            .isEqualTo(cpu);
      }
    }
  }

  /**
   * dequantize_to_half (the prefill GEMM's copy of a weight) for the K-quants, in their GGUF
   * super-blocks: every element is the CPU's dequantized value rounded to FP16 or BF16 (round to
   * nearest even), bit for bit, over one to five super-blocks a row.
   */
  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"Q4_K", "Q6_K"})
  void kQuantsDequantizeToHalfAsTheCpuRounds(GgmlType type) {
    for (int[] shape : new int[][] {{5, 256}, {3, 1280}}) {
      int rows = shape[0];
      int cols = shape[1];
      FloatTensor w = Quantizer.quantize(type, randoms(rows * cols, 3), rows, cols);
      DeviceTensor dw = keep(DeviceTensor.upload(cx, w, "w"));
      for (boolean fp16 : new boolean[] {true, false}) {
        DeviceBuffer h = poisoned((long) rows * cols / 2);
        k.dequantizeToHalf(dw, h.address(), fp16);
        int[] words = new int[rows * cols / 2];
        cx.read(h, 0, words, words.length);
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
          w.dequantizeRow(r, row, 0);
          // The CPU's values rounded by the project's FP16/BF16 writer (round to nearest even).
          MemorySegment rounded =
              Quantizer.quantize(fp16 ? GgmlType.F16 : GgmlType.BF16, row, 1, cols).data();
          for (int c = 0; c < cols; c++) {
            int i = r * cols + c;
            int bits = (words[i / 2] >>> (16 * (i % 2))) & 0xffff;
            int want = rounded.get(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * c) & 0xffff;
            assertThat(bits)
                .as("%s %dx%d fp16=%s [%d, %d] (%s)", type, rows, cols, fp16, r, c, row[c])
                .isEqualTo(want);
          }
        }
      }
    }
  }

  /**
   * Q8_0 and Q4_0 stacked (as CudaModel stacks q/k/v) in the split layout and in the GGUF layout:
   * the row view of each part gives the float64 product in matvec (n = 2) and the same FP16/BF16
   * weights in dequantize_to_half (the prefill GEMM's copy) in both layouts; the byte accounting
   * stays GGUF's; the kernels get their own type id.
   */
  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"Q8_0", "Q4_0", "Q6_K"})
  void splitLayoutRowViewsOfAStack(GgmlType type) {
    // Q8_0: three interleaved chunks and a rest; Q4_0: one chunk and a rest; Q6_K: five
    // super-blocks (a warp's round of two and a single one)
    int cols = type == GgmlType.Q6_K ? 1280 : 1568;
    int[] partRows = {37, 16, 21};
    int n = 2;
    List<FloatTensor> parts = new ArrayList<>();
    long ggufBytes = 0;
    for (int rows : partRows) {
      FloatTensor t = Quantizer.quantize(type, randoms(rows * cols, 1), rows, cols);
      parts.add(t);
      ggufBytes += t.data().byteSize();
    }
    assertThat(DeviceTensor.defaultLayout(type, cols)).isEqualTo(DeviceTensor.Layout.SPLIT);
    DeviceTensor split = keep(DeviceTensor.stack(cx, parts, "s"));
    DeviceTensor gguf = keep(DeviceTensor.stack(cx, parts, "g", DeviceTensor.Layout.GGUF));
    assertThat(split.layout()).isEqualTo(DeviceTensor.Layout.SPLIT);
    assertThat(split.kernelType()).isEqualTo(256 + type.id());
    assertThat(gguf.kernelType()).isEqualTo(type.id());
    assertThat(split.bytes()).isEqualTo(ggufBytes).isEqualTo(gguf.bytes());
    float[] x = randoms(n * cols, 1);
    DeviceBuffer dx = up(x);
    int first = 0;
    for (int p = 0; p < parts.size(); p++) {
      FloatTensor w = parts.get(p);
      int rows = w.rows();
      double[] ref = new double[n * rows];
      for (int t = 0; t < n; t++) {
        for (int r = 0; r < rows; r++) {
          double sum = 0;
          for (int c = 0; c < cols; c++) {
            sum += (double) w.getFloat((long) r * cols + c) * x[t * cols + c];
          }
          ref[t * rows + r] = sum;
        }
      }
      int[][] halves = new int[2][];
      for (DeviceTensor whole : new DeviceTensor[] {split, gguf}) {
        DeviceTensor view = whole.rows(first, rows);
        assertThat(view.bytes()).isEqualTo(w.data().byteSize());
        String what = type + " " + view.layout() + " part " + p;
        DeviceBuffer y = poisoned((long) n * rows);
        k.matvec(view, dx.address(), y.address(), n);
        assertClose(what, CudaTests.read(cx, y, n * rows), ref, 2e-6 * Math.sqrt(cols));
        for (boolean fp16 : new boolean[] {true, false}) {
          DeviceBuffer h = poisoned((long) rows * cols / 2);
          k.dequantizeToHalf(view, h.address(), fp16);
          int[] words = new int[rows * cols / 2];
          cx.read(h, 0, words, words.length);
          for (int i = 0; i < rows * cols; i++) {
            int bits = (words[i / 2] >>> (16 * (i % 2))) & 0xffff;
            float v = fp16 ? Float.float16ToFloat((short) bits) : Float.intBitsToFloat(bits << 16);
            double want = w.getFloat(i);
            assertThat(Math.abs(v - want))
                .as("%s dequantize_to_half fp16=%s [%d]", what, fp16, i)
                .isLessThanOrEqualTo((fp16 ? 1e-3 : 8e-3) * Math.max(1, Math.abs(want)));
          }
          if (whole == split) {
            halves[fp16 ? 0 : 1] = words;
          } else {
            assertThat(words)
                .as("%s: both layouts dequantize alike", what)
                .isEqualTo(halves[fp16 ? 0 : 1]);
          }
        }
      }
      first += rows;
    }
    assertThatThrownBy(
            () ->
                DeviceTensor.upload(
                    cx,
                    Quantizer.quantize(GgmlType.F16, randoms(64, 1), 2, 32),
                    "f",
                    DeviceTensor.Layout.SPLIT))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("split layout");
  }

  /**
   * A random-weight one-layer model written as Q8_0 or Q4_0 GGUF (widths with interleaved chunks
   * and rests: 640 and 1088 columns), or as Q4_K or Q6_K (widths of whole super-blocks: 512 and
   * 1280), on the GPU against the CPU Transformer on the same weights: the stacked q/k/v and
   * gate/up in the split layout (Q8_0, Q4_0) and their row views (the multi-row prefill chunk), the
   * embedding and output tables; logits equal within float summation order.
   */
  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
  void quantizedModelMatchesTheCpuBackend(GgmlType type, @TempDir Path tmp) throws IOException {
    quantizedModelMatchesTheCpuBackend(MatrixTypes.of(type), tmp);
  }

  /**
   * llama.cpp's Q4_K_M mix (Q6_K for attn_v, ffn_down and the tied embedding that is also the
   * output projection, Q4_K for the rest): q/k/v of two types cannot be stacked as one, so decode
   * reads q/k stacked and v apart.
   */
  @Test
  void q4KmMixMatchesTheCpuBackend(@TempDir Path tmp) throws IOException {
    quantizedModelMatchesTheCpuBackend(MatrixTypes.Q4_K_M, tmp);
  }

  private void quantizedModelMatchesTheCpuBackend(MatrixTypes types, Path tmp) throws IOException {
    boolean kQuant = types.base().blockSize() == 256;
    LlamaConfig shape =
        new LlamaConfig(
            "llama",
            kQuant ? 512 : 640,
            kQuant ? 1280 : 1088,
            1,
            kQuant ? 8 : 10,
            2,
            64,
            260,
            64,
            1e-5f,
            10000f,
            Rope.Layout.INTERLEAVED,
            null);
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("q.gguf"), shape, 17, types)) {
      LlamaConfig c = model.config();
      LlamaWeights weights = model.weights();
      LlamaWeights.Layer layer = weights.layers().getFirst();
      assertThat(layer.wq().type()).isEqualTo(types.base());
      assertThat(layer.wv().type()).isEqualTo(types.sensitive());
      assertThat(layer.wDown().type()).isEqualTo(types.sensitive());
      assertThat(weights.tokenEmbedding().type()).isEqualTo(types.sensitive());
      Transformer cpu = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(3).ints(6, 0, c.vocabSize()).toArray();
      try (CudaModel gpu = new CudaModel(cx, c, weights);
          CudaSequence gs = gpu.newSequence(prompt.length + 2)) {
        Sequence cs = cpu.newSequence(prompt.length + 2);
        float[] e = cpu.prefill(cs, prompt);
        float[] g = gpu.prefill(gs, prompt);
        for (int step = 0; step <= 2; step++) {
          double scale = 1;
          for (float v : e) {
            scale = Math.max(scale, Math.abs(v));
          }
          for (int i = 0; i < e.length; i++) {
            assertThat((double) Math.abs(g[i] - e[i]))
                .as("%s logit %d after step %d: %s vs %s", types, i, step, g[i], e[i])
                .isLessThanOrEqualTo(1e-4 * scale);
          }
          if (step < 2) {
            int next = Ops.argmax(e, 0, e.length);
            e = cpu.decode(cs, next);
            g = gpu.decode(gs, next);
          }
        }
      }
    }
  }

  @Test
  void rmsnormRows() {
    for (int dim : new int[] {8, 288, 4096}) {
      int n = 3;
      float[] x = randoms(n * dim, 3);
      float[] weight = randoms(dim, 1);
      double[] ref = new double[n * dim];
      float[] cpu = new float[n * dim];
      float eps = 1e-5f;
      for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < dim; i++) {
          ss += (double) x[t * dim + i] * x[t * dim + i];
        }
        double s = 1 / Math.sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) {
          ref[t * dim + i] = x[t * dim + i] * s * weight[i];
        }
        Ops.rmsnorm(cpu, t * dim, x, t * dim, weight, dim, eps);
      }
      DeviceBuffer out = poisoned((long) n * dim);
      k.rmsnorm(out.address(), up(x).address(), up(weight).address(), n, dim, eps);
      assertClose("cpu", cpu, ref, 1e-6);
      assertClose("rmsnorm dim " + dim, CudaTests.read(cx, out, n * dim), ref, 1e-6);
    }
  }

  @ParameterizedTest
  @EnumSource(Rope.Layout.class)
  void ropeAtAnyPositions(Rope.Layout layout) {
    int headDim = 64;
    int heads = 3;
    Rope rope = new Rope(headDim, 500000f, layout, null);
    int[] positions = {0, 1, 4097, 1_000_003, 17};
    int n = positions.length;
    int stride = heads * headDim;
    float[] x = randoms(n * stride, 1);
    float[] cpu = x.clone();
    double[] ref = new double[x.length];
    int half = headDim / 2;
    double[] freqs = new double[half];
    for (int i = 0; i < half; i++) {
      freqs[i] = rope.frequency(i);
    }
    for (int t = 0; t < n; t++) {
      rope.apply(cpu, t * stride, heads, positions[t]);
      for (int h = 0; h < heads; h++) {
        int base = t * stride + h * headDim;
        for (int i = 0; i < half; i++) {
          int a = layout == Rope.Layout.INTERLEAVED ? base + 2 * i : base + i;
          int b = layout == Rope.Layout.INTERLEAVED ? base + 2 * i + 1 : base + i + half;
          double angle = positions[t] * freqs[i];
          ref[a] = x[a] * Math.cos(angle) - x[b] * Math.sin(angle);
          ref[b] = x[a] * Math.sin(angle) + x[b] * Math.cos(angle);
        }
      }
    }
    DeviceBuffer dx = up(x);
    k.rope(
        dx.address(),
        up(positions).address(),
        keep(cx.upload(freqs)).address(),
        n,
        heads,
        headDim,
        stride,
        layout == Rope.Layout.INTERLEAVED);
    assertClose("cpu", cpu, ref, 1e-6);
    assertClose("rope " + layout, CudaTests.read(cx, dx, x.length), ref, 1e-6);
  }

  @Test
  void elementwiseSwigluAddBias() {
    int n = 1000;
    float[] gate = randoms(n, 6);
    float[] upv = randoms(n, 2);
    float[] cpu = gate.clone();
    Ops.swiglu(cpu, upv, n);
    double[] ref = new double[n];
    for (int i = 0; i < n; i++) {
      ref[i] = gate[i] / (1 + Math.exp(-gate[i])) * upv[i];
    }
    DeviceBuffer g = up(gate);
    k.swiglu(g.address(), up(upv).address(), n);
    assertClose("cpu swiglu", cpu, ref, 1e-6);
    assertClose("swiglu", CudaTests.read(cx, g, n), ref, 1e-6);

    float[] a = randoms(n, 1);
    float[] b = randoms(n, 1);
    DeviceBuffer da = up(a);
    k.add(da.address(), up(b).address(), n);
    double[] sum = new double[n];
    for (int i = 0; i < n; i++) {
      sum[i] = (double) a[i] + b[i];
    }
    assertClose("add", CudaTests.read(cx, da, n), sum, 1e-7);

    int width = 40;
    float[] y = randoms(width * 25, 1);
    float[] bias = randoms(width, 1);
    DeviceBuffer dy = up(y);
    k.addBias(dy.address(), up(bias).address(), width, 25);
    double[] biased = new double[y.length];
    for (int i = 0; i < y.length; i++) {
      biased[i] = (double) y[i] + bias[i % width];
    }
    assertClose("bias", CudaTests.read(cx, dy, y.length), biased, 1e-7);
  }

  @Test
  void softmaxAndArgmaxRows() {
    for (int n : new int[] {1, 513, 32000}) {
      int rows = 2;
      float[] x = randoms(rows * n, 20);
      x[n / 2] = 25; // a clear maximum in row 0
      x[n + n - 1] = 25; // ties in row 1 at the first and last index: the first wins
      x[n] = 25;
      float[] cpu = x.clone();
      double[] ref = new double[x.length];
      int[] cpuArg = new int[rows];
      for (int r = 0; r < rows; r++) {
        cpuArg[r] = Ops.argmax(x, r * n, n);
        Ops.softmax(cpu, r * n, n);
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
          max = Math.max(max, x[r * n + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
          sum += Math.exp(x[r * n + i] - max);
        }
        for (int i = 0; i < n; i++) {
          ref[r * n + i] = Math.exp(x[r * n + i] - max) / sum;
        }
      }
      DeviceBuffer dx = up(x);
      DeviceBuffer arg = keep(cx.alloc(rows * 4L));
      cx.fill(arg, 0x7fffffff);
      k.argmax(dx.address(), rows, n, arg.address());
      int[] gotArg = new int[rows];
      cx.read(arg, 0, gotArg, rows);
      assertThat(gotArg).as("argmax n=%d", n).isEqualTo(cpuArg);
      k.softmax(dx.address(), rows, n);
      assertClose("cpu softmax", cpu, ref, 1e-6);
      assertClose("softmax n=" + n, CudaTests.read(cx, dx, x.length), ref, 1e-6);
    }
  }

  /**
   * Keys and values of one layer of {@code len} positions, uploaded through kv_store into a cache
   * of {@link #kvType}. For an F16 cache the host arrays are first rounded to half in place, so the
   * references computed from them see what the cache holds.
   */
  private CudaKvCache cache(float[] keys, float[] values, int len, int kvDim) {
    if (kvType == KvCacheType.F16) {
      roundToHalf(keys);
      roundToHalf(values);
    }
    CudaKvCache cache = keep(new CudaKvCache(cx, 1, kvDim, len, kvType));
    cache.reserve(len);
    int page = CudaKvCache.PAGE_TOKENS;
    k.kvStore(cache.keyTable(0), page, kvType, up(keys).address(), 0, len, kvDim);
    k.kvStore(cache.valueTable(0), page, kvType, up(values).address(), 0, len, kvDim);
    cache.setLength(len);
    return cache;
  }

  /** x rounded to IEEE half (to nearest even) and back, in place. */
  private static void roundToHalf(float[] x) {
    for (int i = 0; i < x.length; i++) {
      x[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
    }
  }

  /**
   * Every attention kernel over a half-precision cache: the same tests as over F32, whose float64
   * references use the keys and values rounded to half as the cache stores them (so the tolerances
   * stay those of the F32 cache: the kernels add no error of their own by reading halves).
   */
  @Test
  void attentionOverAHalfPrecisionCache() {
    kvType = KvCacheType.F16;
    try {
      causalGqaAttentionReturnsPartials();
      k.setTensorCores(true);
      tensorCorePrefillAttentionWithinFp16Rounding();
      tensorCorePrefillWithTwoHeadsABlock();
      sparseAttentionOverSelectedPositions();
      rangeAttentionOverEachRowsSlotRange();
    } finally {
      kvType = KvCacheType.F32;
    }
  }

  /** Float64 attention of q over the listed key positions; returns lse, output in out. */
  private static double reference(
      float[] q,
      int qOff,
      float[] keys,
      float[] values,
      int base,
      int stride,
      int[] positions,
      int headDim,
      double scale,
      double[] out,
      int outOff) {
    double[] s = new double[positions.length];
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < positions.length; i++) {
      double dot = 0;
      for (int d = 0; d < headDim; d++) {
        dot += (double) q[qOff + d] * keys[base + positions[i] * stride + d];
      }
      s[i] = dot * scale;
      max = Math.max(max, s[i]);
    }
    double sum = 0;
    for (int i = 0; i < positions.length; i++) {
      sum += Math.exp(s[i] - max);
    }
    for (int d = 0; d < headDim; d++) {
      double o = 0;
      for (int i = 0; i < positions.length; i++) {
        o += Math.exp(s[i] - max) * values[base + positions[i] * stride + d];
      }
      out[outOff + d] = positions.length == 0 ? 0 : o / sum;
    }
    return positions.length == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
  }

  @Test
  void causalGqaAttentionReturnsPartials() {
    k.setTensorCores(false); // the FP32 kernels; the tensor-core one has its own test
    // (len, n, heads, kvHeads, headDim): one page, several pages, headDim above the block size;
    // then the split-K kernel's shapes: a long decode row split over many blocks (GQA group 4),
    // groups of 7 (Qwen2.5) and 8, and a prefill chunk
    int[][] shapes = {
      {1, 1, 2, 1, 8},
      {300, 4, 8, 2, 64},
      {700, 3, 4, 4, 128},
      {40, 2, 2, 1, 256},
      {5000, 1, 32, 8, 128},
      {3001, 2, 14, 2, 64},
      {2100, 1, 16, 2, 128},
      {1200, 130, 4, 2, 64}
    };
    checkCausalAttention(shapes, 1e-5);
  }

  @Test
  void tensorCorePrefillAttentionWithinFp16Rounding() {
    // (len, n, heads, kvHeads, headDim). Q, K and V are rounded to FP16 for the products (FP32
    // softmax and sums), an error of ~1e-3 of the largest output. Rows: a block and a half,
    // several key tiles; the last shape is split over key ranges (few row tiles, a long context).
    int[][] shapes = {
      {1000, 130, 8, 2, 128}, {700, 64, 4, 4, 64}, {2000, 100, 8, 2, 128}, {9000, 64, 2, 1, 128}
    };
    checkCausalAttention(shapes, 3e-3);
  }

  /**
   * The tensor-core kernel taking two heads of a GQA group a block (one K/V tile staged for both):
   * the same results, causal (split and unsplit) and per-row ranges; an odd group falls back to one
   * head a block.
   */
  @Test
  void tensorCorePrefillWithTwoHeadsABlock() {
    k.setTensorCoreHeadsPerBlock(2);
    try {
      int[][] shapes = {
        {1000, 130, 8, 2, 128}, {700, 64, 4, 2, 64}, {9000, 64, 2, 1, 128}, {600, 70, 3, 1, 64}
      };
      checkCausalAttention(shapes, 3e-3);
      rangeAttentionOverEachRowsSlotRange();
    } finally {
      k.setTensorCoreHeadsPerBlock(1);
    }
  }

  /**
   * The pipelined tensor-core kernel (F16 caches: cp.async tiles, ldmatrix fragments, base-2
   * softmax, masks on boundary tiles only): the tensor-core shapes, causal (split and unsplit, rows
   * not a multiple of a block, a causal start inside a tile) and per-row ranges (unaligned windows,
   * empty rows, one whole range), against float64 of the rounded cache; then two heads a block.
   */
  @Test
  void pipelinedTensorCorePrefillOverAHalfPrecisionCache() {
    kvType = KvCacheType.F16;
    k.setTensorCores(true);
    k.setPipelinedPrefill(true);
    try {
      tensorCorePrefillAttentionWithinFp16Rounding();
      checkCausalAttention(new int[][] {{333, 70, 3, 1, 64}, {200, 64, 4, 2, 128}}, 3e-3);
      rangeAttentionOverEachRowsSlotRange();
      tensorCorePrefillWithTwoHeadsABlock();
    } finally {
      k.setPipelinedPrefill(false);
      kvType = KvCacheType.F32;
    }
  }

  /** Causal attention of each (len, n, heads, kvHeads, headDim) against float64 and the CPU. */
  private void checkCausalAttention(int[][] shapes, double tolerance) {
    for (int[] s : shapes) {
      int len = s[0];
      int n = s[1];
      int heads = s[2];
      int kvHeads = s[3];
      int headDim = s[4];
      int kvDim = kvHeads * headDim;
      int start = len - n;
      float scale = (float) (1 / Math.sqrt(headDim));
      float[] q = randoms(n * heads * headDim, 2);
      float[] keys = randoms(len * kvDim, 2);
      float[] values = randoms(len * kvDim, 1);
      CudaKvCache cache = cache(keys, values, len, kvDim);
      DeviceBuffer out = poisoned((long) n * heads * headDim);
      DeviceBuffer lse = poisoned((long) n * heads);
      k.attention(
          up(q).address(),
          cache.keyTable(0),
          cache.valueTable(0),
          CudaKvCache.PAGE_TOKENS,
          cache.type(),
          out.address(),
          lse.address(),
          n,
          heads,
          kvHeads,
          headDim,
          scale,
          start,
          0L,
          0L,
          0,
          0,
          false,
          null);
      double[] refOut = new double[n * heads * headDim];
      double[] refLse = new double[n * heads];
      float[] cpuOut = new float[n * heads * headDim];
      float[] cpuLse = new float[n * heads];
      for (int t = 0; t < n; t++) {
        int[] visible = new int[start + t + 1];
        Arrays.setAll(visible, i -> i);
        for (int h = 0; h < heads; h++) {
          int qOff = (t * heads + h) * headDim;
          int base = (h / (heads / kvHeads)) * headDim;
          refLse[t * heads + h] =
              reference(q, qOff, keys, values, base, kvDim, visible, headDim, scale, refOut, qOff);
          cpuLse[t * heads + h] =
              Attention.attend(
                  q, qOff, keys, values, base, kvDim, start + t + 1, headDim, scale, cpuOut, qOff);
        }
      }
      String what = "attention " + Arrays.toString(s);
      assertClose(what + " cpu", cpuOut, refOut, 1e-5);
      assertClose(what + " cpu lse", cpuLse, refLse, 1e-5);
      assertClose(what, CudaTests.read(cx, out, refOut.length), refOut, tolerance);
      assertClose(what + " lse", CudaTests.read(cx, lse, refLse.length), refLse, tolerance);
    }
  }

  @Test
  void sparseAttentionOverSelectedPositions() {
    int len = 600;
    int n = 3;
    int heads = 8;
    int kvHeads = 2;
    int headDim = 64;
    int kvDim = kvHeads * headDim;
    int count = 50;
    float scale = 0.125f;
    float[] q = randoms(n * heads * headDim, 2);
    float[] keys = randoms(len * kvDim, 2);
    float[] values = randoms(len * kvDim, 1);
    CudaKvCache cache = cache(keys, values, len, kvDim);
    for (boolean perKvHead : new boolean[] {false, true}) {
      int lists = perKvHead ? kvHeads : 1;
      int[] selected = new int[n * lists * count];
      for (int i = 0; i < selected.length; i++) {
        // unsorted, with −1 padding at the end of each list and one list left empty
        int inList = i % count;
        selected[i] = inList >= count - 7 ? -1 : random.nextInt(len);
      }
      Arrays.fill(selected, 0, count, -1); // row 0's first list: no keys at all
      DeviceBuffer out = poisoned((long) n * heads * headDim);
      DeviceBuffer lse = poisoned((long) n * heads);
      k.attention(
          up(q).address(),
          cache.keyTable(0),
          cache.valueTable(0),
          CudaKvCache.PAGE_TOKENS,
          cache.type(),
          out.address(),
          lse.address(),
          n,
          heads,
          kvHeads,
          headDim,
          scale,
          0,
          0L,
          up(selected).address(),
          count,
          lists * count,
          perKvHead,
          null);
      double[] refOut = new double[n * heads * headDim];
      double[] refLse = new double[n * heads];
      float[] cpuOut = new float[n * heads * headDim];
      for (int t = 0; t < n; t++) {
        for (int h = 0; h < heads; h++) {
          int kvh = h / (heads / kvHeads);
          int from = t * lists * count + (perKvHead ? kvh * count : 0);
          int[] list = Arrays.stream(selected, from, from + count).filter(p -> p >= 0).toArray();
          int qOff = (t * heads + h) * headDim;
          int base = kvh * headDim;
          refLse[t * heads + h] =
              reference(q, qOff, keys, values, base, kvDim, list, headDim, scale, refOut, qOff);
          Attention.attendPositions(
              q,
              qOff,
              keys,
              values,
              base,
              kvDim,
              list,
              0,
              list.length,
              headDim,
              scale,
              cpuOut,
              qOff);
        }
      }
      assertThat(refLse[0]).isEqualTo(Double.NEGATIVE_INFINITY);
      assertClose("sparse cpu", cpuOut, refOut, 1e-5);
      assertClose(
          "sparse perKvHead=" + perKvHead, CudaTests.read(cx, out, refOut.length), refOut, 1e-5);
      float[] gotLse = CudaTests.read(cx, lse, refLse.length);
      for (int i = 0; i < refLse.length; i++) {
        if (refLse[i] == Double.NEGATIVE_INFINITY) {
          assertThat(gotLse[i]).as("lse of an empty set").isEqualTo(Float.NEGATIVE_INFINITY);
        } else {
          assertThat((double) gotLse[i])
              .isCloseTo(refLse[i], org.assertj.core.data.Offset.offset(1e-4));
        }
      }
    }
  }

  @Test
  void rangeAttentionOverEachRowsSlotRange() {
    // (len, n, heads, kvHeads, headDim, whole): the per-(row, head) kernel (headDim 256), the
    // split kernel (long ranges: several key splits on a device with many multiprocessors; a GQA
    // group of 7), and prefill-sized chunks on the tensor-core kernel (sm_80+: FP16 products, its
    // tolerance): head dims 64 and 128, rows not a multiple of its 64-row blocks, and (whole = 1)
    // every row over the same whole slot range, as a GPU shard serves another shard's chunk (key
    // splits on a device with many multiprocessors).
    int[][] shapes = {
      {600, 4, 4, 4, 256, 0},
      {2100, 3, 16, 2, 128, 0},
      {900, 5, 7, 1, 128, 0},
      {800, 70, 8, 2, 64, 0},
      {1000, 150, 8, 2, 128, 0},
      {3000, 100, 4, 1, 128, 1}
    };
    int page = CudaKvCache.PAGE_TOKENS;
    for (int[] s : shapes) {
      int len = s[0];
      int n = s[1];
      int heads = s[2];
      int kvHeads = s[3];
      int headDim = s[4];
      boolean whole = s[5] == 1;
      boolean tensorCores =
          n >= CudaKernels.TC_MIN_ROWS
              && (headDim == 64 || headDim == 128)
              && cx.computeCapability() >= 80;
      double tolerance = tensorCores ? 3e-3 : 1e-5;
      int kvDim = kvHeads * headDim;
      float scale = (float) (1 / Math.sqrt(headDim));
      float[] q = randoms(n * heads * headDim, 2);
      float[] keys = randoms(len * kvDim, 2);
      float[] values = randoms(len * kvDim, 1);
      CudaKvCache cache = cache(keys, values, len, kvDim);
      // row 0 an empty range, row 1 one from slot 0, row 2 one across the first page boundary,
      // the others random (whole: every row [0, len))
      int[] ranges = new int[2 * n];
      int longest = 0;
      for (int t = 0; t < n; t++) {
        int first = random.nextInt(len);
        int end = first + random.nextInt(len - first + 1);
        if (whole) {
          first = 0;
          end = len;
        } else if (t == 0) {
          first = end = len / 3;
        } else if (t == 1) {
          first = 0;
        } else if (t == 2) {
          first = page - 37;
          end = Math.min(len, page + 150);
        }
        ranges[2 * t] = first;
        ranges[2 * t + 1] = end;
        longest = Math.max(longest, end - first);
      }
      DeviceBuffer out = poisoned((long) n * heads * headDim);
      DeviceBuffer lse = poisoned((long) n * heads);
      k.attention(
          up(q).address(),
          cache.keyTable(0),
          cache.valueTable(0),
          page,
          cache.type(),
          out.address(),
          lse.address(),
          n,
          heads,
          kvHeads,
          headDim,
          scale,
          0,
          up(ranges).address(),
          0L,
          longest,
          0,
          false,
          null);
      double[] refOut = new double[n * heads * headDim];
      double[] refLse = new double[n * heads];
      for (int t = 0; t < n; t++) {
        int[] visible = new int[ranges[2 * t + 1] - ranges[2 * t]];
        int first = ranges[2 * t];
        Arrays.setAll(visible, i -> first + i);
        for (int h = 0; h < heads; h++) {
          int qOff = (t * heads + h) * headDim;
          int base = (h / (heads / kvHeads)) * headDim;
          refLse[t * heads + h] =
              reference(q, qOff, keys, values, base, kvDim, visible, headDim, scale, refOut, qOff);
        }
      }
      String what = "range attention " + Arrays.toString(s);
      assertClose(what, CudaTests.read(cx, out, refOut.length), refOut, tolerance);
      float[] gotLse = CudaTests.read(cx, lse, refLse.length);
      double lseScale = 1;
      for (double r : refLse) {
        if (r != Double.NEGATIVE_INFINITY) {
          lseScale = Math.max(lseScale, Math.abs(r));
        }
      }
      double lseTolerance = tensorCores ? tolerance * lseScale : 1e-4;
      for (int i = 0; i < refLse.length; i++) {
        if (refLse[i] == Double.NEGATIVE_INFINITY) {
          assertThat(gotLse[i])
              .as("%s lse of an empty range", what)
              .isEqualTo(Float.NEGATIVE_INFINITY);
        } else {
          assertThat((double) gotLse[i])
              .as("%s lse[%d]", what, i)
              .isCloseTo(refLse[i], org.assertj.core.data.Offset.offset(lseTolerance));
        }
      }
      if (!whole) {
        assertThat(refLse[0]).isEqualTo(Double.NEGATIVE_INFINITY);
      }
    }
  }

  @Test
  void indexerScoresAreReluWeighted() {
    // (heads, headDim, len): the tiled kernel (headDim % 4 == 0, ≤ 128; DSA's 64 × 128 indexer
    // too) and the per-key kernel (headDim 18, 160)
    int[][] shapes = {
      {4, 32, 1},
      {4, 32, 300},
      {4, 32, 2049},
      {64, 128, 1000},
      {3, 18, 77},
      {2, 160, 65},
      {64, 128, 5000} // a cuBLAS GEMM and the head sum, when cuBLAS loads
    };
    int n = 2;
    for (int[] shape : shapes) {
      int heads = shape[0];
      int headDim = shape[1];
      int len = shape[2];
      float[] q = randoms(n * heads * headDim, 1);
      float[] w = randoms(n * heads, 1); // weights may be negative
      float[] keys = randoms(len * headDim, 1);
      float scale = (float) (1 / Math.sqrt(heads * headDim));
      double[] ref = new double[n * len];
      for (int t = 0; t < n; t++) {
        for (int s = 0; s < len; s++) {
          double sum = 0;
          for (int j = 0; j < heads; j++) {
            double u = 0;
            for (int d = 0; d < headDim; d++) {
              u += (double) q[(t * heads + j) * headDim + d] * keys[s * headDim + d];
            }
            sum += w[t * heads + j] * Math.max(u, 0);
          }
          ref[t * len + s] = sum * scale;
        }
      }
      DeviceBuffer scores = poisoned((long) n * len);
      k.indexerScores(
          up(q).address(),
          up(w).address(),
          up(keys).address(),
          len,
          n,
          heads,
          headDim,
          scale,
          scores.address());
      assertClose(
          "indexer " + Arrays.toString(shape), CudaTests.read(cx, scores, n * len), ref, 1e-5);
    }
  }

  /**
   * Top-k inputs: coarse values force ties (broken by position); some −∞ and, with {@code nans},
   * NaN entries, never selected.
   */
  private float[] tiedScores(int count, boolean nans) {
    float[] scores = new float[count];
    for (int i = 0; i < count; i++) {
      scores[i] = (float) Math.floor(random.nextDouble() * 50 - 10);
      if (i % 97 == 3) {
        scores[i] = Float.NEGATIVE_INFINITY;
      } else if (nans && i % 89 == 5) {
        scores[i] = Float.NaN;
      }
    }
    return scores;
  }

  @Test
  void topkMatchesTheDeterministicOrder() {
    // the last two are split over several blocks, then merged
    int[][] shapes = {{5, 3}, {1000, 64}, {100, 4096}, {20000, 2048}, {300000, 100}};
    for (int[] s : shapes) {
      int n = s[0];
      int kk = s[1];
      int rows = 2;
      float[] scores = tiedScores(rows * n, true);
      DeviceBuffer pos = keep(cx.alloc((long) rows * kk * 4));
      cx.fill(pos, 0x7fffffff);
      DeviceBuffer sc = poisoned((long) rows * kk);
      k.topk(up(scores).address(), rows, n, kk, pos.address(), sc.address());
      int[] gotPos = new int[rows * kk];
      cx.read(pos, 0, gotPos, gotPos.length);
      float[] gotScores = CudaTests.read(cx, sc, rows * kk);
      for (int r = 0; r < rows; r++) {
        float[] row = Arrays.copyOfRange(scores, r * n, (r + 1) * n);
        for (int i = 0; i < n; i++) {
          if (Float.isNaN(row[i])) {
            row[i] = Float.NEGATIVE_INFINITY; // TopK.select's contract: NaN mapped by the caller
          }
        }
        TopK.Candidates cpu = TopK.select(row, null, n, kk);
        assertThat(Arrays.copyOfRange(gotPos, r * kk, (r + 1) * kk))
            .as("top-%d of %d, row %d", kk, n, r)
            .isEqualTo(cpu.padded(kk));
        for (int i = 0; i < cpu.size(); i++) {
          assertThat(gotScores[r * kk + i]).isEqualTo(cpu.scores()[i]);
        }
      }
    }
  }

  @Test
  void cublasGemmMatchesTheCpuMatmul() {
    CudaBlas blas = cx.blas();
    org.junit.jupiter.api.Assumptions.assumeTrue(blas != null, "libcublas not loadable; skipping");
    int rows = 96;
    int cols = 256;
    int n = 33;
    float[] x = randoms(n * cols, 1);
    for (GgmlType type :
        new GgmlType[] {
          GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q6_K
        }) {
      FloatTensor w = Quantizer.quantize(type, randoms(rows * cols, 1), rows, cols);
      float[] cpu = new float[n * rows];
      w.matmul(x, cpu, n);
      double[] ref = new double[cpu.length];
      for (int i = 0; i < cpu.length; i++) {
        ref[i] = cpu[i];
      }
      DeviceTensor dw = keep(DeviceTensor.upload(cx, w, "w"));
      DeviceBuffer dx = up(x);
      DeviceBuffer y = poisoned((long) n * rows);
      DeviceBuffer half = keep(cx.alloc((long) n * cols * 2));
      DeviceBuffer wHalf = keep(cx.alloc((long) rows * cols * 2));
      long weights = dw.address();
      CudaBlas.Precision p;
      if (type == GgmlType.F32) {
        p = CudaBlas.Precision.FP32;
        blas.gemm(p, weights, dx.address(), y.address(), rows, cols, n);
      } else {
        boolean fp16 = type != GgmlType.BF16;
        p = fp16 ? CudaBlas.Precision.FP16 : CudaBlas.Precision.BF16;
        if (type != GgmlType.F16 && type != GgmlType.BF16) {
          k.dequantizeToHalf(dw, wHalf.address(), true);
          weights = wHalf.address();
        }
        k.toHalf(dx.address(), half.address(), (long) n * cols, fp16);
        blas.gemm(p, weights, half.address(), y.address(), rows, cols, n);
      }
      // FP16 rounds activations to 11 bits, BF16 to 8: tolerance by precision.
      double tol =
          switch (p) {
            case FP32 -> 1e-5;
            case FP16 -> 2e-3;
            case BF16 -> 2e-2;
          };
      assertClose("gemm " + type, CudaTests.read(cx, y, cpu.length), ref, tol);
    }
  }

  // ---- the selection kernels (CudaSelector) ----

  private int[] readInts(DeviceBuffer b, int n) {
    int[] out = new int[n];
    cx.read(b, 0, out, n);
    return out;
  }

  /**
   * Block summaries folded chunk by chunk (chunks crossing block boundaries, with and without sums)
   * against float64 min/max/sum; INT8 keys and scales against the quantization formula.
   */
  @Test
  void blockSummariesAndInt8Keys() {
    int kvHeads = 2;
    int headDim = 40;
    int kvDim = kvHeads * headDim;
    int tokens = 75;
    int size = 16;
    float[] keys = randoms(tokens * kvDim, 2);
    int blocks = (tokens + size - 1) / size;
    DeviceBuffer min = poisoned((long) blocks * kvDim);
    DeviceBuffer max = poisoned((long) blocks * kvDim);
    DeviceBuffer sum = poisoned((long) blocks * kvDim);
    DeviceBuffer boundsOnlyMin = poisoned((long) blocks * kvDim);
    DeviceBuffer boundsOnlyMax = poisoned((long) blocks * kvDim);
    DeviceBuffer values = keep(cx.alloc((long) tokens * kvDim));
    DeviceBuffer scales = poisoned((long) tokens * kvHeads);
    DeviceBuffer dk = up(keys);
    for (int[] chunk : new int[][] {{0, 20}, {20, 1}, {21, 40}, {61, 14}}) {
      long src = dk.address() + (long) chunk[0] * kvDim * Float.BYTES;
      k.blockSummaryPut(
          min.address(), max.address(), sum.address(), src, chunk[0], chunk[1], size, kvDim);
      k.blockSummaryPut(
          boundsOnlyMin.address(),
          boundsOnlyMax.address(),
          0L,
          src,
          chunk[0],
          chunk[1],
          size,
          kvDim);
      k.quantizeKeys(src, chunk[1], chunk[0], kvHeads, headDim, values.address(), scales.address());
    }
    double[] refMin = new double[blocks * kvDim];
    double[] refMax = new double[blocks * kvDim];
    double[] refSum = new double[blocks * kvDim];
    Arrays.fill(refMin, Double.MAX_VALUE);
    Arrays.fill(refMax, -Double.MAX_VALUE);
    for (int p = 0; p < tokens; p++) {
      for (int i = 0; i < kvDim; i++) {
        int at = (p / size) * kvDim + i;
        double v = keys[p * kvDim + i];
        refMin[at] = Math.min(refMin[at], v);
        refMax[at] = Math.max(refMax[at], v);
        refSum[at] += v;
      }
    }
    int n = blocks * kvDim;
    assertClose("block min", CudaTests.read(cx, min, n), refMin, 0);
    assertClose("block max", CudaTests.read(cx, max, n), refMax, 0);
    assertClose("block sum", CudaTests.read(cx, sum, n), refSum, 1e-6);
    assertClose("bounds-only min", CudaTests.read(cx, boundsOnlyMin, n), refMin, 0);
    assertClose("bounds-only max", CudaTests.read(cx, boundsOnlyMax, n), refMax, 0);
    int[] words = readInts(values, tokens * kvDim / 4); // little-endian bytes, 4 a word
    byte[] gotValues = new byte[tokens * kvDim];
    for (int i = 0; i < gotValues.length; i++) {
      gotValues[i] = (byte) (words[i / 4] >> (8 * (i % 4)));
    }
    float[] gotScales = CudaTests.read(cx, scales, tokens * kvHeads);
    for (int row = 0; row < tokens * kvHeads; row++) {
      float amax = 0;
      for (int d = 0; d < headDim; d++) {
        amax = Math.max(amax, Math.abs(keys[row * headDim + d]));
      }
      float sigma = amax / 127f;
      assertThat(gotScales[row]).as("scale of row %d", row).isEqualTo(sigma);
      for (int d = 0; d < headDim; d++) {
        double exact = keys[row * headDim + d] / (double) sigma;
        assertThat((double) gotValues[row * headDim + d])
            .as("INT8 key %d of row %d", d, row)
            .isCloseTo(exact, org.assertj.core.data.Offset.offset(0.5 + 1e-4));
      }
    }
  }

  /**
   * Block scores per (query row, KV head) summed over the GQA group (Quest bound and MoBA mean), −∞
   * from each row's current block on; own-heads stage-1 page bounds with SelfExtend's grouped/plain
   * split and their softmax; all against float64.
   */
  @Test
  void blockScoresAndPageProbabilities() {
    int heads = 8;
    int kvHeads = 2;
    int headDim = 24;
    int kvDim = kvHeads * headDim;
    int group = heads / kvHeads;
    int size = 16;
    int start = 70;
    int n = 3; // rows at positions 70..72: 4 complete blocks
    int length = (start + n - 1) / size;
    float[] q = randoms(n * heads * headDim, 1);
    float[] qg = randoms(n * heads * headDim, 1);
    float[] mn = randoms(length * kvDim, 1);
    float[] mx = new float[mn.length];
    float[] gmn = randoms(length * kvDim, 1);
    float[] gmx = new float[gmn.length];
    float[] sum = randoms(length * kvDim, 4);
    for (int i = 0; i < mn.length; i++) {
      mx[i] = mn[i] + (float) random.nextDouble() * 2;
      gmx[i] = gmn[i] + (float) random.nextDouble() * 2;
    }
    for (boolean quest : new boolean[] {true, false}) {
      DeviceBuffer scores = poisoned((long) n * kvHeads * length);
      k.blockScores(
          up(q).address(),
          up(mn).address(),
          up(mx).address(),
          up(sum).address(),
          start,
          n,
          heads,
          kvHeads,
          headDim,
          size,
          quest,
          length,
          scores.address());
      double[] ref = new double[n * kvHeads * length];
      for (int t = 0; t < n; t++) {
        for (int g = 0; g < kvHeads; g++) {
          for (int b = 0; b < length; b++) {
            double acc = 0;
            for (int h = g * group; h < (g + 1) * group; h++) {
              for (int d = 0; d < headDim; d++) {
                double qd = q[(t * heads + h) * headDim + d];
                int at = b * kvDim + g * headDim + d;
                acc += quest ? Math.max(qd * mn[at], qd * mx[at]) : qd * sum[at] / size;
              }
            }
            ref[(t * kvHeads + g) * length + b] =
                b < (start + t) / size ? acc : Double.NEGATIVE_INFINITY;
          }
        }
      }
      float[] got = CudaTests.read(cx, scores, ref.length);
      for (int i = 0; i < ref.length; i++) {
        if (ref[i] == Double.NEGATIVE_INFINITY) {
          assertThat(got[i])
              .as("block score %d past the current block", i)
              .isEqualTo(Float.NEGATIVE_INFINITY);
          ref[i] = got[i] = 0;
        }
      }
      assertClose(quest ? "quest scores" : "mean scores", got, ref, 1e-5);
    }
    // stage 1 with an exact SelfExtend window of 40: row 70's neighbors start at 31 (page 1
    // straddles it: the larger bound), pages before are grouped, after plain
    int window = 40;
    float scale = 0.2f;
    DeviceBuffer probs = poisoned((long) n * heads * length);
    k.pageProbs(
        up(q).address(),
        up(qg).address(),
        up(mn).address(),
        up(mx).address(),
        up(gmn).address(),
        up(gmx).address(),
        start,
        n,
        heads,
        kvHeads,
        headDim,
        size,
        window,
        false,
        scale,
        length,
        probs.address());
    double[] ref = new double[n * heads * length];
    for (int t = 0; t < n; t++) {
      int i = start + t;
      int ns = Math.max(0, i - window + 1);
      for (int h = 0; h < heads; h++) {
        int g = h / group;
        double[] v = new double[length];
        double m = Double.NEGATIVE_INFINITY;
        for (int b = 0; b < i / size; b++) {
          double plain = Double.NEGATIVE_INFINITY;
          double grouped = Double.NEGATIVE_INFINITY;
          if (b >= ns / size) {
            plain =
                scale
                    * quest(q, (t * heads + h) * headDim, mn, mx, b * kvDim + g * headDim, headDim);
          }
          if (b < (ns + size - 1) / size) {
            grouped =
                scale
                    * quest(
                        qg, (t * heads + h) * headDim, gmn, gmx, b * kvDim + g * headDim, headDim);
          }
          v[b] = Math.max(plain, grouped);
          m = Math.max(m, v[b]);
        }
        double total = 0;
        for (int b = 0; b < i / size; b++) {
          total += Math.exp(v[b] - m);
        }
        for (int b = 0; b < length; b++) {
          ref[(t * heads + h) * length + b] = b < i / size ? Math.exp(v[b] - m) / total : 0;
        }
      }
    }
    assertClose("page probabilities", CudaTests.read(cx, probs, ref.length), ref, 1e-5);
  }

  private static double quest(float[] q, int qo, float[] lo, float[] hi, int at, int headDim) {
    double acc = 0;
    for (int d = 0; d < headDim; d++) {
      acc += Math.max((double) q[qo + d] * lo[at + d], (double) q[qo + d] * hi[at + d]);
    }
    return acc;
  }

  /**
   * Row softmax with −∞ entries (and an all −∞ row: zeros), LayerNorm with and without β, the
   * causal mask of indexer scores, and kv_gather reading rows back from a paged cache.
   */
  @Test
  void softmaxLayerNormMaskAndGather() {
    int n = 300;
    float[] x = randoms(3 * n, 6);
    for (int i = 0; i < n; i += 7) {
      x[i] = Float.NEGATIVE_INFINITY;
    }
    Arrays.fill(x, 2 * n, 3 * n, Float.NEGATIVE_INFINITY);
    DeviceBuffer dx = up(x);
    k.softmaxRowsDouble(dx.address(), 3, n);
    double[] ref = new double[3 * n];
    for (int r = 0; r < 2; r++) {
      double m = Double.NEGATIVE_INFINITY;
      for (int i = 0; i < n; i++) {
        m = Math.max(m, x[r * n + i]);
      }
      double total = 0;
      for (int i = 0; i < n; i++) {
        total += Math.exp(x[r * n + i] - m);
      }
      for (int i = 0; i < n; i++) {
        ref[r * n + i] = Math.exp(x[r * n + i] - m) / total;
      }
    }
    assertClose("softmax", CudaTests.read(cx, dx, 3 * n), ref, 1e-6);

    int rows = 4;
    int dim = 72;
    float[] y = randoms(rows * dim, 3);
    float[] gamma = randoms(dim, 1);
    float[] beta = randoms(dim, 1);
    for (boolean withBeta : new boolean[] {true, false}) {
      DeviceBuffer dy = up(y);
      k.layerNorm(dy.address(), rows, dim, up(gamma).address(), withBeta ? up(beta).address() : 0L);
      double[] lnRef = new double[rows * dim];
      for (int t = 0; t < rows; t++) {
        double mean = 0;
        for (int i = 0; i < dim; i++) {
          mean += y[t * dim + i];
        }
        mean /= dim;
        double var = 0;
        for (int i = 0; i < dim; i++) {
          var += (y[t * dim + i] - mean) * (y[t * dim + i] - mean);
        }
        double inv = 1 / Math.sqrt(var / dim + 1e-6);
        for (int i = 0; i < dim; i++) {
          lnRef[t * dim + i] = (y[t * dim + i] - mean) * inv * gamma[i] + (withBeta ? beta[i] : 0);
        }
      }
      assertClose("layernorm", CudaTests.read(cx, dy, rows * dim), lnRef, 1e-6);
    }

    int len = 50;
    int start = 40;
    float[] scores = randoms(rows * len, 1);
    DeviceBuffer ds = up(scores);
    k.maskFuture(ds.address(), rows, len, start);
    float[] masked = CudaTests.read(cx, ds, rows * len);
    for (int t = 0; t < rows; t++) {
      for (int s2 = 0; s2 < len; s2++) {
        float want = s2 > start + t ? Float.NEGATIVE_INFINITY : scores[t * len + s2];
        assertThat(masked[t * len + s2]).as("score %d of row %d", s2, t).isEqualTo(want);
      }
    }

    int kvDim = 24;
    int tokens = 600; // three 256-token pages
    int page = CudaKvCache.PAGE_TOKENS;
    for (KvCacheType type : KvCacheType.values()) {
      try (CudaKvCache cache = new CudaKvCache(cx, 1, kvDim, tokens, type)) {
        cache.reserve(tokens);
        float[] kv = randoms(tokens * kvDim, 1);
        kv[250 * kvDim] = 70_000f; // beyond half's range: stored as +∞
        k.kvStore(cache.keyTable(0), page, type, up(kv).address(), 0, tokens, kvDim);
        DeviceBuffer back = poisoned(300L * kvDim);
        k.kvGather(cache.keyTable(0), page, type, back.address(), 200, 300, kvDim);
        if (type == KvCacheType.F16) {
          roundToHalf(kv); // round to nearest even, as the store does
          assertThat(kv[250 * kvDim]).isEqualTo(Float.POSITIVE_INFINITY);
        }
        assertThat(CudaTests.read(cx, back, 300 * kvDim))
            .as("%s rows read back", type)
            .isEqualTo(Arrays.copyOfRange(kv, 200 * kvDim, 500 * kvDim));
      }
    }
  }

  /**
   * The top-k over candidates that stand for other positions (stage 2 of the own-heads selector):
   * ranked by those positions, −1 entries (scored −∞) never selected, as TopK.select with its
   * positions argument.
   */
  @Test
  void topkOverGivenPositions() {
    int rows = 3;
    int n = 500;
    int kk = 37;
    float[] scores = new float[rows * n];
    int[] positions = new int[rows * n];
    for (int i = 0; i < scores.length; i++) {
      positions[i] = random.nextInt(100_000);
      scores[i] = (float) Math.floor(random.nextDouble() * 30); // ties, broken by position
      if (i % 11 == 0) {
        positions[i] = -1;
        scores[i] = Float.NEGATIVE_INFINITY;
      }
    }
    DeviceBuffer pos = keep(cx.alloc((long) rows * kk * 4));
    DeviceBuffer sc = poisoned((long) rows * kk);
    k.topk(
        up(scores).address(),
        rows,
        n,
        kk,
        pos.address(),
        sc.address(),
        up(positions).address(),
        true);
    int[] got = readInts(pos, rows * kk);
    for (int r = 0; r < rows; r++) {
      TopK.Candidates cpu =
          TopK.select(
              Arrays.copyOfRange(scores, r * n, (r + 1) * n),
              Arrays.copyOfRange(positions, r * n, (r + 1) * n),
              n,
              kk);
      assertThat(Arrays.copyOfRange(got, r * kk, (r + 1) * kk))
          .as("row %d", r)
          .isEqualTo(cpu.padded(kk));
    }
  }

  /**
   * The unsorted top-k (what the selection's attention lists use): the same set as TopK.select, in
   * ascending position order, −1 / −∞ padded; one block per row and the two-launch path for long
   * rows; with given positions too (their set, row order).
   */
  @Test
  void unsortedTopkIsTheSameSetInRowOrder() {
    int[][] shapes = {{5, 3}, {1000, 64}, {4128, 2048}, {100, 4096}, {300000, 100}};
    for (int[] shape : shapes) {
      int n = shape[0];
      int kk = shape[1];
      int rows = 2;
      float[] scores = tiedScores(rows * n, false);
      DeviceBuffer pos = keep(cx.alloc((long) rows * kk * 4));
      cx.fill(pos, 0x7fffffff);
      DeviceBuffer sc = poisoned((long) rows * kk);
      k.topk(up(scores).address(), rows, n, kk, pos.address(), sc.address(), 0L, false);
      int[] got = readInts(pos, rows * kk);
      float[] gotScores = CudaTests.read(cx, sc, rows * kk);
      for (int r = 0; r < rows; r++) {
        TopK.Candidates cpu =
            TopK.select(Arrays.copyOfRange(scores, r * n, (r + 1) * n), null, n, kk);
        int[] want = Arrays.copyOf(cpu.positions(), cpu.size());
        Arrays.sort(want);
        int[] padded = Arrays.copyOf(want, kk);
        Arrays.fill(padded, want.length, kk, -1);
        assertThat(Arrays.copyOfRange(got, r * kk, (r + 1) * kk))
            .as("unsorted top-%d of %d, row %d", kk, n, r)
            .isEqualTo(padded);
        for (int i = 0; i < kk; i++) {
          int p = got[r * kk + i];
          float expected = p < 0 ? Float.NEGATIVE_INFINITY : scores[r * n + p];
          assertThat(gotScores[r * kk + i]).isEqualTo(expected);
        }
      }
    }
    // candidates standing for other positions (stage 2 of the own-heads selector)
    int n = 700;
    int kk = 50;
    float[] scores = new float[n];
    int[] positions = new int[n];
    for (int i = 0; i < n; i++) {
      positions[i] = 3 * i + random.nextInt(3);
      scores[i] = (float) Math.floor(random.nextDouble() * 20);
    }
    DeviceBuffer pos = keep(cx.alloc((long) kk * 4));
    DeviceBuffer sc = poisoned(kk);
    k.topk(
        up(scores).address(),
        1,
        n,
        kk,
        pos.address(),
        sc.address(),
        up(positions).address(),
        false);
    int[] got = readInts(pos, kk);
    int[] want = Arrays.copyOf(TopK.select(scores, positions, n, kk).positions(), kk);
    Arrays.sort(want);
    Arrays.sort(got);
    assertThat(got).isEqualTo(want);
  }
}
