package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class Llama2cTokenizerTest {

  private static Path tok512() {
    return TestData.file("models/stories260K/tok512.bin");
  }

  @Test
  void tok512EncodesOnceUponATimeAsLlama2cDoes() {
    Tokenizer t = Tokenizers.fromLlama2c(tok512(), 512);
    assertThat(t.encode("Once upon a time")).containsExactly(403, 407, 261, 378);
    assertThat(t.encodePrompt("Once upon a time")).containsExactly(1, 403, 407, 261, 378);
    assertThat(t.bosId()).isEqualTo(1);
    assertThat(t.eosId()).isEqualTo(2);
    assertThat(t.addBos()).isTrue();
  }

  @Test
  void vocabularySizeIsInferredFromTheFileWhenNotGiven() {
    assertThat(Tokenizers.fromLlama2c(tok512()).vocabSize()).isEqualTo(512);
  }

  @Test
  void llama2TokenizerBinEncodesOnceUponATime() {
    Tokenizer t = Tokenizers.fromLlama2c(TestData.file("tokenizers/llama2/tokenizer.bin"), 32000);
    assertThat(t.encode("Once upon a time")).containsExactly(9038, 2501, 263, 931);
  }
}
