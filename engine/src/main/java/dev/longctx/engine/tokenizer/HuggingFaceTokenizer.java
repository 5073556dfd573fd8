package dev.longctx.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * A Hugging Face {@code tokenizer.json} with a BPE model, run the way the {@code tokenizers}
 * library runs it: normalizer, pre-tokenizer (into words), BPE per word with ranked merges, and the
 * decoder chain. Built by {@link Tokenizers#fromHuggingFace}; the pipeline stages are parsed by
 * {@code HuggingFaceTokenizerLoader}.
 */
public final class HuggingFaceTokenizer extends VocabularyTokenizer {

  /** Splits normalized text into words, each already in the model's alphabet. */
  interface PreTokenizer {
    /** {@code atInputStart}: the text begins the input (Metaspace's "first" scheme asks). */
    List<String> split(String text, boolean atInputStart);
  }

  /** The decoder chain, split where the tokens are fused into one string. */
  interface Decoder {
    /** Per-token steps (those before HF's {@code Fuse}, or all of them without one). */
    byte[] tokenBytes(String token);

    /** Steps after the tokens are joined ({@code Strip} after {@code Fuse}, Metaspace's prefix). */
    String finish(String text);
  }

  /** The BPE model's settings that matter for encoding. */
  record BpeModel(
      MergeTable merges,
      int unkId,
      boolean byteFallback,
      boolean fuseUnk,
      boolean ignoreMerges,
      String continuingSubwordPrefix,
      String endOfWordSuffix) {}

  private final UnaryOperator<String> normalizer;
  private final PreTokenizer preTokenizer;
  private final BpeModel model;
  private final Decoder decoder;
  private final int[] byteToId = new int[256];

  HuggingFaceTokenizer(
      List<String> tokens,
      TokenType[] types,
      int bos,
      int eos,
      int[] eotIds,
      boolean addBos,
      UnaryOperator<String> normalizer,
      PreTokenizer preTokenizer,
      BpeModel model,
      Decoder decoder) {
    super(tokens, types, bos, eos, eotIds, addBos);
    this.normalizer = normalizer;
    this.preTokenizer = preTokenizer;
    this.model = model;
    this.decoder = decoder;
    for (int b = 0; b < 256; b++) {
      Integer id = idByText.get("<0x%02X>".formatted(b));
      byteToId[b] = id == null ? -1 : id;
    }
  }

  @Override
  protected void encodeText(String text, boolean atInputStart, IntList out) {
    String normalized = normalizer.apply(text);
    for (String word : preTokenizer.split(normalized, atInputStart)) {
      if (!word.isEmpty()) {
        encodeWord(word, out);
      }
    }
  }

  private void encodeWord(String word, IntList out) {
    if (model.ignoreMerges()) {
      Integer whole = idByText.get(word);
      if (whole != null) {
        out.add(whole);
        return;
      }
    }
    IntList ids = new IntList(word.length());
    int n = word.length();
    for (int i = 0; i < n; ) {
      int next = word.offsetByCodePoints(i, 1);
      String ch = word.substring(i, next);
      String piece = ch;
      if (i > 0 && model.continuingSubwordPrefix() != null) {
        piece = model.continuingSubwordPrefix() + piece;
      }
      if (next == n && model.endOfWordSuffix() != null) {
        piece = piece + model.endOfWordSuffix();
      }
      Integer id = idByText.get(piece);
      if (id != null) {
        ids.add(id);
      } else if (!(model.byteFallback() && addBytes(ch, ids)) && model.unkId() >= 0) {
        if (!(model.fuseUnk() && ids.size() > 0 && ids.last() == model.unkId())) {
          ids.add(model.unkId());
        }
      }
      i = next;
    }
    SymbolMerger sm = new SymbolMerger(ids.size());
    for (int i = 0; i < ids.size(); i++) {
      sm.set(i, ids.get(i), i, i + 1);
    }
    ByteLevelBpeTokenizer.runRanked(sm, model.merges());
    for (int i = sm.first(); i >= 0; i = sm.next(i)) {
      out.add(sm.id[i]);
    }
  }

  /** Byte fallback: all of the character's bytes as {@code <0xAB>} tokens, or false. */
  private boolean addBytes(String ch, IntList ids) {
    byte[] bytes = ch.getBytes(StandardCharsets.UTF_8);
    for (byte b : bytes) {
      if (byteToId[b & 0xff] < 0) {
        return false;
      }
    }
    for (byte b : bytes) {
      ids.add(byteToId[b & 0xff]);
    }
    return true;
  }

  @Override
  protected byte[] pieceBytes(int id) {
    if (types[id] == TokenType.USER_DEFINED) {
      return tokens[id].getBytes(StandardCharsets.UTF_8);
    }
    return decoder.tokenBytes(tokens[id]);
  }

  @Override
  protected String finishDecode(String text) {
    return decoder.finish(text);
  }
}
