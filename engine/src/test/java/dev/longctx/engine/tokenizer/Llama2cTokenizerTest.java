package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Llama2cTokenizerTest {

  private static Path tok512() {
    return TestData.file("models/stories260K/tok512.bin");
  }

  private static String text(String name) throws IOException {
    return Files.readString(TestData.file("text/" + name));
  }

  @Test
  void tok512EncodesOnceUponATimeAsLlama2cDoes() {
    Tokenizer t = Tokenizers.fromLlama2c(tok512(), 512);
    assertThat(t.encode("Once upon a time")).containsExactly(403, 407, 261, 378);
    assertThat(t.encodePrompt("Once upon a time")).containsExactly(1, 403, 407, 261, 378);
    assertThat(t.bosId()).isEqualTo(1);
    assertThat(t.eosId()).isEqualTo(2);
    assertThat(t.addBos()).isTrue();
    assertThat(t.isEndOfGeneration(2)).isTrue();
    assertThat(t.isEndOfGeneration(1)).isFalse();
    assertThat(t.decode(new int[] {1, 403, 407, 261, 378})).isEqualTo("Once upon a time");
  }

  @Test
  void vocabularySizeIsInferredFromTheFileWhenNotGiven() {
    Tokenizer t = Tokenizers.fromLlama2c(tok512());
    assertThat(t.vocabSize()).isEqualTo(512);
    assertThat(t.tokenText(3)).isEqualTo("<0x00>");
    assertThat(t.tokenText(258)).isEqualTo("<0xFF>");
  }

  @Test
  void emptyTextHasNoTokensNotEvenTheDummyPrefix() {
    assertThat(Tokenizers.fromLlama2c(tok512()).encode("")).isEmpty();
  }

  @Test
  void llama2TokenizerBinEncodesOnceUponATime() {
    Tokenizer t = Tokenizers.fromLlama2c(TestData.file("tokenizers/llama2/tokenizer.bin"), 32000);
    assertThat(t.encode("Once upon a time")).containsExactly(9038, 2501, 263, 931);
  }

  @Test
  void llama2cAndGgufCopiesOfTheLlama2VocabularyEncodeLongTextIdentically() throws IOException {
    Tokenizer bin = Tokenizers.fromLlama2c(TestData.file("tokenizers/llama2/tokenizer.bin"));
    Tokenizer gguf;
    try (GgufFile g =
        GgufFile.open(TestData.file("tokenizers/gguf-vocab/ggml-vocab-llama-spm.gguf"))) {
      gguf = Tokenizers.fromGguf(g);
    }
    String alice = text("pg11_alice.txt").substring(0, 40_000);
    int[] a = bin.encode(alice);
    assertThat(a).isEqualTo(gguf.encode(alice));
    assertThat(bin.decode(a)).isEqualTo(alice);
  }

  @Test
  void longRealTextRoundTrips() throws IOException {
    Tokenizer t = Tokenizers.fromLlama2c(tok512(), 512);
    for (String name :
        new String[] {"tinystories_train_excerpt.txt", "pg11_alice.txt", "tinyshakespeare.txt"}) {
      String s = text(name);
      s = s.substring(0, Math.min(s.length(), 200_000));
      assertThat(t.decode(t.encode(s))).as(name).isEqualTo(s);
    }
  }

  @Test
  void charactersMissingFromTok512FallBackToBytesAndStreamBackWhole() {
    Tokenizer t = Tokenizers.fromLlama2c(tok512(), 512);
    String text = "我想在apple工作 🦙 é";
    int[] ids = t.encode(text);
    // 我 is E6 88 91: byte tokens are byte + 3.
    assertThat(Arrays.copyOfRange(ids, 1, 4)).containsExactly(0xE6 + 3, 0x88 + 3, 0x91 + 3);
    Utf8StreamDecoder stream = new Utf8StreamDecoder();
    StringBuilder out = new StringBuilder();
    for (int id : ids) {
      String piece = stream.accept(t, id);
      assertThat(piece).doesNotContain("\uFFFD");
      out.append(piece);
    }
    out.append(stream.flush());
    // Streaming keeps the dummy-prefix space; decode() drops it.
    assertThat(out.toString()).isEqualTo(" " + text);
    assertThat(t.decode(ids)).isEqualTo(text);
  }

  @Test
  void encodesTheWholeTinyStoriesExcerptWellUnderASecond() throws IOException {
    Tokenizer t = Tokenizers.fromLlama2c(tok512(), 512);
    String s = text("tinystories_train_excerpt.txt");
    t.encode(s.substring(0, 20_000)); // warm up the JIT
    long start = System.nanoTime();
    int[] ids = t.encode(s);
    long ms = (System.nanoTime() - start) / 1_000_000;
    System.out.printf("tok512: %d chars -> %d tokens in %d ms%n", s.length(), ids.length, ms);
    // A direct transcription of llama2.c's O(n²) encode loop gives these same 100,707 ids (the
    // data README's "about 94K" is a rough figure).
    assertThat(ids.length).isEqualTo(100_707);
    assertThat(ms).isLessThan(1000);
  }

  @Test
  void truncatedFileNamesFileOffsetAndToken(@TempDir Path dir) throws IOException {
    byte[] full = Files.readAllBytes(tok512());
    Path cut = dir.resolve("tok512-truncated.bin");
    Files.write(cut, Arrays.copyOf(full, 3000));
    assertThatThrownBy(() -> Tokenizers.fromLlama2c(cut, 512))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(cut.toString())
        .hasMessageContaining("offset ")
        .hasMessageContaining("truncated in token")
        .hasMessageContaining("of 512");
    // Without a size, a cut inside a token entry is still detected.
    assertThatThrownBy(() -> Tokenizers.fromLlama2c(cut))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("truncated in token");
  }

  @Test
  void garbageHeaderAndBadLengthsAreRejected(@TempDir Path dir) throws IOException {
    Path empty = dir.resolve("empty.bin");
    Files.write(empty, new byte[2]);
    assertThatThrownBy(() -> Tokenizers.fromLlama2c(empty))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("offset 0");
    byte[] bad = Files.readAllBytes(tok512()).clone();
    // Token 0's length field (after max_token_length and its score) set to 1000 > max 7.
    bad[8] = (byte) 0xE8;
    bad[9] = 0x03;
    Path f = dir.resolve("bad-length.bin");
    Files.write(f, bad);
    assertThatThrownBy(() -> Tokenizers.fromLlama2c(f, 512))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("offset 8")
        .hasMessageContaining("token 0 has length 1000");
  }
}
