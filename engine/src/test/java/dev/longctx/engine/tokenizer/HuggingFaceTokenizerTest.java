package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HuggingFaceTokenizerTest {

  private static Path dir() {
    return TestData.file("models/tinystories-656k");
  }

  @Test
  void tinyStoriesEncodesLikeTheTokenizersLibraryWithBos() {
    Tokenizer t = Tokenizers.fromHuggingFace(dir());
    String text = "Once upon a time, there was a little girl named Lily.";
    // BOS comes from the TemplateProcessing post-processor: addBos() and encodePrompt add it.
    assertThat(t.addBos()).isTrue();
    assertThat(t.bosId()).isEqualTo(1);
    assertThat(t.encodePrompt(text)).containsExactly(1, 80, 147, 201, 282, 215, 286, 598, 629, 10);
    assertThat(t.encode(text)).containsExactly(80, 147, 201, 282, 215, 286, 598, 629, 10);
    assertThat(t.decode(t.encodePrompt(text))).isEqualTo(text);
  }

  @Test
  void specialTokensComeFromTheConfigAndOnlyFromEncodeWithSpecialTokens() {
    Tokenizer t = Tokenizers.fromHuggingFace(dir());
    assertThat(t.eosId()).isEqualTo(2);
    assertThat(t.tokenText(2)).isEqualTo("<|end_story|>");
    assertThat(t.isEndOfGeneration(2)).isTrue();
    int[] plain = t.encode("Once upon a time");
    int[] withSpecials = t.encodeWithSpecialTokens("<|start_story|>Once upon a time<|end_story|>");
    assertThat(withSpecials).startsWith(1).endsWith(2).hasSize(plain.length + 2);
    assertThat(java.util.Arrays.copyOfRange(withSpecials, 1, plain.length + 1)).isEqualTo(plain);
    assertThat(t.encode("<|end_story|>")).doesNotContain(1, 2);
    assertThat(t.tokenBytes(2)).isEmpty();
  }

  @Test
  void tinyStoriesTextRoundTripsAndUnknownCharactersBecomeOneFusedUnk() throws IOException {
    Tokenizer t = Tokenizers.fromHuggingFace(dir());
    String s = Files.readString(TestData.file("text/tinystories_train_excerpt.txt"));
    // The 2048-token vocabulary has no byte pieces, so characters outside it cannot come back;
    // keep the lines made only of characters it has.
    StringBuilder known = new StringBuilder();
    for (String line : s.split("\n")) {
      if (line.codePoints().allMatch(c -> c == ' ' || t.tokenId(Character.toString(c)) >= 0)) {
        known.append(line).append('\n');
      }
    }
    assertThat(known.length()).isGreaterThan(150_000);
    long start = System.nanoTime();
    int[] ids = t.encode(known.toString());
    System.out.printf(
        "tinystories-656k: %d chars -> %d tokens in %d ms%n",
        known.length(), ids.length, (System.nanoTime() - start) / 1_000_000);
    assertThat(t.decode(ids)).isEqualTo(known.toString());
    int[] unknown = t.encode("a 我想 b");
    assertThat(java.util.Arrays.stream(unknown).filter(id -> id == 0)).hasSize(1);
    assertThat(t.decode(unknown)).isEqualTo("a  b");
  }

  @Test
  void badJsonNamesFileLineAndOffset(@TempDir Path tmp) throws IOException {
    String json = Files.readString(dir().resolve("tokenizer.json"));
    Files.writeString(tmp.resolve("tokenizer.json"), json.substring(0, 500) + "}");
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(tmp))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(tmp.resolve("tokenizer.json").toString())
        .hasMessageContaining("offset 500")
        .hasMessageContaining("invalid JSON at line");
  }

  @Test
  void unsupportedStagesAndBadFieldsNameTheirKey(@TempDir Path tmp) throws IOException {
    String json = Files.readString(dir().resolve("tokenizer.json"));
    Path f = tmp.resolve("tokenizer.json");
    Files.writeString(f, json.replace("\"type\": \"BPE\"", "\"type\": \"Unigram\""));
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(f))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key 'model.type'")
        .hasMessageContaining("Unigram");
    Files.writeString(f, json.replace("\"type\": \"Prepend\"", "\"type\": \"Precompiled\""));
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(f))
        .hasMessageContaining("key 'normalizer.normalizers[0].type'");
    Files.writeString(f, json.replace("\"e \u2581\",", "\"e \u2581 x\","));
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(f))
        .hasMessageContaining("key 'model.merges[0]'");
    Files.writeString(f, json.replace("\"e \u2581\",", "\"e Q\\u00e9\","));
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(f))
        .hasMessageContaining("key 'model.merges[0]'")
        .hasMessageContaining("missing from the vocabulary");
    assertThatThrownBy(() -> Tokenizers.fromHuggingFace(tmp.resolve("nothing-here")))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("no tokenizer.json");
  }

  @Test
  void mergesInPairFormEncodeTheSameAsStringForm(@TempDir Path tmp) throws IOException {
    String json = Files.readString(dir().resolve("tokenizer.json"));
    // Rewrite every "a b" merge as ["a", "b"] (tokenizers >= 0.20 writes this form).
    int mergesAt = json.indexOf("\"merges\"");
    String pairs =
        json.substring(0, mergesAt)
            + java.util.regex.Pattern.compile(
                    "(?<=\\s)\"([^\"\\\\ ]+) ([^\"\\\\ ]+)\"(?=[,\\s\\]])")
                .matcher(json.substring(mergesAt))
                .replaceAll(
                    m ->
                        java.util.regex.Matcher.quoteReplacement(
                            "[\"" + m.group(1) + "\", \"" + m.group(2) + "\"]"));
    assertThat(pairs).contains("[\"e\", \"\u2581\"]");
    Files.writeString(tmp.resolve("tokenizer.json"), pairs);
    String text = "Once upon a time, there was a little girl named Lily.";
    assertThat(Tokenizers.fromHuggingFace(tmp).encode(text))
        .containsExactly(Tokenizers.fromHuggingFace(dir()).encode(text));
  }
}
