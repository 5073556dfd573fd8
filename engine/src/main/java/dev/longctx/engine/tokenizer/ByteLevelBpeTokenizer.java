package dev.longctx.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE as GPT-2, Llama-3 and Qwen2 use it (GGUF model "gpt2"): a regex splits text into
 * words, each word's UTF-8 bytes are spelled with {@link ByteUnicode}'s characters, and within a
 * word the adjacent pair with the best (lowest) merge rank is merged, repeatedly (ties: leftmost).
 * Every byte has a token, so nothing is unknown.
 */
public final class ByteLevelBpeTokenizer extends VocabularyTokenizer {

  private final Pattern splitter;
  private final MergeTable merges;
  private final int[] byteToId = new int[256];
  private final boolean ignoreMerges;

  public ByteLevelBpeTokenizer(Vocabulary v) {
    this(v, PreTokenizers.forName(v.preTokenizer()));
  }

  /** With an explicit splitting pattern (Hugging Face {@code Split} pre-tokenizers). */
  public ByteLevelBpeTokenizer(Vocabulary v, Pattern splitter) {
    super(v.tokens(), types(v), v.bosId(), v.eosId(), v.eotIds(), v.addBos());
    this.splitter = splitter;
    this.ignoreMerges = v.ignoreMerges();
    this.merges = buildMerges(v.merges(), idByText::get, false);
    for (int b = 0; b < 256; b++) {
      Integer id = idByText.get(String.valueOf(ByteUnicode.toChar(b)));
      byteToId[b] = id == null ? -1 : id;
    }
  }

  private static TokenType[] types(Vocabulary v) {
    TokenType[] t = new TokenType[v.size()];
    for (int i = 0; i < t.length; i++) {
      t[i] = v.type(i);
    }
    return t;
  }

  /**
   * Builds the merge table from "left right" strings, rank = position. A merge naming a token that
   * is not in the vocabulary is skipped, or rejected when {@code strict} (Hugging Face refuses such
   * files).
   */
  static MergeTable buildMerges(
      List<String> merges, Function<String, Integer> ids, boolean strict) {
    MergeTable table = new MergeTable(merges.size());
    for (int rank = 0; rank < merges.size(); rank++) {
      String m = merges.get(rank);
      int sp = m.indexOf(' ');
      if (sp <= 0 || sp == m.length() - 1) {
        throw new IllegalArgumentException("merge " + rank + " is not 'left right': '" + m + "'");
      }
      addMerge(table, rank, m.substring(0, sp), m.substring(sp + 1), ids, strict);
    }
    return table;
  }

  static void addMerge(
      MergeTable table,
      int rank,
      String left,
      String right,
      Function<String, Integer> ids,
      boolean strict) {
    Integer l = ids.apply(left);
    Integer r = ids.apply(right);
    Integer merged = ids.apply(left + right);
    if (l == null || r == null || merged == null) {
      if (strict) {
        throw new IllegalArgumentException(
            "merge "
                + rank
                + " ('"
                + left
                + "', '"
                + right
                + "') uses a token missing from the vocabulary");
      }
      return;
    }
    table.put(l, r, rank, merged);
  }

  @Override
  protected void encodeText(String text, boolean atInputStart, IntList out) {
    Matcher m = splitter.matcher(text);
    int last = 0;
    while (m.find()) {
      if (m.start() > last) {
        encodeWord(text.substring(last, m.start()), out);
      }
      if (m.end() > m.start()) {
        encodeWord(m.group(), out);
      }
      last = m.end();
    }
    if (last < text.length()) {
      encodeWord(text.substring(last), out);
    }
  }

  private void encodeWord(String word, IntList out) {
    byte[] bytes = word.getBytes(StandardCharsets.UTF_8);
    if (ignoreMerges) {
      Integer whole = idByText.get(ByteUnicode.encode(bytes));
      if (whole != null) {
        out.add(whole);
        return;
      }
    }
    mergeBytes(bytes, byteToId, merges, out);
  }

  /** Runs ranked merges over one token per byte and appends the result. */
  static void mergeBytes(byte[] bytes, int[] byteToId, MergeTable merges, IntList out) {
    SymbolMerger sm = new SymbolMerger(bytes.length);
    for (int i = 0; i < bytes.length; i++) {
      sm.set(i, byteToId[bytes[i] & 0xff], i, i + 1);
    }
    runRanked(sm, merges);
    for (int i = sm.first(); i >= 0; i = sm.next(i)) {
      if (sm.id[i] >= 0) {
        out.add(sm.id[i]);
      }
    }
  }

  /** Merges by rank over symbol ids; symbols with id -1 never merge. */
  static void runRanked(SymbolMerger sm, MergeTable merges) {
    sm.run(
        (s, l, r) -> {
          int a = s.id[l];
          int b = s.id[r];
          if (a < 0 || b < 0) {
            return SymbolMerger.PairRule.NONE;
          }
          long v = merges.get(a, b);
          return v == -1L ? SymbolMerger.PairRule.NONE : v;
        });
  }

  @Override
  protected byte[] pieceBytes(int id) {
    if (types[id] != TokenType.USER_DEFINED) {
      byte[] b = ByteUnicode.decode(tokens[id]);
      if (b != null) {
        return b;
      }
    }
    // User-defined tokens are stored as plain text, not in the byte alphabet.
    return tokens[id].getBytes(StandardCharsets.UTF_8);
  }

  /** Number of merges in use. */
  public int mergeCount() {
    return merges.size();
  }
}
