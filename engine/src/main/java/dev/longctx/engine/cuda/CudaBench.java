package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * GPU benchmark tables for docs/PERFORMANCE.md (run by docs/tools/gpu-check.sh on a device
 * machine): device copy bandwidth; decode and prefill tokens/s of a synthetic Llama-3.1-8B shape in
 * F16 and Q8_0 against the bandwidth bound; dense attention TFLOP/s at 8K–128K context; the
 * per-token decode attention cost against context, dense vs indexer top-k (k = 2048); whole-model
 * decode per token against context under dense, indexer top-k and block top-k attention. Wall-clock
 * timings around synchronized steps; each figure is the best of a few repetitions.
 *
 * <p>Usage: {@code java -cp <engine jar + bytedeco jars> dev.longctx.engine.cuda.CudaBench [--quick
 * | --tiny]} ({@code --quick}: a 2-layer model and contexts up to 32K, for a first run on a device;
 * {@code --tiny}: toy shapes, to exercise the program under the CPU emulation of
 * docs/tools/cuda-emulate).
 */
public final class CudaBench {

  private static final int REPS = 3;

  private CudaBench() {}

  /**
   * The attention benchmark's shape: GQA heads, indexer, top-k, the rows of the two prefill columns
   * (a chunk's and a long prompt's; PyTorch SDPA's table has 128 and 2048), contexts.
   */
  record AttentionShape(
      int heads,
      int kvHeads,
      int headDim,
      int indexerHeads,
      int indexerDim,
      int topK,
      int prefillRows,
      int longPrefillRows,
      int[] contexts) {}

  public static void main(String[] args) {
    String mode = args.length > 0 ? args[0] : "";
    boolean quick = mode.equals("--quick");
    boolean tiny = mode.equals("--tiny");
    try (CudaContext cx = CudaContext.open()) {
      System.out.printf(
          "device: %s (sm_%d), kernels: %s, cuBLAS: %s%n%n",
          cx.deviceName(), cx.computeCapability(), cx.kernelSource(), cx.blasStatus());
      double copyGbs = copyBandwidth(cx, tiny ? 1L << 26 : 1L << 30);
      System.out.printf(
          "| copy bandwidth (device to device, read + write) | %.1f GB/s |%n%n", copyGbs);
      section("matvec table", () -> matvecTable(cx, tiny, copyGbs));
      section(
          "model table",
          () -> {
            System.out.println(
                "| model | type | weights | test | t/s | GB/s | % of copy bandwidth |");
            System.out.println("| --- | --- | ---: | --- | ---: | ---: | ---: |");
            List<Profiled> profiles = new ArrayList<>();
            // F16, Q8_0, and llama.cpp's Q4_K_M mix (the toy shape's rows are too short for
            // 256-element super-blocks: a toy shape of its own)
            for (MatrixTypes types :
                List.of(
                    MatrixTypes.of(GgmlType.F16),
                    MatrixTypes.of(GgmlType.Q8_0),
                    MatrixTypes.Q4_K_M)) {
              boolean kquants = types.base().blockSize() == 256;
              LlamaConfig c =
                  tiny ? (kquants ? tinyKQuantShape() : tinyShape()) : llama8b(quick ? 2 : 32);
              profiles.addAll(
                  decodeAndPrefill(cx, c, types, tiny ? 16 : 512, tiny ? 4 : 64, copyGbs));
            }
            System.out.println();
            for (Profiled p : profiles) {
              printProfile(p);
            }
          });
      int[] contexts =
          tiny
              ? new int[] {300, 600}
              : quick ? new int[] {8192, 32768} : new int[] {8192, 16384, 32768, 65536, 131072};
      section(
          "attention table",
          () ->
              attention(
                  cx,
                  tiny
                      // d = 64: the tensor-core kernels' smallest head
                      ? new AttentionShape(4, 2, 64, 4, 32, 64, 8, 256, contexts)
                      : new AttentionShape(32, 8, 128, 64, 128, 2048, 128, 2048, contexts)));
      System.out.println();
      section(
          "decode against context",
          () ->
              decodeVersusContext(
                  cx,
                  tiny ? tinyShape() : llama8b(quick ? 2 : 8),
                  tiny ? 64 : 2048,
                  contexts,
                  tiny ? 2 : 16));
    }
  }

