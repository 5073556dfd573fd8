package dev.longctx.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Turns token bytes, fed one token at a time, into text that holds only complete characters: a
 * byte-fallback or byte-level token can end in the middle of a multi-byte UTF-8 character, and
 * printing that half would show garbage. Trailing bytes that could still become a character wait
 * for the next token. Invalid bytes become U+FFFD exactly as the JDK's UTF-8 decoder replaces them,
 * so the streamed text always equals {@link Tokenizer#decode} of the same bytes (apart from
 * decode's sequence-level steps such as dropping a dummy-prefix space).
 *
 * <p>Not thread-safe: one decoder per output stream.
 */
public final class Utf8StreamDecoder {

  private byte[] pending = new byte[0];

  /** Appends {@code bytes}; returns the characters completed by them (possibly empty). */
  public String accept(byte[] bytes) {
    byte[] all;
    if (pending.length == 0) {
      all = bytes;
    } else {
      all = Arrays.copyOf(pending, pending.length + bytes.length);
      System.arraycopy(bytes, 0, all, pending.length, bytes.length);
    }
    int keep = incompleteTail(all);
    pending = Arrays.copyOfRange(all, all.length - keep, all.length);
    return new String(all, 0, all.length - keep, StandardCharsets.UTF_8);
  }

  /** {@link #accept(byte[]) accept(tokenizer.tokenBytes(id))}. */
  public String accept(Tokenizer tokenizer, int id) {
    return accept(tokenizer.tokenBytes(id));
  }

  /**
   * Ends the stream: waiting bytes of an unfinished character are decoded as they are (into
   * U+FFFD). The decoder can then be reused.
   */
  public String flush() {
    String s = new String(pending, StandardCharsets.UTF_8);
    pending = new byte[0];
    return s;
  }

  /** Whether bytes of an unfinished character are waiting. */
  public boolean hasPending() {
    return pending.length > 0;
  }

  /**
   * Length of the trailing run that is a multi-byte lead byte followed by fewer continuation bytes
   * than it announces, or 0. Splitting the input right before such a lead byte never changes how
   * the JDK decodes either side, because its replacement of invalid input only ever swallows
   * continuation bytes, never a lead byte.
   */
  private static int incompleteTail(byte[] b) {
    int n = b.length;
    for (int back = 1; back <= Math.min(3, n); back++) {
      int c = b[n - back] & 0xff;
      if (c >= 0x80 && c <= 0xBF) {
        continue; // a continuation byte: keep looking for its lead
      }
      int need =
          c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
      return need > back ? back : 0;
    }
    return 0;
  }
}
