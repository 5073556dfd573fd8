package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class HuggingFaceTokenizerTest {

  private static Path dir() {
    return TestData.file("models/tinystories-656k");
  }

  @Test
  void tinyStoriesEncodesLikeTheTokenizersLibraryWithBos() {
    Tokenizer t = Tokenizers.fromHuggingFace(dir());
    String text = "Once upon a time, there was a little girl named Lily.";
    assertThat(t.encodePrompt(text)).containsExactly(1, 80, 147, 201, 282, 215, 286, 598, 629, 10);
    assertThat(t.encode(text)).containsExactly(80, 147, 201, 282, 215, 286, 598, 629, 10);
    assertThat(t.decode(t.encode(text))).isEqualTo(text);
  }
}