  /**
   * Runs one table; a failure is printed and the next table runs (on a device a launch error that
   * does not poison the context, e.g. a kernel's resources, leaves the rest measurable).
   */
  private static void section(String name, Runnable table) {
    try {
      table.run();
    } catch (RuntimeException e) {
      System.out.println();
      System.out.printf("%s failed: %s%n%n", name, e);
      e.printStackTrace(System.out);
    }
  }

  /**
   * One measurement of a path behind a switch that is off by default (two-heads or pipelined
   * prefill, CUDA graphs): NaN, with the failure on stderr, if it fails, so the table goes on.
   */
  private static double optional(String what, java.util.function.DoubleSupplier measure) {
    try {
      return measure.getAsDouble();
    } catch (RuntimeException e) {
      System.err.printf("%s failed: %s%n", what, e);
      return Double.NaN;
    }
  }

  /**
   * Whole-model decode per token after a context of each depth (a real 512-token prefill replicated
   * on the device, {@link CudaModel#extendSynthetic}), dense attention against the top-k policies
   * selecting {@code topK} keys on the device: own-heads indexer top-k, block top-k of 64-token
   * blocks; then dense and indexer top-k over a half-precision KV cache. F16 weights; the weights'
   * share is the same in every column.
   */
  private static void decodeVersusContext(
      CudaContext cx, LlamaConfig c, int topK, int[] contexts, int steps) {
    int block = Math.min(64, topK / 4);
    AttentionPolicy[] policies = {
      AttentionPolicy.dense(),
      new AttentionPolicy.IndexerTopK(topK),
      new AttentionPolicy.BlockTopK(block, topK / block)
    };
    System.out.printf(
        "decode per token against context, %s with %d layers, F16, selection on the device%n",
        c.dim() == 4096 ? "Llama-3.1-8B shape" : "toy shape", c.layers());
    System.out.printf(
        "| context | dense ms/token | indexer top-k (own heads, k = %d) ms/token | block top-k"
            + " (%d × %d) ms/token | dense, F16 KV ms/token | indexer top-k, F16 KV ms/token |%n",
        topK, topK / block, block);
    System.out.println("| ---: | ---: | ---: | ---: | ---: | ---: |");
    LlamaWeights w = syntheticWeights(c, MatrixTypes.of(GgmlType.F16), 7);
    SplittableRandom random = new SplittableRandom(5);
    int resident = Math.min(512, contexts[0]);
    int deepest = contexts[contexts.length - 1];
    List<Profiled> profiles = new ArrayList<>();
    try (CudaModel model = new CudaModel(cx, c, w)) {
      for (int ctx : contexts) {
        // the policies over an F32 cache, then dense and indexer top-k over an F16 one
        double[] ms = new double[policies.length + 2];
        for (int p = 0; p < ms.length; p++) {
          model.setKvCacheType(p < policies.length ? KvCacheType.F32 : KvCacheType.F16);
          AttentionPolicy policy = policies[p < policies.length ? p : p - policies.length];
          try (CudaSequence seq = model.newSequence(ctx + 2 * steps, policy)) {
            model.prefill(seq, random.ints(resident, 0, c.vocabSize()).toArray());
            model.extendSynthetic(seq, ctx);
            cx.synchronize();
            model.decode(seq, 1); // warm-up (scratch growth)
            long t0 = System.nanoTime();
            for (int i = 1; i < steps; i++) {
              model.decode(seq, random.nextInt(c.vocabSize()));
            }
            ms[p] = (System.nanoTime() - t0) / 1e6 / (steps - 1);
            if (ctx == deepest && p < policies.length) {
              // the deepest context's steps by kernel: selection against attention
              profiles.add(
                  new Profiled(
                      policy.name() + ", decode at " + ctx,
                      "token",
                      cx.profile(
                          steps - 1, () -> model.decode(seq, random.nextInt(c.vocabSize())))));
            }
          }
        }
        System.out.printf(
            "| %d | %.2f | %.2f | %.2f | %.2f | %.2f |%n", ctx, ms[0], ms[1], ms[2], ms[3], ms[4]);
      }
    }
    System.out.println();
    for (Profiled p : profiles) {
      printProfile(p);
    }
  }

