package dev.longctx.engine.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What every tokenizer here shares: the id ↔ string tables, token types, special-token splitting,
 * BOS/EOS/end-of-generation ids and byte-wise decoding. Subclasses supply the algorithm for plain
 * text ({@link #encodeText}) and the bytes of one token ({@link #pieceBytes}).
 */
abstract class VocabularyTokenizer implements Tokenizer {

  /**
   * Texts of tokens that end a turn in the common chat formats; llama.cpp treats them as
   * end-of-generation the same way, since GGUF files often name only one EOS id.
   */
  private static final Set<String> END_OF_TURN_TEXTS =
      Set.of(
          "<|eot_id|>",
          "<|eom_id|>",
          "<|im_end|>",
          "<|end|>",
          "<|endoftext|>",
          "<|end_of_text|>",
          "<end_of_turn>",
          "<EOT>");

  protected final String[] tokens;
  protected final TokenType[] types;
  protected final Map<String, Integer> idByText;
  private final SpecialTokenMatcher specials;
  private final int bos;
  private final int eos;
  private final boolean addBos;
  private final boolean[] endOfGeneration;

  VocabularyTokenizer(
      List<String> tokenList, TokenType[] types, int bos, int eos, int[] eotIds, boolean addBos) {
    int n = tokenList.size();
    this.tokens = tokenList.toArray(String[]::new);
    this.types = types;
    this.idByText = new HashMap<>(n * 2);
    Map<String, Integer> special = new LinkedHashMap<>();
    for (int i = 0; i < n; i++) {
      // Duplicates exist in some vocabularies; the lowest id is the canonical one.
      idByText.putIfAbsent(tokens[i], i);
      if (types[i] == TokenType.CONTROL || types[i] == TokenType.USER_DEFINED) {
        special.putIfAbsent(tokens[i], i);
      }
    }
    this.specials = new SpecialTokenMatcher(special);
    this.bos = bos;
    this.eos = eos;
    this.addBos = addBos && bos >= 0;
    this.endOfGeneration = new boolean[n];
    if (eos >= 0) {
      endOfGeneration[eos] = true;
    }
    for (int id : eotIds) {
      endOfGeneration[id] = true;
    }
    for (String t : END_OF_TURN_TEXTS) {
      Integer id = idByText.get(t);
      if (id != null && types[id] == TokenType.CONTROL) {
        endOfGeneration[id] = true;
      }
    }
  }

  /**
   * Encodes a run of plain text that either begins the input ({@code atInputStart}) or follows a
   * special token.
   */
  protected abstract void encodeText(String text, boolean atInputStart, IntList out);

  /** The bytes a NORMAL, BYTE or USER_DEFINED token stands for. */
  protected abstract byte[] pieceBytes(int id);

  /**
   * Sequence-level decoding after the tokens' bytes are joined, e.g. dropping the one leading space
   * of a SentencePiece dummy prefix.
   */
  protected String finishDecode(String text) {
    return text;
  }

  @Override
  public int[] encode(String text) {
    IntList out = new IntList(text.length() / 3 + 4);
    if (!text.isEmpty()) {
      encodeText(text, true, out);
    }
    return out.toArray();
  }

  @Override
  public int[] encodeWithSpecialTokens(String text) {
    IntList out = new IntList(text.length() / 3 + 4);
    specials.split(
        text,
        new SpecialTokenMatcher.Sink() {
          @Override
          public void text(String run, boolean atInputStart) {
            encodeText(run, atInputStart, out);
          }

          @Override
          public void special(int id) {
            out.add(id);
          }
        });
    return out.toArray();
  }

  @Override
  public byte[] tokenBytes(int id) {
    checkId(id);
    return switch (types[id]) {
      case CONTROL, UNKNOWN, UNUSED, UNDEFINED -> new byte[0];
      default -> pieceBytes(id);
    };
  }

  /**
   * Decodes ids as one sequence from the start of a text: special tokens are left out, invalid
   * UTF-8 becomes U+FFFD, and for SentencePiece vocabularies with a dummy prefix the one leading
   * space it produced is removed. To decode a continuation, stream {@link #tokenBytes} through a
   * {@link Utf8StreamDecoder} instead.
   */
  @Override
  public String decode(int[] ids) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
    for (int id : ids) {
      out.writeBytes(tokenBytes(id));
    }
    return finishDecode(out.toString(StandardCharsets.UTF_8));
  }

  @Override
  public String tokenText(int id) {
    checkId(id);
    return tokens[id];
  }

  @Override
  public int tokenId(String text) {
    Integer id = idByText.get(text);
    return id == null ? -1 : id;
  }

  /** The token's type. */
  public TokenType tokenType(int id) {
    checkId(id);
    return types[id];
  }

  @Override
  public int vocabSize() {
    return tokens.length;
  }

  @Override
  public int bosId() {
    return bos;
  }

  @Override
  public int eosId() {
    return eos;
  }

  @Override
  public boolean addBos() {
    return addBos;
  }

  @Override
  public boolean isEndOfGeneration(int id) {
    return id >= 0 && id < endOfGeneration.length && endOfGeneration[id];
  }

  private void checkId(int id) {
    if (id < 0 || id >= tokens.length) {
      throw new IllegalArgumentException(
          "token id " + id + " outside vocabulary of " + tokens.length);
    }
  }
}
