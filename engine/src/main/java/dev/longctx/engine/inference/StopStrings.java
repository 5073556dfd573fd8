package dev.longctx.engine.inference;

import java.util.List;

/**
 * Holds back streamed text that could be the start of a stop string, and cuts the text at the first
 * stop string. What {@link #accept} returns is final: it never contains (part of) a stop string.
 */
public final class StopStrings {

  private final List<String> stops;
  private final StringBuilder pending = new StringBuilder();
  private boolean stopped;

  public StopStrings(List<String> stops) {
    this.stops = List.copyOf(stops);
  }

  /** Adds text; returns the part that is now final. After a stop string, {@link #stopped()}. */
  public String accept(String text) {
    if (text.isEmpty() || stopped) {
      return "";
    }
    pending.append(text);
    int cut = -1;
    for (String s : stops) {
      int i = pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) {
        cut = i;
      }
    }
    if (cut >= 0) {
      String out = pending.substring(0, cut);
      pending.setLength(0);
      stopped = true;
      return out;
    }
    int hold = 0;
    String p = pending.toString();
    for (String s : stops) {
      for (int k = Math.min(s.length() - 1, p.length()); k > hold; k--) {
        if (p.regionMatches(p.length() - k, s, 0, k)) {
          hold = k;
          break;
        }
      }
    }
    String out = pending.substring(0, pending.length() - hold);
    pending.delete(0, pending.length() - hold);
    return out;
  }

  public boolean stopped() {
    return stopped;
  }

  /** The held-back text, at the end of generation. */
  public String flush() {
    String out = pending.toString();
    pending.setLength(0);
    return out;
  }
}
