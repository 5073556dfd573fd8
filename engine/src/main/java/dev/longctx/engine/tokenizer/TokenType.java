package dev.longctx.engine.tokenizer;

/**
 * A token's role, with the numeric codes GGUF stores in {@code tokenizer.ggml.token_type} (which
 * are SentencePiece's piece types plus one). Only {@link #NORMAL} and {@link #USER_DEFINED} tokens
 * can come out of encoding plain text; {@link #CONTROL} tokens only from their exact string in
 * {@link Tokenizer#encodeWithSpecialTokens}.
 */
public enum TokenType {
  UNDEFINED(0),
  NORMAL(1),
  UNKNOWN(2),
  CONTROL(3),
  USER_DEFINED(4),
  UNUSED(5),
  BYTE(6);

  private final int code;

  TokenType(int code) {
    this.code = code;
  }

  /** The GGUF code. */
  public int code() {
    return code;
  }

  /** The type for a GGUF code; unknown codes read as {@link #NORMAL}, as llama.cpp does. */
  public static TokenType ofCode(int code) {
    return code >= 0 && code < values().length ? values()[code] : NORMAL;
  }
}