  private static double copyBandwidth(CudaContext cx, long bytes) {
    try (DeviceBuffer a = cx.alloc(bytes);
        DeviceBuffer b = cx.alloc(bytes)) {
      cx.copy(b, a, bytes);
      double best = Double.MAX_VALUE;
      for (int r = 0; r < 5; r++) {
        cx.synchronize();
        long t0 = System.nanoTime();
        cx.copy(b, a, bytes);
        cx.synchronize();
        best = Math.min(best, (System.nanoTime() - t0) / 1e9);
      }
      return 2.0 * bytes / best / 1e9;
    }
  }

  /**
   * The decode kernel alone: one matrix-vector product per weight type and shape, GB/s of the GGUF
   * bytes. Q8_0 and Q4_0 run in the split layout the model uploads (matvec_split) and, for
   * comparison, in the GGUF layout ("gguf": matvec's blocks) and over int8 activations (the
   * quantization launch and matvec_split_q8x, timed together); Q4_K and Q6_K (a Q4_K_M file's
   * types) through matvec_kquant (Q6_K in its split layout), over int8 activations
   * (matvec_kquant_q8x) and, for comparison, through matvec's byte-per-lane path over their GGUF
   * super-blocks ("gguf").
   */
  private static void matvecTable(CudaContext cx, boolean tiny, double copyGbs) {
    int[][] shapes =
        tiny ? new int[][] {{256, 256}} : new int[][] {{14336, 4096}, {4096, 14336}, {6144, 4096}};
    System.out.println("| matvec | type | µs | GB/s | % of copy bandwidth |");
    System.out.println("| --- | --- | ---: | ---: | ---: |");
    SplittableRandom random = new SplittableRandom(11);
    try (CudaKernels k = new CudaKernels(cx)) {
      for (int[] shape : shapes) {
        for (MatvecRow row : MATVEC_ROWS) {
          GgmlType type = row.type();
          boolean gguf = row.gguf();
          boolean int8 = row.int8();
          k.setWideKQuants(!gguf);
          MemorySegment image =
              randomImage(
                  type == GgmlType.BF16 || type == GgmlType.Q4_0 ? GgmlType.F16 : type,
                  (long) shape[0] * shape[1],
                  random);
          if (type == GgmlType.Q4_0) {
            image = image.asSlice(0, type.byteSize((long) shape[0] * shape[1]));
          }
          FloatTensor t = FloatTensor.of(type, image, shape[0], shape[1]);
          float[] x = new float[shape[1]];
          for (int i = 0; i < x.length; i++) {
            x[i] = (float) (random.nextDouble() - 0.5);
          }
          DeviceTensor.Layout layout =
              gguf ? DeviceTensor.Layout.GGUF : DeviceTensor.defaultLayout(type, shape[1]);
          try (DeviceTensor w = DeviceTensor.upload(cx, t, "bench", layout);
              DeviceBuffer xd = cx.upload(x);
              DeviceBuffer quants = cx.alloc(shape[1] + (long) shape[1] / 32 * Float.BYTES);
              DeviceBuffer y = cx.alloc((long) shape[0] * Float.BYTES)) {
            int launches = 20;
            long xq = quants.address();
            long xs = xq + shape[1];
            double seconds =
                best(
                        cx,
                        () -> {
                          for (int i = 0; i < launches; i++) {
                            if (int8) {
                              k.quantizeRows(xd.address(), xq, xs, shape[1], 1);
                              k.matvecQuantized(w, xq, xs, y.address(), 1);
                            } else {
                              k.matvec(w, xd.address(), y.address(), 1);
                            }
                          }
                        })
                    / launches;
            double gbs = w.bytes() / seconds / 1e9;
            System.out.printf(
                "| %d × %d | %s | %.1f | %.0f | %.0f%% |%n",
                shape[0],
                shape[1],
                type + (gguf ? " gguf" : int8 ? " × int8 x (with its quantization)" : ""),
                seconds * 1e6,
                gbs,
                100 * gbs / copyGbs);
          }
        }
      }
    }
    System.out.println();
  }

