package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Metaspace pre-tokenizer and decoder on a hand-made vocabulary. */
class HuggingFaceMetaspaceTest {

  private static HuggingFaceTokenizer write(Path dir, String scheme, boolean split)
      throws IOException {
    String metaspace =
        "{\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"%s\", \"split\": %s}"
            .formatted(scheme, split);
    String json =
        """
        {"added_tokens": [{"id": 7, "content": "<s>", "special": true}],
         "normalizer": null,
         "pre_tokenizer": %s,
         "post_processor": null,
         "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, %s]},
         "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
                   "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "\u2581a": 4, "ab": 5,
                             "\u2581ab": 6, "<0xE2>": 8, "<0x82>": 9, "<0xAC>": 10},
                   "merges": ["\u2581 a", "a b", "\u2581a b"]}}
        """
            .formatted(metaspace, metaspace);
    Files.writeString(dir.resolve("tokenizer.json"), json);
    Files.writeString(
        dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}");
    return Tokenizers.fromHuggingFace(dir);
  }

  @Test
  void firstSchemePrependsOnlyAtTheStartOfTheInput(@TempDir Path dir) throws IOException {
    HuggingFaceTokenizer t = write(dir, "first", true);
    assertThat(t.encode("ab ab")).containsExactly(6, 6);
    assertThat(t.encodeWithSpecialTokens("<s>ab")).containsExactly(7, 5);
    assertThat(t.decode(new int[] {6, 6})).isEqualTo("ab ab");
    // No post-processor: tokenizer_config.json's add_bos_token decides.
    assertThat(t.addBos()).isTrue();
    assertThat(t.encodePrompt("ab")).containsExactly(7, 6);
  }

  @Test
  void alwaysSchemePrependsAfterSpecialTokensToo(@TempDir Path dir) throws IOException {
    HuggingFaceTokenizer t = write(dir, "always", false);
    assertThat(t.encodeWithSpecialTokens("<s>ab")).containsExactly(7, 6);
  }

  @Test
  void byteFallbackCoversMissingCharacters(@TempDir Path dir) throws IOException {
    HuggingFaceTokenizer t = write(dir, "first", true);
    // € is E2 82 AC; "c" has neither a piece nor all its bytes, so it is UNK.
    assertThat(t.encode("a€c")).containsExactly(4, 8, 9, 10, 0);
    assertThat(t.tokenType(8)).isEqualTo(TokenType.BYTE);
    assertThat(t.decode(new int[] {4, 8, 9, 10})).isEqualTo("a€");
  }
}
