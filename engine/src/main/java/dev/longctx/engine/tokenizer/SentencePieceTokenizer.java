package dev.longctx.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * SentencePiece-style BPE as llama2.c and llama.cpp run it for "llama" vocabularies: the text (with
 * a dummy-prefix space, spaces spelled "▁" where the vocabulary does) is split into characters,
 * then the adjacent pair whose concatenation is a vocabulary piece with the highest score is
 * merged, repeatedly (ties: leftmost). A character with no piece becomes its UTF-8 bytes as {@code
 * <0xAB>} tokens (byte fallback), or UNK in a vocabulary without byte pieces.
 */
public final class SentencePieceTokenizer extends VocabularyTokenizer {

  static final char SPACE_MARKER = '\u2581';

  private final float[] scores;
  private final boolean addSpacePrefix;
  private final boolean spaceMarker;
  private final int unkId;
  private final int[] byteToId = new int[256];

  public SentencePieceTokenizer(Vocabulary v) {
    super(v.tokens(), types(v), v.bosId(), v.eosId(), v.eotIds(), v.addBos());
    if (v.model() != Vocabulary.Model.SENTENCEPIECE) {
      throw new IllegalArgumentException("not a SentencePiece vocabulary: " + v.model());
    }
    this.scores = v.scores().clone();
    this.addSpacePrefix = v.addSpacePrefix();
    this.spaceMarker = v.spaceMarker();
    this.unkId = v.unkId();
    Arrays.fill(byteToId, -1);
    for (int i = 0; i < tokens.length; i++) {
      if (types[i] == TokenType.BYTE) {
        int b = byteOfPiece(tokens[i]);
        if (b >= 0 && byteToId[b] < 0) {
          byteToId[b] = i;
        }
      }
    }
  }

  private static TokenType[] types(Vocabulary v) {
    TokenType[] t = new TokenType[v.size()];
    for (int i = 0; i < t.length; i++) {
      t[i] = v.type(i);
    }
    return t;
  }

  /** The byte of a {@code <0xAB>} piece, or -1 for any other string. */
  static int byteOfPiece(String piece) {
    if (piece.length() != 6 || !piece.startsWith("<0x") || piece.charAt(5) != '>') {
      return -1;
    }
    int hi = Character.digit(piece.charAt(3), 16);
    int lo = Character.digit(piece.charAt(4), 16);
    return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
  }

  @Override
  protected void encodeText(String text, boolean atInputStart, IntList out) {
    // Every run starts the input or follows a special token; llama.cpp adds the dummy prefix in
    // both cases (so "<s>[INST]" encodes "[INST]" as "▁[INST]", as Meta's per-turn encoding does).
    if (addSpacePrefix) {
      text = " " + text;
    }
    if (spaceMarker) {
      text = text.replace(' ', SPACE_MARKER);
    }
    int n = text.codePointCount(0, text.length());
    SymbolMerger m = new SymbolMerger(n);
    int pos = 0;
    for (int i = 0; i < n; i++) {
      int cpEnd = text.offsetByCodePoints(pos, 1);
      m.set(i, mergeableId(text.substring(pos, cpEnd)), pos, cpEnd);
      pos = cpEnd;
    }
    final String s = text;
    m.run(
        (sm, l, r) -> {
          int id = mergeableId(s.substring(sm.start[l], sm.end[r]));
          if (id < 0) {
            return SymbolMerger.PairRule.NONE;
          }
          // Higher score first: negate, so the heap's "lowest first" order applies.
          return ((long) SymbolMerger.sortableFloat(-scores[id]) << 32) | id;
        });
    for (int i = m.first(); i >= 0; i = m.next(i)) {
      int id = m.id[i];
      if (id >= 0) {
        out.add(id);
      } else {
        byteFallback(s.substring(m.start[i], m.end[i]), out);
      }
    }
  }

  /**
   * The id of a piece that text may turn into, or -1. Control, byte and unused pieces never come
   * from merging text (SentencePiece reserves them), even when their strings happen to match.
   */
  private int mergeableId(String piece) {
    Integer id = idByText.get(piece);
    if (id == null) {
      return -1;
    }
    TokenType t = types[id];
    return t == TokenType.NORMAL || t == TokenType.USER_DEFINED ? id : -1;
  }

  private void byteFallback(String ch, IntList out) {
    byte[] bytes = ch.getBytes(StandardCharsets.UTF_8);
    for (byte b : bytes) {
      if (byteToId[b & 0xff] < 0) {
        // A vocabulary without byte pieces: the character becomes one UNK (or nothing).
        if (unkId >= 0) {
          out.add(unkId);
        }
        return;
      }
    }
    for (byte b : bytes) {
      out.add(byteToId[b & 0xff]);
    }
  }

  @Override
  protected byte[] pieceBytes(int id) {
    if (types[id] == TokenType.BYTE) {
      int b = byteOfPiece(tokens[id]);
      if (b >= 0) {
        return new byte[] {(byte) b};
      }
    }
    String piece = spaceMarker ? tokens[id].replace(SPACE_MARKER, ' ') : tokens[id];
    return piece.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  protected String finishDecode(String text) {
    return addSpacePrefix && text.startsWith(" ") ? text.substring(1) : text;
  }

  /** The merge score of a piece. */
  public float score(int id) {
    return scores[id];
  }
}
