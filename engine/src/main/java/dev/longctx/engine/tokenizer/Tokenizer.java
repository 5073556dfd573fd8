package dev.longctx.engine.tokenizer;

/** Text ↔ token ids for one model's vocabulary. */
public interface Tokenizer {

  /**
   * Encodes plain text (no BOS added; special-token strings are treated as text), applying the
   * vocabulary's own normalization (for SentencePiece: the leading "▁" dummy prefix when the model
   * asks for it, spaces as "▁").
   */
  int[] encode(String text);

  /** Encodes text in which special-token strings such as {@code <|im_start|>} become their ids. */
  int[] encodeWithSpecialTokens(String text);

  /**
   * The raw bytes token {@code id} stands for, for streaming output: byte-fallback tokens give one
   * byte, "▁" gives a space, byte-level BPE tokens give their original bytes, special tokens give
   * nothing.
   */
  byte[] tokenBytes(int id);

  /** Decodes ids to text (special tokens are left out). */
  String decode(int[] ids);

  /** The token's string as stored in the vocabulary. */
  String tokenText(int id);

  int vocabSize();

  /** Beginning-of-sequence id, or -1 when the vocabulary has none. */
  int bosId();

  /** End-of-sequence id, or -1. */
  int eosId();

  /** Whether this vocabulary's models expect a BOS token before the prompt. */
  boolean addBos();

  /** Whether {@code id} ends a turn or the text (EOS, {@code <|eot_id|>}, {@code <|im_end|>}). */
  boolean isEndOfGeneration(int id);
}
