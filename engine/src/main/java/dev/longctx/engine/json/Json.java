package dev.longctx.engine.json;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small, strict RFC 8259 JSON parser producing plain Java values.
 *
 * <p>Mapping: object → unmodifiable {@code Map<String, Object>} in document order; array →
 * unmodifiable {@code List<Object>}; string → {@code String}; {@code true}/{@code false} → {@code
 * Boolean}; {@code null} → {@code null}; a number without fraction or exponent → {@code Long}, or
 * {@code BigInteger} when it does not fit (Hugging Face configs hold values like {@code 1e30}
 * written out as integers); any other number → {@code Double}.
 *
 * <p>Strictness is deliberate, since these files come from other tools and a silently misread
 * config is worse than a clear error: no comments, trailing commas, single quotes, NaN, leading
 * zeros, unescaped control characters, duplicate keys or unpaired surrogate escapes; one value per
 * document. Nesting is limited to {@value #MAX_DEPTH} levels so that hostile input fails with a
 * {@link JsonParseException} instead of a {@code StackOverflowError}.
 */
public final class Json {

  /** Deepest nesting of arrays and objects accepted. */
  public static final int MAX_DEPTH = 512;

  private final String text;
  private int pos;
  private int depth;

  private Json(String text) {
    this.text = text;
  }

  /** Parses one JSON document. */
  public static Object parse(String text) {
    Json p = new Json(text);
    p.skipWhitespace();
    Object value = p.readValue();
    p.skipWhitespace();
    if (p.pos < text.length()) {
      throw p.error("unexpected " + p.describe(p.pos) + " after the document's value", p.pos);
    }
    return value;
  }

  /**
   * Reads and parses a UTF-8 file. Malformed UTF-8 is reported as an {@link IOException} (the
   * position is then not meaningful as a character offset).
   */
  public static Object parse(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    String text;
    try {
      text =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(bytes))
              .toString();
    } catch (CharacterCodingException e) {
      throw new IOException(file + ": not valid UTF-8", e);
    }
    // A UTF-8 byte order mark is not JSON, but some Windows tools write one; it carries no data.
    if (text.startsWith("\uFEFF")) {
      text = text.substring(1);
    }
    return parse(text);
  }

  private Object readValue() {
    if (pos >= text.length()) {
      throw error("unexpected end of input, expected a value", pos);
    }
    char c = text.charAt(pos);
    return switch (c) {
      case '{' -> readObject();
      case '[' -> readArray();
      case '"' -> readString();
      case 't' -> readLiteral("true", Boolean.TRUE);
      case 'f' -> readLiteral("false", Boolean.FALSE);
      case 'n' -> readLiteral("null", null);
      default -> {
        if (c == '-' || (c >= '0' && c <= '9')) {
          yield readNumber();
        }
        throw error("unexpected " + describe(pos) + ", expected a value", pos);
      }
    };
  }

  private Map<String, Object> readObject() {
    int start = pos;
    enter(start);
    pos++; // '{'
    Map<String, Object> map = new LinkedHashMap<>();
    skipWhitespace();
    if (peek() == '}') {
      pos++;
      depth--;
      return Collections.unmodifiableMap(map);
    }
    while (true) {
      skipWhitespace();
      if (peek() != '"') {
        throw error("expected a string key, found " + describe(pos), pos);
      }
      int keyPos = pos;
      String key = readString();
      if (map.containsKey(key)) {
        throw error("duplicate key \"" + key + "\"", keyPos);
      }
      skipWhitespace();
      expect(':');
      skipWhitespace();
      map.put(key, readValue());
      skipWhitespace();
      char c = peek();
      if (c == ',') {
        pos++;
      } else if (c == '}') {
        pos++;
        depth--;
        return Collections.unmodifiableMap(map);
      } else {
        throw error("expected ',' or '}' in the object opened at offset " + start, pos);
      }
    }
  }

  private List<Object> readArray() {
    int start = pos;
    enter(start);
    pos++; // '['
    List<Object> list = new ArrayList<>();
    skipWhitespace();
    if (peek() == ']') {
      pos++;
      depth--;
      return Collections.unmodifiableList(list);
    }
    while (true) {
      skipWhitespace();
      list.add(readValue());
      skipWhitespace();
      char c = peek();
      if (c == ',') {
        pos++;
      } else if (c == ']') {
        pos++;
        depth--;
        return Collections.unmodifiableList(list);
      } else {
        throw error("expected ',' or ']' in the array opened at offset " + start, pos);
      }
    }
  }

  private void enter(int at) {
    if (++depth > MAX_DEPTH) {
      throw error("nesting deeper than " + MAX_DEPTH + " levels", at);
    }
  }

  private String readString() {
    int start = pos;
    pos++; // opening quote
    StringBuilder sb = null; // only allocated once an escape is seen
    int runStart = pos;
    while (true) {
      if (pos >= text.length()) {
        throw error("unterminated string", start);
      }
      char c = text.charAt(pos);
      if (c == '"') {
        String s =
            sb == null ? text.substring(runStart, pos) : sb.append(text, runStart, pos).toString();
        pos++;
        return s;
      }
      if (c < 0x20) {
        throw error("unescaped control character U+%04X in string".formatted((int) c), pos);
      }
      if (c != '\\') {
        pos++;
        continue;
      }
      if (sb == null) {
        sb = new StringBuilder();
      }
      sb.append(text, runStart, pos);
      int escPos = pos;
      pos++;
      if (pos >= text.length()) {
        throw error("unterminated string", start);
      }
      char e = text.charAt(pos++);
      switch (e) {
        case '"' -> sb.append('"');
        case '\\' -> sb.append('\\');
        case '/' -> sb.append('/');
        case 'b' -> sb.append('\b');
        case 'f' -> sb.append('\f');
        case 'n' -> sb.append('\n');
        case 'r' -> sb.append('\r');
        case 't' -> sb.append('\t');
        case 'u' -> {
          char u = readHex4(escPos);
          if (Character.isHighSurrogate(u)) {
            // Characters outside the BMP are written as two escapes; both halves must be there.
            if (pos + 1 < text.length()
                && text.charAt(pos) == '\\'
                && text.charAt(pos + 1) == 'u') {
              int lowPos = pos;
              pos += 2;
              char low = readHex4(lowPos);
              if (!Character.isLowSurrogate(low)) {
                throw error("high surrogate escape not followed by a low surrogate", lowPos);
              }
              sb.append(u).append(low);
            } else {
              throw error("high surrogate escape not followed by a low surrogate", escPos);
            }
          } else if (Character.isLowSurrogate(u)) {
            throw error("low surrogate escape without a preceding high surrogate", escPos);
          } else {
            sb.append(u);
          }
        }
        default -> throw error("invalid escape '\\" + e + "'", escPos);
      }
      runStart = pos;
    }
  }

  /** Reads the four hex digits after {@code \\u}; {@code escPos} is where the escape began. */
  private char readHex4(int escPos) {
    if (pos + 4 > text.length()) {
      throw error("truncated \\u escape", escPos);
    }
    int v = 0;
    for (int i = 0; i < 4; i++) {
      int d = Character.digit(text.charAt(pos + i), 16);
      if (d < 0) {
        throw error("invalid hex digit in \\u escape", pos + i);
      }
      v = (v << 4) | d;
    }
    pos += 4;
    return (char) v;
  }

  private Object readNumber() {
    int start = pos;
    boolean integral = true;
    if (peek() == '-') {
      pos++;
    }
    char c = peek();
    if (c == '0') {
      pos++;
      if (isDigit(peek())) {
        throw error("leading zero in number", start);
      }
    } else if (isDigit(c)) {
      skipDigits();
    } else {
      throw error("expected a digit, found " + describe(pos), pos);
    }
    if (peek() == '.') {
      integral = false;
      pos++;
      if (!isDigit(peek())) {
        throw error("expected a digit after the decimal point, found " + describe(pos), pos);
      }
      skipDigits();
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      pos++;
      if (peek() == '+' || peek() == '-') {
        pos++;
      }
      if (!isDigit(peek())) {
        throw error("expected a digit in the exponent, found " + describe(pos), pos);
      }
      skipDigits();
    }
    String literal = text.substring(start, pos);
    if (integral) {
      // Up to 18 digits always fits a long; longer literals take the exact slow path.
      if (literal.length() <= 18) {
        return Long.parseLong(literal);
      }
      BigInteger big = new BigInteger(literal);
      return big.bitLength() < 64 ? (Object) big.longValue() : big;
    }
    double d = Double.parseDouble(literal);
    if (Double.isInfinite(d)) {
      throw error("number out of double range", start);
    }
    return d;
  }

  private void skipDigits() {
    while (isDigit(peek())) {
      pos++;
    }
  }

  private static boolean isDigit(char c) {
    return c >= '0' && c <= '9';
  }

  private Object readLiteral(String word, Object value) {
    if (!text.startsWith(word, pos)) {
      throw error("unexpected " + describe(pos) + ", expected a value", pos);
    }
    pos += word.length();
    return value;
  }

  private void expect(char c) {
    if (peek() != c) {
      throw error("expected '" + c + "', found " + describe(pos), pos);
    }
    pos++;
  }

  /** The current character, or U+0000 at the end (never valid where a token is expected). */
  private char peek() {
    return pos < text.length() ? text.charAt(pos) : '\0';
  }

  private void skipWhitespace() {
    while (pos < text.length()) {
      char c = text.charAt(pos);
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        pos++;
      } else {
        break;
      }
    }
  }

  private String describe(int at) {
    if (at >= text.length()) {
      return "end of input";
    }
    char c = text.charAt(at);
    return c >= 0x20 && c < 0x7f ? "'" + c + "'" : "character U+%04X".formatted((int) c);
  }

  private JsonParseException error(String reason, int at) {
    int line = 1;
    int lineStart = 0;
    int end = Math.min(at, text.length());
    for (int i = 0; i < end; i++) {
      if (text.charAt(i) == '\n') {
        line++;
        lineStart = i + 1;
      }
    }
    return new JsonParseException(reason, at, line, at - lineStart + 1);
  }
}
