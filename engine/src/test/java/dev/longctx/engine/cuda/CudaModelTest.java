package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.model.TestModels;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole model on CUDA against the CPU {@link Transformer} on the real models: greedy tokens
 * equal, logits close, the same KV byte accounting. Skips without a CUDA device.
 */
class CudaModelTest {

  private static final int STEPS = 48;

  /**
   * A two-layer shape for 32-element blocks whose rows are whole split-layout chunks and rests (640
   * and 1088 columns).
   */
  private static final LlamaConfig BLOCKS_32 =
      new LlamaConfig(
          "llama", 640, 1088, 2, 10, 2, 64, 300, 128, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);

  /** A two-layer shape of whole 256-element super-blocks (K-quants). */
  private static final LlamaConfig SUPER_BLOCKS =
      new LlamaConfig(
          "llama", 512, 768, 2, 8, 2, 64, 300, 128, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);

  /** Greedy continuation of {@code prompt} through any backend behind {@link Decoder}. */
  private static <S> int[] greedy(
      Decoder<S> model, S seq, int[] prompt, int steps, float[][] first) {
    float[] logits = model.prefill(seq, prompt);
    first[0] = logits;
    int[] out = new int[steps];
    for (int i = 0; i < steps; i++) {
      out[i] = Ops.argmax(logits, 0, logits.length);
      logits = model.decode(seq, out[i]);
    }
    return out;
  }

  /** The real models of ../shared/data by name (a parameter per model). */
  enum RealModel {
    /** llama2.c format, GQA 8/4, separate output matrix. */
    STORIES_260K,
    /** Hugging Face safetensors, GQA 8/4, tied embeddings, rotate-half RoPE layout. */
    TINY_STORIES_656K;

    LoadedModel load() {
      return this == STORIES_260K ? TestModels.stories260K() : TestModels.tinyStories656K();
    }
  }