  /**
   * A row of the matvec table: a weight type in its default layout, in the GGUF layout through
   * matvec ({@code gguf}; Q4_K: the byte-per-lane path), or over int8 activations ({@code int8}).
   */
  private record MatvecRow(GgmlType type, boolean gguf, boolean int8) {}

  private static final List<MatvecRow> MATVEC_ROWS =
      List.of(
          new MatvecRow(GgmlType.F16, false, false),
          new MatvecRow(GgmlType.BF16, false, false),
          new MatvecRow(GgmlType.Q8_0, false, false),
          new MatvecRow(GgmlType.Q4_0, false, false),
          new MatvecRow(GgmlType.Q8_0, true, false),
          new MatvecRow(GgmlType.Q4_0, true, false),
          new MatvecRow(GgmlType.Q8_0, false, true),
          new MatvecRow(GgmlType.Q4_0, false, true),
          new MatvecRow(GgmlType.Q4_K, false, false),
          new MatvecRow(GgmlType.Q6_K, false, false),
          new MatvecRow(GgmlType.Q4_K, true, false),
          new MatvecRow(GgmlType.Q6_K, true, false),
          new MatvecRow(GgmlType.Q4_K, false, true),
          new MatvecRow(GgmlType.Q6_K, false, true));

  /** A toy Llama shape whose rows are whole K-quant super-blocks (256 elements). */
  static LlamaConfig tinyKQuantShape() {
    return new LlamaConfig(
        "llama", 256, 512, 2, 4, 2, 64, 1000, 4096, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);
  }

  /** A toy Llama shape for a run under the CPU emulation. */
  static LlamaConfig tinyShape() {
    return new LlamaConfig(
        "llama", 128, 256, 2, 4, 2, 32, 1000, 4096, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);
  }

  /** Llama-3.1-8B's shape with {@code layers} blocks. */
  static LlamaConfig llama8b(int layers) {
    return new LlamaConfig(
        "llama",
        4096,
        14336,
        layers,
        32,
        8,
        128,
        128256,
        131072,
        1e-5f,
        500000f,
        Rope.Layout.INTERLEAVED,
        null);
  }

  /**
   * Host weights of random values in {@code type}: one random byte image per distinct shape,
   * wrapped in a distinct tensor per use so every layer gets its own device copy.
   */
  static LlamaWeights syntheticWeights(LlamaConfig c, MatrixTypes types, long seed) {
    Map<String, MemorySegment> images = new HashMap<>();
    SplittableRandom random = new SplittableRandom(seed);
    // a matrix by its GGUF name: its type from the mix; one random image per type and shape
    java.util.function.BiFunction<String, int[], FloatTensor> matrix =
        (name, shape) -> {
          GgmlType type = types.target(name, name.equals("output.weight"));
          String key = type + ":" + shape[0] + "x" + shape[1];
          MemorySegment image =
              images.computeIfAbsent(
                  key, k -> randomImage(type, (long) shape[0] * shape[1], random));
          return FloatTensor.of(type, image, shape[0], shape[1]);
        };
    float[] norm = new float[c.dim()];
    java.util.Arrays.fill(norm, 1f);
    List<LlamaWeights.Layer> layers = new ArrayList<>();
    for (int l = 0; l < c.layers(); l++) {
      String p = "blk." + l + ".";
      layers.add(
          new LlamaWeights.Layer(
              norm,
              matrix.apply(p + "attn_q.weight", new int[] {c.queryDim(), c.dim()}),
              matrix.apply(p + "attn_k.weight", new int[] {c.kvDim(), c.dim()}),
              matrix.apply(p + "attn_v.weight", new int[] {c.kvDim(), c.dim()}),
              matrix.apply(p + "attn_output.weight", new int[] {c.dim(), c.queryDim()}),
              null,
              null,
              null,
              norm,
              matrix.apply(p + "ffn_gate.weight", new int[] {c.hiddenDim(), c.dim()}),
              matrix.apply(p + "ffn_up.weight", new int[] {c.hiddenDim(), c.dim()}),
              matrix.apply(p + "ffn_down.weight", new int[] {c.dim(), c.hiddenDim()})));
    }
    return new LlamaWeights(
        matrix.apply("token_embd.weight", new int[] {c.vocabSize(), c.dim()}),
        layers,
        norm,
        matrix.apply("output.weight", new int[] {c.vocabSize(), c.dim()}),
        null);
  }

