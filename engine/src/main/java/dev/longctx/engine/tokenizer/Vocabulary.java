package dev.longctx.engine.tokenizer;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A tokenizer vocabulary as plain data, independent of the file it came from (GGUF metadata,
 * llama2.c {@code tokenizer.bin}), so that every format feeds the same two algorithms. Field names
 * follow the GGUF {@code tokenizer.ggml.*} keys.
 *
 * @param model which algorithm: {@link Model#SENTENCEPIECE} (GGUF "llama") or {@link
 *     Model#BYTE_LEVEL_BPE} (GGUF "gpt2")
 * @param tokens token strings by id ({@code tokenizer.ggml.tokens})
 * @param scores merge scores by id, higher merges first; required for SentencePiece, may be null
 *     for BPE ({@code tokenizer.ggml.scores})
 * @param types token types by id; null means all {@link TokenType#NORMAL} except byte pieces {@code
 *     <0xAB>} in SentencePiece vocabularies ({@code tokenizer.ggml.token_type})
 * @param merges ranked merges "left right", highest priority first; required for byte-level BPE
 *     ({@code tokenizer.ggml.merges})
 * @param bosId beginning-of-sequence id or -1
 * @param eosId end-of-sequence id or -1
 * @param unkId unknown-token id or -1
 * @param eotIds further ids that end a turn ({@code tokenizer.ggml.eot_token_id}, ...)
 * @param addBos whether models of this vocabulary expect BOS before a prompt
 * @param addSpacePrefix SentencePiece only: prepend a space to text before encoding
 * @param spaceMarker SentencePiece only: pieces spell spaces as U+2581 "▁" (GGUF, HF); false for
 *     llama2.c files, whose exporter already turned "▁" back into " "
 * @param preTokenizer byte-level BPE only: the {@code tokenizer.ggml.pre} name choosing the
 *     splitting regex ("llama-bpe", "qwen2", "default", ...)
 * @param ignoreMerges byte-level BPE only: a pre-token that is itself in the vocabulary is emitted
 *     as is without merging (Llama-3 does this; it changes some outputs)
 */
public record Vocabulary(
    Model model,
    List<String> tokens,
    float[] scores,
    int[] types,
    List<String> merges,
    int bosId,
    int eosId,
    int unkId,
    int[] eotIds,
    boolean addBos,
    boolean addSpacePrefix,
    boolean spaceMarker,
    String preTokenizer,
    boolean ignoreMerges) {

  /** The two vocabulary algorithms. */
  public enum Model {
    /** Score-ordered merges over characters with byte fallback (GGUF {@code "llama"}). */
    SENTENCEPIECE,
    /** Rank-ordered merges over GPT-2 byte characters (GGUF {@code "gpt2"}). */
    BYTE_LEVEL_BPE
  }

  public Vocabulary {
    Objects.requireNonNull(model, "model");
    tokens = List.copyOf(tokens);
    int n = tokens.size();
    if (n == 0) {
      throw new IllegalArgumentException("empty vocabulary");
    }
    if (scores != null && scores.length != n) {
      throw new IllegalArgumentException(
          "scores has " + scores.length + " entries for " + n + " tokens");
    }
    if (types != null && types.length != n) {
      throw new IllegalArgumentException(
          "token types has " + types.length + " entries for " + n + " tokens");
    }
    if (model == Model.SENTENCEPIECE && scores == null) {
      throw new IllegalArgumentException("a SentencePiece vocabulary needs scores");
    }
    if (model == Model.BYTE_LEVEL_BPE && merges == null) {
      throw new IllegalArgumentException("a byte-level BPE vocabulary needs merges");
    }
    merges = merges == null ? List.of() : List.copyOf(merges);
    eotIds = eotIds == null ? new int[0] : eotIds.clone();
    for (int id : new int[] {bosId, eosId, unkId}) {
      checkId(id, n);
    }
    for (int id : eotIds) {
      checkId(id, n);
    }
    preTokenizer = preTokenizer == null ? "default" : preTokenizer;
  }

  private static void checkId(int id, int n) {
    if (id < -1 || id >= n) {
      throw new IllegalArgumentException("special token id " + id + " outside vocabulary of " + n);
    }
  }

  public int size() {
    return tokens.size();
  }

  /** The type of token {@code id}, applying the default described at {@link #types}. */
  public TokenType type(int id) {
    if (types != null) {
      return TokenType.ofCode(types[id]);
    }
    if (model == Model.SENTENCEPIECE && SentencePieceTokenizer.byteOfPiece(tokens.get(id)) >= 0) {
      return TokenType.BYTE;
    }
    return TokenType.NORMAL;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Vocabulary v
        && model == v.model
        && tokens.equals(v.tokens)
        && Arrays.equals(scores, v.scores)
        && Arrays.equals(types, v.types)
        && merges.equals(v.merges)
        && bosId == v.bosId
        && eosId == v.eosId
        && unkId == v.unkId
        && Arrays.equals(eotIds, v.eotIds)
        && addBos == v.addBos
        && addSpacePrefix == v.addSpacePrefix
        && spaceMarker == v.spaceMarker
        && preTokenizer.equals(v.preTokenizer)
        && ignoreMerges == v.ignoreMerges;
  }

  @Override
  public int hashCode() {
    return Objects.hash(model, tokens, merges, bosId, eosId, preTokenizer);
  }

  @Override
  public String toString() {
    return "Vocabulary[" + model + ", " + size() + " tokens, pre=" + preTokenizer + "]";
  }
}