  @ParameterizedTest
  @EnumSource(RealModel.class)
  void greedyTokensEqualTheCpuBackend(RealModel model) {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = model.load();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] shortPrompt = loaded.tokenizer().encodePrompt("Once upon a time");
      // 40+ tokens: the prefill chunk goes through cuBLAS (when it loads)
      int[] longPrompt = longPrompt(loaded);
      assertThat(longPrompt.length).isGreaterThanOrEqualTo(CudaModel.GEMM_MIN_ROWS);
      for (int[] prompt : new int[][] {shortPrompt, longPrompt}) {
        for (boolean gemm : new boolean[] {false, true}) {
          gpu.setGemmEnabled(gemm);
          float[][] cpuFirst = new float[1][];
          float[][] gpuFirst = new float[1][];
          Sequence cs = cpu.newSequence(prompt.length + STEPS + 1);
          int[] expected = greedy(cpu, cs, prompt, STEPS, cpuFirst);
          try (CudaSequence gs = gpu.newSequence(prompt.length + STEPS + 1)) {
            int[] actual = greedy(gpu, gs, prompt, STEPS, gpuFirst);
            assertThat(actual).as("greedy tokens, gemm=%s", gemm).isEqualTo(expected);
            for (int i = 0; i < cpuFirst[0].length; i++) {
              assertThat(gpuFirst[0][i])
                  .as("prefill logit %d", i)
                  .isCloseTo(cpuFirst[0][i], org.assertj.core.data.Offset.offset(2e-3f));
            }
            assertThat(gs.length()).isEqualTo(cs.length());
            assertThat(gs.cache().bytesPerToken()).isEqualTo(cs.cache().bytesPerToken());
            assertThat(gs.cache().bytesResident()).isEqualTo(cs.cache().bytesResident());
            assertThat(gs.bytesAllocated() % (CudaKvCache.PAGE_TOKENS * gs.cache().bytesPerToken()))
                .isZero();
          }
        }
      }
    }
  }

  /**
   * A half-precision KV cache ({@link KvCacheType#F16}) at half the bytes per token: fed the CPU's
   * greedy tokens (teacher forcing, so both see the same sequence), every step's logits stay within
   * the rounding of the cached keys and values of the CPU's, and the same greedy choice is made
   * where the CPU's best logit leads by more than that; the logits are not the F32 cache's (the
   * halves are really read).
   */
  @Test
  void aHalfPrecisionKvCacheTracksTheCpuBackendAtHalfTheBytes() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] prompt = longPrompt(loaded);
      int steps = 24;
      Sequence cs = cpu.newSequence(prompt.length + steps + 1);
      List<float[]> expected = CudaTests.greedyLogits(cpu, cs, prompt, steps);
      int[] fed = greedyChoices(expected, steps);
      List<float[]> exact = forced(gpu, prompt, fed);
      gpu.setKvCacheType(KvCacheType.F16);
      List<float[]> half = forced(gpu, prompt, fed);
      try (CudaSequence gs = gpu.newSequence(prompt.length)) {
        assertThat(gs.cache().type()).isEqualTo(KvCacheType.F16);
        assertThat(gs.cache().bytesPerToken() * 2).isEqualTo(cs.cache().bytesPerToken());
      }
      Tracking t = track(expected, half, exact);
      double worst = t.worst();
      double fromExact = t.fromOther();
      System.out.printf(
          "F16 KV: max |logit − CPU| %.2e, from the F32 cache %.2e%n", worst, fromExact);
      assertThat(worst).as("max |logit − CPU logit| over %d steps", steps + 1).isLessThan(0.1);
      assertThat(fromExact).as("F16 cache logits differ from the F32 cache's").isGreaterThan(0);
    }
  }

  /**
   * Int8 activations ({@link CudaModel#setQuantizedActivations}) on a two-layer Q8_0 / Q4_0 model
   * whose every matrix is in the split layout (widths of whole chunks and rests): fed the CPU's
   * greedy tokens, every step's logits stay within the activations' rounding of the CPU's, the
   * greedy choice is the CPU's wherever its lead exceeds that, and the logits are not those of the
   * float-activation product (the integer path really runs).
   */
  @ParameterizedTest
  @EnumSource(
      value = GgmlType.class,
      names = {"Q8_0", "Q4_0"})
  void quantizedActivationsTrackTheCpuBackend(GgmlType type, @TempDir Path tmp) throws IOException {
    // q/k/v and gate/up stacked: four products a layer, then the output projection
    quantizedActivationsTrack(MatrixTypes.of(type), BLOCKS_32, "matvec_split_q8x", 4, tmp);
  }

  /**
   * The same for llama.cpp's Q4_K_M mix (Q4_K, and Q6_K for attn_v, ffn_down and the tied
   * embedding): every product goes through matvec_kquant_q8x. Widths of whole super-blocks.
   */
  @Test
  void quantizedActivationsOnAQ4KmModel(@TempDir Path tmp) throws IOException {
    // q/k stacked (Q4_K), v apart (Q6_K), o, gate/up stacked, down: five products a layer
    quantizedActivationsTrack(MatrixTypes.Q4_K_M, SUPER_BLOCKS, "matvec_kquant_q8x", 5, tmp);
  }

  private void quantizedActivationsTrack(
      MatrixTypes types, LlamaConfig shape, String product, int productsPerLayer, Path tmp)
      throws IOException {
    CudaContext cx = CudaTests.context();
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("q.gguf"), shape, 23, types)) {
      LlamaConfig c = model.config();
      LlamaWeights weights = model.weights();
      Transformer cpu = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(5).ints(12, 0, c.vocabSize()).toArray();
      int steps = 16;
      Sequence cs = cpu.newSequence(prompt.length + steps + 1);
      List<float[]> expected = CudaTests.greedyLogits(cpu, cs, prompt, steps);
      int[] fed = greedyChoices(expected, steps);
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        List<float[]> exact = forced(gpu, prompt, fed);
        gpu.setQuantizedActivations(true);
        List<float[]> int8 = forced(gpu, prompt, fed);
        double scale = largestMagnitude(expected);
        Tracking t = track(expected, int8, exact);
        double worst = t.worst();
        double fromExact = t.fromOther();
        System.out.printf(
            "%s, int8 activations: max |logit − CPU| %.2e (logits up to %.2f), from float"
                + " activations %.2e%n",
            types, worst, scale, fromExact);
        // each activation within half a step of 1/127 of its block's largest: a few per cent
        assertThat(worst)
            .as("max |logit − CPU logit| over %d steps", steps + 1)
            .isLessThan(0.05 * scale);
        assertThat(fromExact).as("int8 activations change the logits").isGreaterThan(0);
        // as CUDA graphs, the same launches give the same logits
        gpu.setDecodeGraphs(true);
        List<float[]> graphed = forced(gpu, prompt, fed);
        gpu.setDecodeGraphs(false);
        for (int i = 0; i <= steps; i++) {
          assertThat(graphed.get(i)).as("logits of step %d as a graph", i).isEqualTo(int8.get(i));
        }
        // A decode step has no quantization launch of its own: the norms, SwiGLU and the
        // attention's merge write the products' int8 inputs, and every product is the integer one.
        try (CudaSequence seq = gpu.newSequence(prompt.length + 1)) {
          gpu.prefill(seq, prompt);
          java.util.Map<String, Long> launches = new java.util.HashMap<>();
          for (KernelProfile.Entry e : cx.profile(1, () -> gpu.decode(seq, fed[0])).entries()) {
            launches.put(e.name(), e.launches());
          }
          int layers = c.layers();
          assertThat(launches)
              .containsEntry("attention_combine_q8", (long) layers)
              .containsEntry("rmsnorm_rows_q8", 2L) // layer 0's attention norm, the final norm
              .containsEntry("add_rmsnorm_rows_q8", 2L * layers - 1)
              .containsEntry("swiglu_q8", (long) layers)
              .containsEntry(product, (long) productsPerLayer * layers + 1)
              .doesNotContainKeys(
                  "quantize_rows_q8",
                  "attention_combine",
                  "matvec_split",
                  "matvec_kquant",
                  "matvec",
                  "rmsnorm_rows",
                  "swiglu");
        }
      }
    }
  }

  /** A quantized weight mix and a two-layer shape its blocks fit. */
  record Mix(MatrixTypes types, LlamaConfig shape) {
    @Override
    public String toString() {
      return types.toString();
    }
  }

  static List<Mix> quantizedMixes() {
    return List.of(
        new Mix(MatrixTypes.of(GgmlType.Q8_0), BLOCKS_32),
        new Mix(MatrixTypes.of(GgmlType.Q4_0), BLOCKS_32),
        new Mix(MatrixTypes.Q4_K_M, SUPER_BLOCKS));
  }

  /**
   * Prefill chunks of {@link CudaModel#GEMM_MIN_ROWS} rows or more go through cuBLAS: each
   * quantized matrix is copied to FP16 for the chunk (dequantize_to_half, K-quants included) and
   * multiplied with FP16 activations. Fed the CPU's greedy tokens after a 40-token prompt, every
   * step's logits stay within that rounding of the CPU's, with float and with int8 activations for
   * the decode steps (the prefill's FP16 copy of x and the int8 form share a buffer), and the
   * prefill really ran the GEMM path.
   */
  @ParameterizedTest
  @org.junit.jupiter.params.provider.MethodSource("quantizedMixes")
  void prefillThroughCublasTracksTheCpuBackend(Mix mix, @TempDir Path tmp) throws IOException {
    CudaContext cx = CudaTests.context();
    org.junit.jupiter.api.Assumptions.assumeTrue(
        cx.blas() != null, "libcublas not loadable: prefill takes the matvec kernel");
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("q.gguf"), mix.shape(), 29, mix.types())) {
      LlamaConfig c = model.config();
      LlamaWeights weights = model.weights();
      Transformer cpu = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(7).ints(40, 0, c.vocabSize()).toArray();
      int steps = 8;
      Sequence cs = cpu.newSequence(prompt.length + steps + 1);
      List<float[]> expected = CudaTests.greedyLogits(cpu, cs, prompt, steps);
      int[] fed = greedyChoices(expected, steps);
      double scale = largestMagnitude(expected);
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        gpu.setGemmEnabled(false);
        List<float[]> matvec = forced(gpu, prompt, fed);
        gpu.setGemmEnabled(true);
        List<float[]> gemm = forced(gpu, prompt, fed);
        Tracking t = track(expected, gemm, matvec);
        System.out.printf(
            "%s prefill through cuBLAS: max |logit − CPU| %.2e (logits up to %.2f), from the"
                + " matvec prefill %.2e%n",
            mix, t.worst(), scale, t.fromOther());
        // FP16 activations and weights: each product within a few 2^-11 of its terms
        assertThat(t.worst()).as("max |logit − CPU logit|").isLessThan(0.004 * scale);
        assertThat(t.fromOther()).as("the GEMM prefill is not the matvec one").isGreaterThan(0);
        gpu.setQuantizedActivations(true);
        Tracking int8 = track(expected, forced(gpu, prompt, fed), gemm);
        assertThat(int8.worst()).as("int8 decode after a GEMM prefill").isLessThan(0.05 * scale);
        try (CudaSequence seq = gpu.newSequence(prompt.length)) {
          java.util.Set<String> ran = new java.util.HashSet<>();
          for (KernelProfile.Entry e : cx.profile(1, () -> gpu.prefill(seq, prompt)).entries()) {
            ran.add(e.name());
          }
          assertThat(ran).contains("dequantize_to_half", "cublasGemmEx FP16");
        }
      }
    }
  }

  /** The greedy token of each of the first {@code steps} logit vectors. */
  private static int[] greedyChoices(List<float[]> logits, int steps) {
    int[] tokens = new int[steps];
    for (int i = 0; i < steps; i++) {
      tokens[i] = Ops.argmax(logits.get(i), 0, logits.get(i).length);
    }
    return tokens;
  }

  /** The largest |logit| of all steps, at least 1: the scale the tolerances are relative to. */
  private static double largestMagnitude(List<float[]> logits) {
    double scale = 1;
    for (float[] step : logits) {
      for (float v : step) {
        scale = Math.max(scale, Math.abs(v));
      }
    }
    return scale;
  }

  /** How far a run's logits are from the expected ones, and from another run's (max |Δ|). */
  private record Tracking(double worst, double fromOther) {}

  /**
   * Compares {@code got} with {@code expected} step by step: the greedy token must be the expected
   * one wherever the expected best logit leads the next by more than four times the step's max |Δ|;
   * returns the largest |Δ| and the largest distance from {@code other}.
   */
  private static Tracking track(List<float[]> expected, List<float[]> got, List<float[]> other) {
    double worst = 0;
    double fromOther = 0;
    for (int i = 0; i < expected.size(); i++) {
      float[] want = expected.get(i);
      float[] g = got.get(i);
      double diff = CudaTests.maxAbsDiff(g, want);
      worst = Math.max(worst, diff);
      fromOther = Math.max(fromOther, CudaTests.maxAbsDiff(g, other.get(i)));
      float[] sorted = want.clone();
      java.util.Arrays.sort(sorted);
      if (sorted[sorted.length - 1] - sorted[sorted.length - 2] > 4 * diff) {
        assertThat(Ops.argmax(g, 0, g.length))
            .as("greedy token of step %d", i)
            .isEqualTo(Ops.argmax(want, 0, want.length));
      }
    }
    return new Tracking(worst, fromOther);
  }

  /** A prompt of 40+ tokens in either real model's vocabulary. */
  private static int[] longPrompt(LoadedModel loaded) {
    return loaded
        .tokenizer()
        .encodePrompt(
            "Once upon a time, there was a little girl named Lily. She loved to play"
                + " outside in the park with her friends and her dog");
  }

  /** The logits of {@code prompt}, then of each of {@code fed} decoded in turn, on the GPU. */
  private static List<float[]> forced(CudaModel gpu, int[] prompt, int[] fed) {
    try (CudaSequence seq = gpu.newSequence(prompt.length + fed.length + 1)) {
      List<float[]> logits = new java.util.ArrayList<>();
      logits.add(gpu.prefill(seq, prompt));
      for (int token : fed) {
        logits.add(gpu.decode(seq, token));
      }
      return logits;
    }
  }

  @Test
  void badInputFailsClearly() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights());
        CudaSequence seq = gpu.newSequence(4)) {
      assertThatThrownBy(() -> gpu.decode(seq, loaded.config().vocabSize()))
          .hasMessageContaining("outside the vocabulary");
      assertThatThrownBy(() -> gpu.prefill(seq, new int[5]))
          .hasMessageContaining("exceeds the KV cache limit of 4");
      assertThatThrownBy(() -> gpu.prefill(seq, new int[0])).hasMessageContaining("at least one");
    }
  }

  /**
   * SelfExtend on the GPU equals the CPU Transformer under the same policy: a window far shorter
   * than the prompt, so most keys are attended at grouped positions (ALGORITHMS.md §2.2); prefill
   * (a multi-row chunk) and decode steps, logits and greedy tokens, the KV accounting; the policy
   * set as the model's default ({@link CudaModel#withAttention}). Few tokens: the CPU emulation of
   * the driver is slow (llama.cpp mode is covered by the head-dim-64 test below).
   */
  @Test
  void selfExtendMatchesTheCpuBackend() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] prompt =
          loaded
              .tokenizer()
              .encodePrompt("Once upon a time, there was a little girl named Lily. She loved to");
      int steps = 4;
      SelfExtend se = new SelfExtend(2, 8);
      assertThat(prompt.length).isGreaterThan(2 * se.neighborWindow());
      Sequence cs = cpu.newSequence(prompt.length + steps, se);
      List<float[]> expected = CudaTests.greedyLogits(cpu, cs, prompt, steps);
      // the grouped region changes the result: the comparison below is not dense against dense
      List<float[]> dense = CudaTests.greedyLogits(cpu, cpu.newSequence(prompt.length), prompt, 0);
      assertThat(CudaTests.maxAbsDiff(expected.get(0), dense.get(0))).isGreaterThan(1e-2);
      try (CudaModel view = gpu.withAttention(se);
          CudaSequence gs = view.newSequence(prompt.length + steps)) {
        assertThat(view.attentionPolicy()).isEqualTo(se);
        assertThat(view.maxContext()).isEqualTo(se.maxContext(loaded.config().contextLength()));
        List<float[]> actual = CudaTests.greedyLogits(view, gs, prompt, steps);
        for (int s = 0; s <= steps; s++) {
          float[] e = expected.get(s);
          float[] g = actual.get(s);
          assertThat(Ops.argmax(g, 0, g.length))
              .as("greedy token after step %d", s)
              .isEqualTo(Ops.argmax(e, 0, e.length));
          for (int i = 0; i < e.length; i++) {
            assertThat(g[i])
                .as("logit %d after step %d", i, s)
                .isCloseTo(e[i], Offset.offset(2e-3f));
          }
        }
        assertThat(gs.policy()).isEqualTo(se);
        assertThat(gs.length()).isEqualTo(cs.length());
        assertThat(gs.cache().hasGroupKeys()).isTrue();
        assertThat(gs.cache().bytesPerToken()).isEqualTo(cs.cache().bytesPerToken());
        assertThat(gs.cache().bytesResident()).isEqualTo(cs.cache().bytesResident());
      }
    }
  }

  /**
   * The same comparison on a one-layer random-weight model with head dimension 64 and GQA groups of
   * 2 (Qwen2 layout: biases, rotate-half RoPE), which takes the kernels stories260K's head
   * dimension 8 does not: the split-K attention (attention_split_g2_d64 + attention_combine) and,
   * for the exact mode's grouped partial of the 90-row prefill chunk (74 rows with grouped keys),
   * the tensor-core prefill kernel; both position modes.
   */
  @Test
  void selfExtendMatchesTheCpuBackendOnTheHeadDim64Kernels(@TempDir Path tmp) throws IOException {
    CudaContext cx = CudaTests.context();
    LlamaConfig shape =
        new LlamaConfig(
            "qwen2", 128, 128, 1, 2, 1, 64, 260, 512, 1e-6f, 10000f, Rope.Layout.ROTATE_HALF, null);
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("se-d64.gguf"), shape, 5)) {
      LlamaConfig c = model.config();
      var weights = model.weights();
      Transformer cpu = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(9).ints(90, 0, c.vocabSize()).toArray();
      int steps = 3;
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        for (SelfExtend se :
            new SelfExtend[] {
              new SelfExtend(4, 16), new SelfExtend(2, 8, SelfExtendMode.LLAMACPP)
            }) {
          List<float[]> expected =
              CudaTests.greedyLogits(
                  cpu, cpu.newSequence(prompt.length + steps, se), prompt, steps);
          List<float[]> dense =
              CudaTests.greedyLogits(cpu, cpu.newSequence(prompt.length), prompt, 0);
          // the grouped region changes the logits (by ~0.3 here) far beyond the tolerance below
          assertThat(CudaTests.maxAbsDiff(expected.get(0), dense.get(0)))
              .as("%s vs dense", se)
              .isGreaterThan(0.05);
          try (CudaSequence gs = gpu.newSequence(prompt.length + steps, se)) {
            List<float[]> actual = CudaTests.greedyLogits(gpu, gs, prompt, steps);
            for (int s = 0; s <= steps; s++) {
              float[] e = expected.get(s);
              float[] g = actual.get(s);
              assertThat(Ops.argmax(g, 0, g.length))
                  .as("%s greedy token after step %d", se, s)
                  .isEqualTo(Ops.argmax(e, 0, e.length));
              // F32 weights: decode differs only in the float summation order (under 1e-6 in the
              // emulation); the exact-mode prefill's grouped partial runs on the tensor-core kernel
              // (FP16 products, 3e-4 here)
              double tolerance = s == 0 ? 2e-3 : 1e-4;
              assertThat(CudaTests.maxAbsDiff(g, e))
                  .as("%s logits after step %d", se, s)
                  .isLessThan(tolerance);
            }
          }
        }
      }
    }
  }

  /**
   * Decode steps as CUDA graph launches ({@link CudaModel#setDecodeGraphs}) give the logits of
   * direct launches bit for bit, over an F32 and an F16 cache: on a head-dim-64 model whose split-K
   * decode attention goes from one key split to four as the context grows past 64, 128 and 192
   * keys, so the one graph built per sequence has its nodes updated in place every step (the key
   * count and the KV slot in each layer; the splits, a grid dimension, now and then).
   * LaunchGraphTest covers the rebuild when the kernels change.
   */
  @Test
  void decodeGraphsGiveTheLogitsOfDirectLaunches(@TempDir Path tmp) throws IOException {
    CudaContext cx = CudaTests.context();
    LlamaConfig shape =
        new LlamaConfig(
            "llama", 128, 256, 2, 2, 1, 64, 260, 512, 1e-5f, 10000f, Rope.Layout.ROTATE_HALF, null);
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("graphs.gguf"), shape, 7)) {
      LlamaConfig c = model.config();
      var weights = model.weights();
      int[] prompt = new SplittableRandom(3).ints(40, 0, c.vocabSize()).toArray();
      int steps = 170;
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        for (KvCacheType type : KvCacheType.values()) {
          gpu.setKvCacheType(type);
          gpu.setDecodeGraphs(false);
          List<float[]> direct;
          try (CudaSequence seq = gpu.newSequence(prompt.length + steps)) {
            direct = CudaTests.greedyLogits(gpu, seq, prompt, steps);
            assertThat(seq.graphStats().replays()).isZero();
          }
          gpu.setDecodeGraphs(true);
          try (CudaSequence seq = gpu.newSequence(prompt.length + steps)) {
            List<float[]> graphed = CudaTests.greedyLogits(gpu, seq, prompt, steps);
            for (int s = 0; s <= steps; s++) {
              assertThat(graphed.get(s))
                  .as("%s cache, logits after step %d", type, s)
                  .isEqualTo(direct.get(s));
            }
            LaunchGraph.Stats stats = seq.graphStats();
            assertThat(stats.replays()).as("graph launches").isEqualTo(steps);
            assertThat(stats.builds()).as("graphs built").isEqualTo(1);
            // per step at least the attention and the RoPE/KV store of each layer
            assertThat(stats.updates())
                .as("nodes updated")
                .isGreaterThanOrEqualTo(2L * c.layers() * (steps - 1));
            assertThat(stats.fallbacks()).isZero();
          }
        }
      }
    }
  }

  @Test
  void policyLimitsHoldAsOnTheCpu() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      assertThatThrownBy(() -> gpu.newSequence(16, new IndexerTopK(CudaKernels.TOPK_MAX + 1)))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("indexer-topk");
      // SelfExtend's own limits hold as on the CPU: w below the trained context, (L − w)·G + w
      int trained = loaded.config().contextLength();
      assertThatThrownBy(() -> gpu.newSequence(16, new SelfExtend(1, trained)))
          .hasMessageContaining("smaller than the trained context");
      assertThatThrownBy(() -> gpu.newSequence(2 * trained, new SelfExtend(1, 8)))
          .hasMessageContaining("maximum context");
    }
  }
}
