package dev.longctx.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Models written by the project's GGUF writer load back and behave like the source: F32 gives the
 * same greedy tokens; Q8_0 stays within a stated perplexity delta.
 */
class GgufConversionTest {

  /**
   * Q8_0 keeps each weight to within half a quantization step (|w|max/254 per 32-block), which on
   * stories260K moves perplexity by well under 1 %; 2 % leaves room without hiding a broken path.
   */
  static final double Q8_0_PERPLEXITY_DELTA = 0.02;

  @TempDir Path tmp;

  @Test
  void stories260KConvertedToF32GivesTheSameGreedyTokensAndPerplexity() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.stories260K()) {
      Path gguf = convert(source, GgmlType.F32);
      try (LoadedModel converted = LoadedModel.load(gguf, null)) {
        assertThat(converted.format()).isEqualTo(LoadedModel.Format.GGUF);
        assertThat(converted.config()).isEqualTo(source.config());
        Generator.Result a = RealModelGoldenTest.greedyFromBos(source);
        Generator.Result b = RealModelGoldenTest.greedyFromBos(converted);
        assertThat(b.tokens()).containsExactly(a.tokens());
        assertThat(b.text()).isEqualTo(RealModelGoldenTest.STORIES260K_GREEDY);
        assertThat(converted.tokenizer().encodePrompt("Once upon a time"))
            .containsExactly(1, 403, 407, 261, 378);
        assertThat(RealModelGoldenTest.perplexityOfExcerpt(converted))
            .isCloseTo(RealModelGoldenTest.perplexityOfExcerpt(source), within(1e-4));
      }
    }
  }

  @Test
  void stories260KConvertedToQ8_0StaysWithinThePerplexityDelta() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.stories260K()) {
      Path gguf = convert(source, GgmlType.Q8_0);
      try (LoadedModel converted = LoadedModel.load(gguf, null)) {
        // dim 64 rows quantize; the 172-wide FFN down projection falls back to F16.
        assertThat(converted.weights().layers().getFirst().wq().type()).isEqualTo(GgmlType.Q8_0);
        assertThat(converted.weights().layers().getFirst().wDown().type()).isEqualTo(GgmlType.F16);
        double reference = RealModelGoldenTest.perplexityOfExcerpt(source);
        double quantized = RealModelGoldenTest.perplexityOfExcerpt(converted);
        assertThat(quantized).isCloseTo(reference, within(reference * Q8_0_PERPLEXITY_DELTA));
        assertThat(quantized).isNotEqualTo(reference);
      }
    }
  }

  @Test
  void huggingFaceRotateHalfModelWrittenAsLlamaGgufIsPermutedToInterleaved() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.tinyStories656K()) {
      Path gguf = tmp.resolve("tinystories.gguf");
      GgufModelWriter.write(
          gguf,
          "tinystories-656k",
          GgufModelWriter.of(source.config(), source.weights()),
          SyntheticModel.vocabulary(source.config().vocabSize()),
          GgmlType.F32);
      try (GgufFile file = GgufFile.open(gguf)) {
        LlamaConfig config = GgufModelLoader.config(file);
        LlamaWeights weights = GgufModelLoader.weights(file, config);
        assertThat(config.ropeLayout()).isEqualTo(Rope.Layout.INTERLEAVED);
        Transformer a = source.transformer();
        Transformer b = new Transformer(config, weights);
        int[] prompt = source.tokenizer().encodePrompt("Once upon a time, there was a dog.");
        float[] la = a.prefill(a.newSequence(64), prompt);
        float[] lb = b.prefill(b.newSequence(64), prompt);
        for (int i = 0; i < la.length; i++) {
          assertThat(lb[i]).as("logit %d", i).isCloseTo(la[i], within(1e-3f));
        }
      }
    }
  }

  private Path convert(LoadedModel source, GgmlType type) throws IOException {
    Path out = tmp.resolve("stories260K-" + type + ".gguf");
    GgufModelWriter.write(
        out,
        "stories260K",
        GgufModelWriter.of(source.config(), source.weights()),
        source.vocabulary(),
        type);
    return out;
  }
}
