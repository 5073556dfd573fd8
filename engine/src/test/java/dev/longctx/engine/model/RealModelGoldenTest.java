package dev.longctx.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Perplexity;
import dev.longctx.engine.sampling.SamplingParams;
import java.io.IOException;
import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Golden outputs of the real models in {@code ../shared/data}: token ids, karpathy's published
 * greedy sample, and perplexity with the definition of shared/data/README.md (BOS + the encoding of
 * the first 4000 characters of the TinyStories excerpt, cut to 512 tokens; exp of the mean NLL of
 * tokens 2..512).
 */
class RealModelGoldenTest {

  /** karpathy/llama2.c doc/stories260K.md, `./run stories260K.bin -z tok512.bin -t 0.0`. */
  static final String STORIES260K_GREEDY =
      """
      Once upon a time, there was a little girl named Lily. She loved to play outside in the park. \
      One day, she saw a big, red ball. She wanted to play with it, but it was too high.
      Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. \
      She said, "I want to play with your ball, but I can't find it."
      Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
      Lily didn't want to help her mom, so she said, "I'm sorry, mom. I didn't know what to do." \
      Her mom said, "Don't worry, Lily. We can help you.""";

  static LoadedModel stories260K() {
    return TestModels.stories260K();
  }

  static LoadedModel tinyStories656K() {
    return TestModels.tinyStories656K();
  }

  static int[] withBos(LoadedModel m, String text) {
    return m.tokenizer().encodePrompt(text);
  }

  static double perplexityOfExcerpt(LoadedModel m) throws IOException {
    String text =
        Files.readString(TestData.file("text/tinystories_train_excerpt.txt")).substring(0, 4000);
    return Perplexity.evaluate(
            m.transformer(), m.tokenizer().encode(text), 512, m.tokenizer().bosId(), 1, n -> {})
        .perplexity();
  }

  /** run.c's 256 steps: 256 greedy tokens sampled after BOS. */
  static Generator.Result greedyFromBos(LoadedModel m) {
    return Generator.generate(
        m.transformer(),
        m.tokenizer(),
        new Generator.Request(
            new int[] {m.tokenizer().bosId()}, SamplingParams.greedy(), 256, List.of(), 512),
        t -> {});
  }

  @Test
  void stories260KEncodesOnceUponATime() {
    try (LoadedModel m = stories260K()) {
      assertThat(withBos(m, "Once upon a time")).containsExactly(1, 403, 407, 261, 378);
    }
  }

  @Test
  void stories260KGreedySampleMatchesPublishedOutput() {
    try (LoadedModel m = stories260K()) {
      Generator.Result r = greedyFromBos(m);
      assertThat(r.text()).isEqualTo(STORIES260K_GREEDY);
      assertThat(r.finishReason()).isEqualTo(Generator.FinishReason.LENGTH);
    }
  }

  @Test
  void stories260KPerplexityOfTinyStoriesExcerpt() throws IOException {
    try (LoadedModel m = stories260K()) {
      assertThat(perplexityOfExcerpt(m)).isCloseTo(4.346, within(0.005));
    }
  }

  @Test
  void tinyStories656KEncodesLilySentence() {
    try (LoadedModel m = tinyStories656K()) {
      assertThat(withBos(m, "Once upon a time, there was a little girl named Lily."))
          .containsExactly(1, 80, 147, 201, 282, 215, 286, 598, 629, 10);
      assertThat(m.weights().tiedEmbeddings()).isTrue();
    }
  }

  @Test
  void tinyStories656KPerplexityOfTinyStoriesExcerpt() throws IOException {
    try (LoadedModel m = tinyStories656K()) {
      assertThat(perplexityOfExcerpt(m)).isCloseTo(32.65, within(0.05));
    }
  }

  @Test
  void tinyStories656KGreedyContinuationIsFluentAndDeterministic() {
    try (LoadedModel m = tinyStories656K()) {
      int[] prompt = withBos(m, "Once upon a time");
      Generator.Request req =
          new Generator.Request(prompt, SamplingParams.greedy(), 40, List.of(), 512);
      Generator.Result a = Generator.generate(m.transformer(), m.tokenizer(), req, t -> {});
      Generator.Result b = Generator.generate(m.transformer(), m.tokenizer(), req, t -> {});
      assertThat(a.tokens()).containsExactly(b.tokens());
      // A trained story model continues with words, not byte soup.
      assertThat(a.text()).matches("(?s)[\\p{L}\\p{P}\\s]+").contains(" ");
    }
  }
}