  /** Bytes of {@code count} random weights of {@code type}, values of magnitude ~0.02. */
  private static MemorySegment randomImage(GgmlType type, long count, SplittableRandom random) {
    long bytes = type.byteSize(count);
    MemorySegment image = MemorySegment.ofArray(new byte[Math.toIntExact(bytes)]);
    byte[] block = new byte[1 << 16];
    for (long off = 0; off < bytes; off += block.length) {
      random.nextBytes(block);
      MemorySegment.copy(
          MemorySegment.ofArray(block), 0, image, off, Math.min(block.length, bytes - off));
    }
    short small = Float.floatToFloat16(0.0002f);
    if (type == GgmlType.Q8_0) {
      for (long b = 0; b < bytes; b += 34) {
        image.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, b, small);
      }
    } else if (type == GgmlType.Q4_K || type == GgmlType.Q6_K) {
      // Finite FP16 super-block scales (d, dmin; Q6_K's d at byte 208); the rest random.
      long per = type.bytesPerBlock();
      for (long b = 0; b < bytes; b += per) {
        if (type == GgmlType.Q4_K) {
          image.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, b, small);
          image.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, b + 2, small);
        } else {
          image.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, b + 208, small);
        }
      }
    } else if (type == GgmlType.F16) {
      for (long i = 0; i < bytes; i += 2) {
        float v = (float) (random.nextDouble() * 0.04 - 0.02);
        image.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16(v));
      }
    } else {
      throw new IllegalArgumentException(
          "synthetic weights in F16, Q8_0, Q4_K or Q6_K, not " + type);
    }
    return image;
  }

  /** A profile of the model's steps ({@link CudaContext#profile}) and what one step is. */
  record Profiled(String title, String step, KernelProfile.Result result) {}

  /** Prints a profile's table ({@link KernelProfile.Result#table}) and a blank line. */
  static void printProfile(Profiled p) {
    System.out.println(p.result().table(p.title(), p.step()));
  }

  /**
   * The model table's rows of one weight type (prefill and decode tokens/s, direct launches and a
   * CUDA graph), and profiles of a prefill chunk and of decode steps by kernel.
   */
  private static List<Profiled> decodeAndPrefill(
      CudaContext cx, LlamaConfig c, MatrixTypes type, int prompt, int steps, double copyGbs) {
    LlamaWeights w = syntheticWeights(c, type, 7);
    try (CudaModel model = new CudaModel(cx, c, w)) {
      // A decode step reads every matrix once (the embedding row is negligible).
      long perToken = model.weightBytes() - w.tokenEmbedding().data().byteSize();
      SplittableRandom random = new SplittableRandom(1);
      double bestPrefill = 0;
      // Decode variants: direct launches; one CUDA graph a step; for quantized weights, int8
      // activations (direct launches). A variant behind a switch that fails shows NaN.
      String[] variants =
          type.base() == GgmlType.F16
              ? new String[] {"", ", CUDA graph"}
              : new String[] {"", ", CUDA graph", ", int8 activations"};
      double[] bestDecode = new double[variants.length];
      boolean[] failed = new boolean[variants.length];
      for (int r = 0; r < REPS; r++) {
        for (int v = 0; v < variants.length; v++) {
          if (failed[v]) {
            continue;
          }
          model.setDecodeGraphs(v == 1);
          model.setQuantizedActivations(v == 2);
          try (CudaSequence seq = model.newSequence(prompt + steps)) {
            int[] tokens = random.ints(prompt, 0, c.vocabSize()).toArray();
            long t0 = System.nanoTime();
            model.prefill(seq, tokens);
            if (v == 0) {
              bestPrefill = Math.max(bestPrefill, prompt / ((System.nanoTime() - t0) / 1e9));
            }
            t0 = System.nanoTime();
            for (int i = 0; i < steps; i++) {
              model.decode(seq, random.nextInt(c.vocabSize()));
            }
            double tps = steps / ((System.nanoTime() - t0) / 1e9);
            bestDecode[v] = Math.max(bestDecode[v], tps);
          } catch (RuntimeException e) {
            if (v == 0) {
              throw e;
            }
            System.err.printf("decode%s failed: %s%n", variants[v], e);
            failed[v] = true;
            bestDecode[v] = Double.NaN;
          }
        }
      }
      model.setDecodeGraphs(false);
      model.setQuantizedActivations(false);
      String name =
          (c.dim() == 4096 ? "llama-3.1-8b shape, " : "toy shape, ") + c.layers() + " layers";
      String gib = String.format("%.2f GiB", model.weightBytes() / (double) (1L << 30));
      System.out.printf(
          "| %s | %s | %s | pp%d | %.1f | | |%n", name, type, gib, prompt, bestPrefill);
      for (int v = 0; v < variants.length; v++) {
        double gbs = perToken * bestDecode[v] / 1e9;
        System.out.printf(
            "| %s | %s | %s | tg%d @ d%d%s | %.1f | %.0f | %.0f%% |%n",
            name, type, gib, steps, prompt, variants[v], bestDecode[v], gbs, 100 * gbs / copyGbs);
      }
      // The same steps by kernel: one prefill of the prompt, then decode steps at its depth
      // (for Q8_0 also over int8 activations).
      List<Profiled> profiles = new ArrayList<>();
      try (CudaSequence seq = model.newSequence(prompt)) {
        int[] tokens = random.ints(prompt, 0, c.vocabSize()).toArray();
        profiles.add(
            new Profiled(
                name + ", " + type + ", pp" + prompt,
                "prefill",
                cx.profile(1, () -> model.prefill(seq, tokens))));
      }
      for (int v = 0; v < variants.length; v += 2) { // direct launches, then int8 activations
        if (failed[v]) {
          continue;
        }
        model.setQuantizedActivations(v == 2);
        try (CudaSequence seq = model.newSequence(prompt + steps)) {
          model.prefill(seq, random.ints(prompt, 0, c.vocabSize()).toArray());
          profiles.add(
              new Profiled(
                  name + ", " + type + ", tg @ d" + prompt + variants[v],
                  "token",
                  cx.profile(steps, () -> model.decode(seq, random.nextInt(c.vocabSize())))));
        } finally {
          model.setQuantizedActivations(false);
        }
      }
      return profiles;
    }
  }

  /** Dense causal GQA and indexer top-k sparse attention timings. */
  private static void attention(CudaContext cx, AttentionShape shape) {
    try (CudaKernels k = new CudaKernels(cx)) {
      attention(cx, k, shape);
    }
  }

  private static void attention(CudaContext cx, CudaKernels k, AttentionShape shape) {
    int heads = shape.heads();
    int kvHeads = shape.kvHeads();
    int headDim = shape.headDim();
    int kvDim = kvHeads * headDim;
    int indexerHeads = shape.indexerHeads();
    int indexerDim = shape.indexerDim();
    int topK = shape.topK();
    int prefillRows = shape.prefillRows();
    int longRows = shape.longPrefillRows();
    int[] contexts = shape.contexts();
    SplittableRandom random = new SplittableRandom(3);
    int maxRows = Math.max(prefillRows, longRows);
    int chunk = 8192;
    float[] host = new float[chunk * kvDim];
    for (int i = 0; i < host.length; i++) {
      host[i] = (float) (random.nextDouble() * 2 - 1);
    }
    System.out.printf(
        "attention: %d query heads, %d KV heads, d = %d; indexer %d × %d%n",
        heads, kvHeads, headDim, indexerHeads, indexerDim);
    System.out.printf(
        "| context | dense decode µs/token | dense prefill TFLOP/s (%d queries) | dense prefill"
            + " TFLOP/s (%d queries) | sparse decode µs/token (indexer + top-k + attention, k ="
            + " %d) | of which indexer µs | of which top-k µs | shard partial TFLOP/s (%d"
            + " remote queries over every key) | dense prefill TFLOP/s (%d queries, 2 heads a"
            + " block) | F16 KV: dense decode µs/token | F16 KV: dense prefill TFLOP/s (%d"
            + " queries) | F16 KV: pipelined prefill TFLOP/s (%d queries) |%n",
        prefillRows, longRows, topK, longRows, longRows, longRows, longRows);
    System.out.println(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    // A GPU shard's partial for another shard's prefill chunk: every row sees the whole range.
    int[] wholeRange = new int[2 * maxRows];
    try (DeviceBuffer src = cx.upload(host);
        DeviceBuffer q = cx.upload(java.util.Arrays.copyOf(host, maxRows * heads * headDim));
        DeviceBuffer out = cx.alloc((long) maxRows * heads * headDim * 4);
        DeviceBuffer lse = cx.alloc((long) maxRows * heads * 4);
        DeviceBuffer iq = cx.upload(java.util.Arrays.copyOf(host, indexerHeads * indexerDim));
        DeviceBuffer iw = cx.upload(java.util.Arrays.copyOf(host, indexerHeads));
        DeviceBuffer sel = cx.alloc((long) topK * 4);
        DeviceBuffer selScores = cx.alloc((long) topK * 4)) {
      for (int ctx : contexts) {
        try (CudaKvCache cache = filledCache(cx, k, kvDim, ctx, KvCacheType.F32, src, chunk);
            DeviceBuffer indexKeys = cx.alloc((long) ctx * indexerDim * 4);
            DeviceBuffer scores = cx.alloc((long) ctx * 4)) {
          for (long off = 0; off < (long) ctx * indexerDim; off += host.length) {
            int n = (int) Math.min(host.length, (long) ctx * indexerDim - off);
            cx.write(indexKeys, off, host, n);
          }
          double dense = denseSeconds(cx, k, shape, cache, q, out, lse, ctx, 1);
          double tflops = prefillTflops(cx, k, shape, cache, q, out, lse, ctx, prefillRows);
          double tflopsLong =
              ctx >= longRows
                  ? prefillTflops(cx, k, shape, cache, q, out, lse, ctx, longRows)
                  : Double.NaN;
          // the tensor-core kernel staging each K/V tile once for two heads of a GQA group
          k.setTensorCoreHeadsPerBlock(2);
          double tflopsPaired =
              ctx >= longRows
                  ? optional(
                      "two heads a block",
                      () -> prefillTflops(cx, k, shape, cache, q, out, lse, ctx, longRows))
                  : Double.NaN;
          k.setTensorCoreHeadsPerBlock(1);
          Runnable indexerStep =
              () ->
                  k.indexerScores(
                      iq.address(),
                      iw.address(),
                      indexKeys.address(),
                      ctx,
                      1,
                      indexerHeads,
                      indexerDim,
                      1f,
                      scores.address());
          Runnable topkStep =
              () ->
                  k.topk(
                      scores.address(),
                      1,
                      ctx,
                      topK,
                      sel.address(),
                      selScores.address(),
                      0L,
                      false); // an attention list needs the set, not its order
          double sparse =
              best(
                  cx,
                  () -> {
                    indexerStep.run();
                    topkStep.run();
                    attend(k, shape, cache, q, out, lse, 1, 0, 0L, sel.address(), topK, topK);
                  });
          double indexer = best(cx, indexerStep);
          double topk = best(cx, topkStep);
          for (int t = 0; t < maxRows; t++) {
            wholeRange[2 * t + 1] = ctx;
          }
          double shardPartial;
          try (DeviceBuffer ranges = cx.upload(wholeRange)) {
            int rows = longRows;
            double seconds =
                best(
                    cx,
                    () ->
                        attend(
                            k, shape, cache, q, out, lse, rows, 0, ranges.address(), 0L, ctx, 0));
            shardPartial = 4.0 * heads * headDim * (double) rows * ctx / seconds / 1e12;
          }
          // The same dense attention over a half-precision cache (half the bytes read).
          double denseHalf;
          double tflopsHalf;
          double tflopsPipelined;
          try (CudaKvCache half = filledCache(cx, k, kvDim, ctx, KvCacheType.F16, src, chunk)) {
            denseHalf = denseSeconds(cx, k, shape, half, q, out, lse, ctx, 1);
            boolean longEnough = ctx >= longRows;
            tflopsHalf =
                longEnough
                    ? prefillTflops(cx, k, shape, half, q, out, lse, ctx, longRows)
                    : Double.NaN;
            // the pipelined tensor-core kernel (cp.async tiles overlapping the products)
            k.setPipelinedPrefill(true);
            tflopsPipelined =
                longEnough
                    ? optional(
                        "pipelined prefill",
                        () -> prefillTflops(cx, k, shape, half, q, out, lse, ctx, longRows))
                    : Double.NaN;
            k.setPipelinedPrefill(false);
          }
          System.out.printf(
              "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f"
                  + " |%n",
              ctx,
              dense * 1e6,
              tflops,
              tflopsLong,
              sparse * 1e6,
              indexer * 1e6,
              topk * 1e6,
              shardPartial,
              tflopsPaired,
              denseHalf * 1e6,
              tflopsHalf,
              tflopsPipelined);
        }
      }
    }
  }

  /** A one-layer cache of {@code ctx} positions of {@code type}, every row from {@code src}. */
  private static CudaKvCache filledCache(
      CudaContext cx,
      CudaKernels k,
      int kvDim,
      int ctx,
      KvCacheType type,
      DeviceBuffer src,
      int chunk) {
    CudaKvCache cache = new CudaKvCache(cx, 1, kvDim, ctx, type);
    try {
      cache.reserve(ctx);
      for (int p = 0; p < ctx; p += chunk) {
        int n = Math.min(chunk, ctx - p);
        k.kvStore(cache.keyTable(0), CudaKvCache.PAGE_TOKENS, type, src.address(), p, n, kvDim);
        k.kvStore(cache.valueTable(0), CudaKvCache.PAGE_TOKENS, type, src.address(), p, n, kvDim);
      }
      cache.setLength(ctx);
      return cache;
    } catch (RuntimeException e) {
      cache.close();
      throw e;
    }
  }

  /**
   * Dense causal attention of {@code rows} queries at the end of a {@code ctx}-key context, in
   * TFLOP/s: 2·d for q·k and 2·d for p·v per (query, head, visible key).
   */
  private static double prefillTflops(
      CudaContext cx,
      CudaKernels k,
      AttentionShape shape,
      CudaKvCache cache,
      DeviceBuffer q,
      DeviceBuffer out,
      DeviceBuffer lse,
      int ctx,
      int rows) {
    double seconds = denseSeconds(cx, k, shape, cache, q, out, lse, ctx, rows);
    double keys = (double) rows * (ctx - rows) + rows * (rows + 1) / 2.0;
    return 4.0 * shape.heads() * shape.headDim() * keys / seconds / 1e12;
  }

  /** Seconds of dense causal attention of {@code rows} queries at the end of {@code ctx} keys. */
  private static double denseSeconds(
      CudaContext cx,
      CudaKernels k,
      AttentionShape shape,
      CudaKvCache cache,
      DeviceBuffer q,
      DeviceBuffer out,
      DeviceBuffer lse,
      int ctx,
      int rows) {
    return best(cx, () -> attend(k, shape, cache, q, out, lse, rows, ctx - rows, 0L, 0L, 0, 0));
  }

  /**
   * One attention launch of the bench's shape over layer 0 of {@code cache}: causal from {@code
   * causalStart}, or per-row {@code ranges}, or the {@code selected} lists (CudaKernels.attention).
   */
  private static void attend(
      CudaKernels k,
      AttentionShape shape,
      CudaKvCache cache,
      DeviceBuffer q,
      DeviceBuffer out,
      DeviceBuffer lse,
      int rows,
      int causalStart,
      long ranges,
      long selected,
      int count,
      int selStride) {
    k.attention(
        q.address(),
        cache.keyTable(0),
        cache.valueTable(0),
        CudaKvCache.PAGE_TOKENS,
        cache.type(),
        out.address(),
        lse.address(),
        rows,
        shape.heads(),
        shape.kvHeads(),
        shape.headDim(),
        (float) (1 / Math.sqrt(shape.headDim())),
        causalStart,
        ranges,
        selected,
        count,
        selStride,
        false,
        null);
  }

  /** Best wall time in seconds of {@code work} over a few synchronized repetitions. */
  private static double best(CudaContext cx, Runnable work) {
    work.run();
    double best = Double.MAX_VALUE;
    for (int r = 0; r < REPS + 2; r++) {
      cx.synchronize();
      long t0 = System.nanoTime();
      work.run();
      cx.synchronize();
      best = Math.min(best, (System.nanoTime() - t0) / 1e9);
    }
    return best;
  }
}
