package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import org.junit.jupiter.api.Test;

/**
 * The whole model on CUDA against the CPU {@link Transformer} on the real stories260K: greedy
 * tokens equal, logits close, the same KV byte accounting. Skips without a CUDA device.
 */
class CudaModelTest {

  private static final int STEPS = 48;

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

  @Test
  void greedyTokensEqualTheCpuBackend() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] shortPrompt = loaded.tokenizer().encodePrompt("Once upon a time");
      // 40+ tokens: the prefill chunk goes through cuBLAS (when it loads)
      int[] longPrompt =
          loaded
              .tokenizer()
              .encodePrompt(
                  "Once upon a time, there was a little girl named Lily. She loved to play"
                      + " outside in the park with her friends and her dog");
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
}
