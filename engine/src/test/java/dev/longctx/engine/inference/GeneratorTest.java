package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import dev.longctx.engine.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Generation semantics on the real stories260K model: stops, limits, streaming, seeds. */
class GeneratorTest {

  private static Generator.Result run(
      LoadedModel m,
      String prompt,
      SamplingParams p,
      int max,
      List<String> stop,
      List<String> out) {
    return Generator.generate(
        m.transformer(),
        m.tokenizer(),
        new Generator.Request(m.tokenizer().encodePrompt(prompt), p, max, stop, 512),
        out::add);
  }

  @Test
  void stopStringEndsGenerationAndNeverReachesTheListener() {
    try (LoadedModel m = TestModels.stories260K()) {
      List<String> free = new ArrayList<>();
      Generator.Result unstopped =
          run(m, "Once upon a time", SamplingParams.greedy(), 60, List.of(), free);
      // Greedy continues ", there was a little girl named Lily. She loved ..."
      String stop = "Lily.";
      int at = unstopped.text().indexOf(stop);
      assertThat(at).isPositive();

      List<String> pieces = new ArrayList<>();
      Generator.Result r =
          run(m, "Once upon a time", SamplingParams.greedy(), 60, List.of(stop), pieces);
      assertThat(r.finishReason()).isEqualTo(Generator.FinishReason.STOP);
      assertThat(r.text()).isEqualTo(unstopped.text().substring(0, at));
      assertThat(String.join("", pieces)).isEqualTo(r.text());
      assertThat(r.completionTokens()).isLessThan(unstopped.completionTokens());
    }
  }

  @Test
  void streamedPiecesConcatenateToTheResultText() {
    try (LoadedModel m = TestModels.stories260K()) {
      List<String> pieces = new ArrayList<>();
      Generator.Result r =
          run(m, "Lily", SamplingParams.temperature(1.0f, 7).withTopK(40), 50, List.of(), pieces);
      assertThat(String.join("", pieces)).isEqualTo(r.text());
      assertThat(r.finishReason()).isEqualTo(Generator.FinishReason.LENGTH);
      assertThat(r.completionTokens()).isEqualTo(50);
    }
  }

  @Test
  void sameSeedSameTokensDifferentSeedDifferentTokens() {
    try (LoadedModel m = TestModels.stories260K()) {
      SamplingParams a = SamplingParams.temperature(1.0f, 42);
      Generator.Result r1 = run(m, "One day", a, 40, List.of(), new ArrayList<>());
      Generator.Result r2 = run(m, "One day", a, 40, List.of(), new ArrayList<>());
      Generator.Result r3 =
          run(m, "One day", SamplingParams.temperature(1.0f, 43), 40, List.of(), new ArrayList<>());
      assertThat(r1.tokens()).containsExactly(r2.tokens());
      assertThat(r3.tokens()).isNotEqualTo(r1.tokens());
    }
  }

  @Test
  void contextLimitEndsGenerationWithContextReason() {
    try (LoadedModel m = TestModels.stories260K()) {
      int[] prompt = m.tokenizer().encodePrompt("Once upon a time");
      Generator.Result r =
          Generator.generate(
              m.transformer(),
              m.tokenizer(),
              new Generator.Request(prompt, SamplingParams.greedy(), 100, List.of(), 12),
              t -> {});
      assertThat(r.finishReason()).isEqualTo(Generator.FinishReason.CONTEXT);
      assertThat(prompt.length + r.completionTokens()).isEqualTo(12);
    }
  }

  @Test
  void badRequestsNameTheLimit() {
    SamplingParams g = SamplingParams.greedy();
    assertThatThrownBy(() -> new Generator.Request(new int[0], g, 10, List.of(), 512))
        .hasMessageContaining("empty");
    assertThatThrownBy(() -> new Generator.Request(new int[] {1}, g, 0, List.of(), 512))
        .hasMessageContaining("max tokens must be >= 1");
    assertThatThrownBy(() -> new Generator.Request(new int[600], g, 10, List.of(), 512))
        .hasMessageContaining("600 tokens")
        .hasMessageContaining("512");
  }

  @Test
  void stopStringsHoldBackPartialMatchesAcrossPieces() {
    StopStrings sm = new StopStrings(List.of("END"));
    StringBuilder out = new StringBuilder();
    out.append(sm.accept("abc E"));
    assertThat(out.toString()).isEqualTo("abc ");
    out.append(sm.accept("N"));
    assertThat(out.toString()).isEqualTo("abc ");
    out.append(sm.accept("Dxyz"));
    assertThat(sm.stopped()).isTrue();
    assertThat(out.toString()).isEqualTo("abc ");
    assertThat(sm.accept("more")).isEmpty();
    // A held-back prefix that turns out not to be a stop string is released.
    StopStrings sm2 = new StopStrings(List.of("END"));
    String released = sm2.accept("xE") + sm2.accept("Nd") + sm2.flush();
    assertThat(released).isEqualTo("xENd");
    assertThat(sm2.stopped()).isFalse();
  }
}
