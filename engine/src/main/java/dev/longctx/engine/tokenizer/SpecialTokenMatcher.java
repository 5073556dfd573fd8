package dev.longctx.engine.tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds special-token strings in text: at each position the longest special token starting there
 * wins (so {@code <|reserved_special_token_10|>} is not cut at {@code ..._1}).
 */
final class SpecialTokenMatcher {

  /** Receives the pieces of a split text in order. */
  interface Sink {
    /** A run of plain text; {@code atInputStart}: it begins the input (else a special precedes). */
    void text(String text, boolean atInputStart);

    void special(int id);
  }

  private final Map<Character, String[]> byFirstChar = new HashMap<>();
  private final Map<String, Integer> ids = new HashMap<>();

  SpecialTokenMatcher(Map<String, Integer> specials) {
    Map<Character, List<String>> groups = new HashMap<>();
    specials.forEach(
        (text, id) -> {
          if (!text.isEmpty()) {
            ids.putIfAbsent(text, id);
            groups.computeIfAbsent(text.charAt(0), c -> new ArrayList<>()).add(text);
          }
        });
    groups.forEach(
        (c, list) -> {
          String[] a = list.toArray(String[]::new);
          Arrays.sort(a, Comparator.comparingInt(String::length).reversed());
          byFirstChar.put(c, a);
        });
  }

  boolean isEmpty() {
    return ids.isEmpty();
  }

  /** Splits {@code text} into plain runs and special tokens, in order. */
  void split(String text, Sink sink) {
    int runStart = 0;
    int i = 0;
    while (i < text.length()) {
      String[] candidates = byFirstChar.get(text.charAt(i));
      String match = null;
      if (candidates != null) {
        for (String s : candidates) {
          if (text.startsWith(s, i)) {
            match = s;
            break;
          }
        }
      }
      if (match == null) {
        i++;
        continue;
      }
      if (i > runStart) {
        sink.text(text.substring(runStart, i), runStart == 0);
      }
      sink.special(ids.get(match));
      i += match.length();
      runStart = i;
    }
    if (runStart < text.length()) {
      sink.text(text.substring(runStart), runStart == 0);
    }
  }
}
