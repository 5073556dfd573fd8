package dev.longctx.engine.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JsonTest {

  @Test
  void parsesScalars() {
    assertThat(Json.parse("true")).isEqualTo(true);
    assertThat(Json.parse("false")).isEqualTo(false);
    assertThat(Json.parse("null")).isNull();
    assertThat(Json.parse(" \"x\" ")).isEqualTo("x");
  }

  @Test
  void integersBecomeLongsAndHugeIntegersBigIntegers() {
    assertThat(Json.parse("0")).isEqualTo(0L);
    assertThat(Json.parse("-17")).isEqualTo(-17L);
    assertThat(Json.parse("9223372036854775807")).isEqualTo(Long.MAX_VALUE);
    assertThat(Json.parse("-9223372036854775808")).isEqualTo(Long.MIN_VALUE);
    // tokenizer_config.json's model_max_length is written like this.
    assertThat(Json.parse("1000000000000000019884624838656"))
        .isEqualTo(new BigInteger("1000000000000000019884624838656"));
  }

  @Test
  void fractionsAndExponentsBecomeDoubles() {
    assertThat(Json.parse("1.5")).isEqualTo(1.5);
    assertThat(Json.parse("-0.0")).isEqualTo(-0.0);
    assertThat(Json.parse("1e-06")).isEqualTo(1e-6);
    assertThat(Json.parse("10000.0")).isEqualTo(10000.0);
    assertThat(Json.parse("2E+3")).isEqualTo(2000.0);
  }

  @Test
  void decodesAllEscapes() {
    assertThat(Json.parse("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\""))
        .isEqualTo("a\"b\\c/d\be\ff\ng\rh\ti");
    assertThat(Json.parse("\"\\u2581Once\\u00e9\"")).isEqualTo("\u2581Once\u00e9");
  }

  @Test
  void joinsSurrogatePairEscapesIntoOneCodePoint() {
    String s = (String) Json.parse("\"\\ud83e\\udd99 \\uD83D\\uDE01\"");
    assertThat(s).isEqualTo("🦙 😁");
    assertThat(s.codePointAt(0)).isEqualTo(0x1F999);
  }

  @Test
  void keepsRawNonAsciiCharactersAsIs() {
    assertThat(Json.parse("\"Ġ▁我想🚀\"")).isEqualTo("Ġ▁我想🚀");
  }

  @Test
  void parsesNestedStructuresInDocumentOrder() {
    Object v =
        Json.parse("{\"b\": [1, {\"c\": [[], {}]}, \"x\"], \"a\": null, \"z\": {\"y\": true}}");
    assertThat(v).isInstanceOf(Map.class);
    @SuppressWarnings("unchecked")
    Map<String, Object> m = (Map<String, Object>) v;
    assertThat(m.keySet()).containsExactly("b", "a", "z");
    assertThat(m).containsEntry("a", null);
    List<?> b = (List<?>) m.get("b");
    assertThat(b).hasSize(3);
    assertThat(b.get(0)).isEqualTo(1L);
    assertThat(b.get(1)).isEqualTo(Map.of("c", List.of(List.of(), Map.of())));
    assertThat(m.get("z")).isEqualTo(Map.of("y", true));
  }

  @Test
  void resultIsUnmodifiable() {
    @SuppressWarnings("unchecked")
    Map<String, Object> m = (Map<String, Object>) Json.parse("{\"a\": [1]}");
    assertThatThrownBy(() -> m.put("b", 1)).isInstanceOf(UnsupportedOperationException.class);
    assertThatThrownBy(() -> ((List<Object>) m.get("a")).add(2L))
        .isInstanceOf(UnsupportedOperationException.class);
  }

  @ParameterizedTest(name = "[{index}] {0}")
  @CsvSource(
      delimiter = '|',
      quoteCharacter = '`',
      value = {
        "`{\"a\": 1,}`|    1|  9| expected a string key",
        "`[1, 2,]`|        1|  7| expected a value",
        "`[1 2]`|          1|  4| expected ',' or ']'",
        "`{\"a\" 1}`|      1|  6| expected ':'",
        "`01`|             1|  1| leading zero",
        "`1.`|             1|  3| after the decimal point",
        "`1e`|             1|  3| exponent",
        "`-`|              1|  2| expected a digit",
        "`NaN`|            1|  1| expected a value",
        "`tru`|            1|  1| expected a value",
        "`'a'`|            1|  1| expected a value",
        "`\"abc`|          1|  1| unterminated string",
        "`\"a\\x\"`|       1|  3| invalid escape",
        "`\"\\u12G4\"`|    1|  6| invalid hex digit",
        "`\"\\ud83e\"`|    1|  2| high surrogate",
        "`\"\\ud83e\\u0041\"`|1|8| not followed by a low surrogate",
        "`\"\\udd99\"`|    1|  2| low surrogate escape without",
        "`{\"a\":1,\"a\":2}`|1| 8| duplicate key",
        "`[1] [2]`|        1|  5| after the document's value",
        "``|               1|  1| unexpected end of input",
        "`[1,\n  {]`|      2|  4| expected a string key",
        "`// c\n1`|        1|  1| expected a value",
      })
  void rejectsMalformedInputWithLineAndColumn(
      String json, int line, int column, String reasonFragment) {
    JsonParseException e = catchThrowableOfType(JsonParseException.class, () -> Json.parse(json));
    assertThat(e).as("no exception for %s", json).isNotNull();
    assertThat(e.line()).isEqualTo(line);
    assertThat(e.column()).isEqualTo(column);
    assertThat(e.getMessage()).contains(reasonFragment).contains("line " + line);
  }

  @Test
  void offsetCountsFromStartOfText() {
    JsonParseException e =
        catchThrowableOfType(JsonParseException.class, () -> Json.parse("{\n\"a\": [1, 2, x]}"));
    assertThat(e.offset()).isEqualTo(14);
    assertThat(e.line()).isEqualTo(2);
    assertThat(e.column()).isEqualTo(13);
  }

  @Test
  void rejectsRawControlCharactersInStrings() {
    assertThatThrownBy(() -> Json.parse("\"a\tb\""))
        .isInstanceOf(JsonParseException.class)
        .hasMessageContaining("U+0009");
  }

  @Test
  void deepNestingFailsCleanlyInsteadOfOverflowingTheStack() {
    String deep = "[".repeat(100_000);
    assertThatThrownBy(() -> Json.parse(deep))
        .isInstanceOf(JsonParseException.class)
        .hasMessageContaining("nesting deeper than");
    String ok = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
    assertThat(Json.parse(ok)).isInstanceOf(List.class);
  }

  @Test
  void readsUtf8FilesWithOptionalByteOrderMark(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("c.json");
    Files.write(
        f, "\uFEFF{\"rope_theta\": 10000.0, \"name\": \"é\"}".getBytes(StandardCharsets.UTF_8));
    assertThat(Json.parse(f)).isEqualTo(Map.of("rope_theta", 10000.0, "name", "é"));
  }

  @Test
  void rejectsInvalidUtf8Files(@TempDir Path dir) throws Exception {
    Path f = dir.resolve("bad.json");
    Files.write(f, new byte[] {'"', (byte) 0xC3, '"'});
    assertThatThrownBy(() -> Json.parse(f)).hasMessageContaining("not valid UTF-8");
  }
}
