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
import java.util.stream.Collectors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * llama.cpp's tokenizer test vectors: {@code .inp} holds test strings, each followed by a line
 * {@code __ggml_vocab_test__}; line i of {@code .out} holds the ids of string i (no BOS).
 */
class GgufTokenizerVectorsTest {

  private static final String SEPARATOR = "\n__ggml_vocab_test__\n";

  record Case(String text, int[] ids) {}

  static List<Case> cases(Path gguf) throws IOException {
    String inp = Files.readString(Path.of(gguf + ".inp"));
    List<String> out = Files.readAllLines(Path.of(gguf + ".out"));
    String[] texts = inp.split(SEPARATOR, -1);
    // The file ends with a separator, so the last split part is empty.
    assertThat(texts).hasSize(out.size() + 1);
    List<Case> cases = new ArrayList<>();
    for (int i = 0; i < out.size(); i++) {
      String line = out.get(i).trim();
      int[] ids =
          line.isEmpty()
              ? new int[0]
              : Arrays.stream(line.split(" ")).mapToInt(Integer::parseInt).toArray();
      cases.add(new Case(texts[i], ids));
    }
    return cases;
  }

  @ParameterizedTest
  @ValueSource(
      strings = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"})
  void everyTestStringEncodesToTheReferenceIdsAndDecodesBack(String name) throws IOException {
    Path path = TestData.file("tokenizers/gguf-vocab/" + name);
    Tokenizer t;
    try (GgufFile gguf = GgufFile.open(path)) {
      t = Tokenizers.fromGguf(gguf);
    }
    List<Case> cases = cases(path);
    assertThat(cases).hasSize(46);
    List<String> failures = new ArrayList<>();
    for (Case c : cases) {
      int[] got = t.encode(c.text());
      if (!Arrays.equals(got, c.ids())) {
        failures.add(
            "%s: expected %s got %s"
                .formatted(quote(c.text()), Arrays.toString(c.ids()), Arrays.toString(got)));
      }
      if (!t.decode(got).equals(c.text())) {
        failures.add("%s: decodes to %s".formatted(quote(c.text()), quote(t.decode(got))));
      }
    }
    System.out.printf(
        "%s: %d/%d test strings encode to the reference ids%n",
        name,
        cases.size() - failures.stream().filter(f -> f.contains("expected")).count(),
        cases.size());
    assertThat(failures).isEmpty();
  }

  private static String quote(String s) {
    return s.codePoints()
        .mapToObj(cp -> cp < 0x20 ? "\\x%02x".formatted(cp) : Character.toString(cp))
        .collect(Collectors.joining("", "\"", "\""));
  }
}
