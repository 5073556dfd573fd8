package dev.longctx.engine.tokenizer;

/**
 * Text ↔ token ids for one model's vocabulary.
 *
 * <p>BOS is never part of {@link #encode}/{@link #encodeWithSpecialTokens}: a prompt for a model is
 * {@link #withBos withBos(encode(text))} (or {@link #encodePrompt}), because only the start of a
 * sequence takes BOS and callers encode continuations and chat turns with the same methods.
 */
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

  /** The id of the token whose vocabulary string is exactly {@code text}, or -1. */
  default int tokenId(String text) {
    for (int i = 0; i < vocabSize(); i++) {
      if (tokenText(i).equals(text)) {
        return i;
      }
    }
    return -1;
  }

  /** {@code ids} with BOS in front when {@link #addBos()} and it is not already there. */
  default int[] withBos(int[] ids) {
    if (!addBos() || bosId() < 0 || (ids.length > 0 && ids[0] == bosId())) {
      return ids;
    }
    int[] out = new int[ids.length + 1];
    out[0] = bosId();
    System.arraycopy(ids, 0, out, 1, ids.length);
    return out;
  }

  /** A prompt as the model expects it: BOS when the vocabulary asks for it, then plain text. */
  default int[] encodePrompt(String text) {
    return withBos(encode(text));
  }
}
