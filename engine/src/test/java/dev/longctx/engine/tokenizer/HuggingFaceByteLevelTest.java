package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The byte-level path of the {@code tokenizer.json} loader (Split + ByteLevel pre-tokenizers,
 * ByteLevel decoder, Sequence post-processor), checked on llama.cpp's test vectors: the GGUF
 * vocabularies are written out in the layout of the models' own {@code tokenizer.json} files, with
 * the original {@code (?i:...)} regexes.
 */
class HuggingFaceByteLevelTest {

  private static final String LLAMA3_REGEX =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
          + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  private static final String QWEN2_REGEX =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
          + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

  @ParameterizedTest
  @CsvSource({"ggml-vocab-llama-bpe.gguf, true", "ggml-vocab-qwen2.gguf, false"})
  void tokenizerJsonFromTheGgufVocabularyReproducesTheVectors(
      String name, boolean llama3, @TempDir Path dir) throws IOException {
    Path gguf = TestData.file("tokenizers/gguf-vocab/" + name);
    String[] tokens;
    int[] types;
    String[] merges;
    try (GgufFile g = GgufFile.open(gguf)) {
      tokens = g.getStringArray(GgufVocabulary.TOKENS);
      types = g.getIntArray(GgufVocabulary.TOKEN_TYPE);
      merges = g.getStringArray(GgufVocabulary.MERGES);
    }
    StringBuilder json = new StringBuilder(16 << 20);
    json.append("{\"version\": \"1.0\", \"added_tokens\": [");
    String sep = "";
    for (int i = 0; i < tokens.length; i++) {
      if (types[i] == 3 || types[i] == 4) {
        json.append(sep)
            .append("{\"id\": ")
            .append(i)
            .append(", \"content\": ")
            .append(quote(tokens[i]))
            .append(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,")
            .append(" \"normalized\": false, \"special\": ")
            .append(types[i] == 3)
            .append('}');
        sep = ", ";
      }
    }
    json.append("], \"normalizer\": ")
        .append(llama3 ? "null" : "{\"type\": \"NFC\"}")
        .append(", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [")
        .append("{\"type\": \"Split\", \"pattern\": {\"Regex\": ")
        .append(quote(llama3 ? LLAMA3_REGEX : QWEN2_REGEX))
        .append("}, \"behavior\": \"Isolated\", \"invert\": false}, ")
        .append("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false,")
        .append(" \"use_regex\": false}]}, \"post_processor\": ");
    String byteLevel =
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false,"
            + " \"use_regex\": true}";
    if (llama3) {
      json.append("{\"type\": \"Sequence\", \"processors\": [")
          .append(byteLevel)
          .append(", {\"type\": \"TemplateProcessing\", \"single\": [")
          .append("{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 0}},")
          .append(" {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [],")
          .append(" \"special_tokens\": {\"<|begin_of_text|>\": {\"id\": \"<|begin_of_text|>\",")
          .append(" \"ids\": [128000], \"tokens\": [\"<|begin_of_text|>\"]}}}]}");
    } else {
      json.append(byteLevel);
    }
    json.append(", \"decoder\": ")
        .append(byteLevel)
        .append(", \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null,")
        .append(" \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null,")
        .append(" \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": ")
        .append(llama3)
        .append(", \"vocab\": {");
    sep = "";
    for (int i = 0; i < tokens.length; i++) {
      if (types[i] == 1) {
        json.append(sep).append(quote(tokens[i])).append(": ").append(i);
        sep = ", ";
      }
    }
    json.append("}, \"merges\": [");
    sep = "";
    for (String m : merges) {
      json.append(sep).append(quote(m));
      sep = ", ";
    }
    json.append("]}}");
    Files.writeString(dir.resolve("tokenizer.json"), json);

    HuggingFaceTokenizer t = Tokenizers.fromHuggingFace(dir);
    assertThat(t.vocabSize()).isEqualTo(tokens.length);
    assertThat(t.addBos()).isEqualTo(llama3);
    List<String> failures = new ArrayList<>();
    List<GgufTokenizerVectorsTest.Case> cases = GgufTokenizerVectorsTest.cases(gguf);
    for (var c : cases) {
      int[] got = t.encode(c.text());
      if (!Arrays.equals(got, c.ids())) {
        failures.add(c.text() + ": " + Arrays.toString(got) + " != " + Arrays.toString(c.ids()));
      } else if (!t.decode(got).equals(c.text())) {
        failures.add(c.text() + " decodes to " + t.decode(got));
      }
    }
    System.out.printf(
        "tokenizer.json from %s: %d/%d test strings%n",
        name, cases.size() - failures.size(), cases.size());
    assertThat(failures).isEmpty();
    if (llama3) {
      assertThat(t.encodePrompt("Hello world")).containsExactly(128000, 9906, 1917);
    }
  }

  private static String quote(String s) {
    StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        default -> {
          if (c < 0x20) {
            sb.append("\\u%04x".formatted((int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    return sb.append('"').toString();
  }
}
