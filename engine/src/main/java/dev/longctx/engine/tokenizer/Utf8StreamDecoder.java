package dev.longctx.engine.tokenizer;

/**
 * Turns token bytes, fed one token at a time, into text that holds only complete characters: a
 * byte-fallback or byte-level token can end in the middle of a multi-byte UTF-8 character, and
 * printing that half would show garbage. Incomplete trailing bytes wait for the next token;
 * sequences that can never become valid UTF-8 become U+FFFD, one per maximal invalid subsequence as
 * the Unicode standard recommends (and as {@code new String(bytes, UTF_8)} does).
 *
 * <p>Not thread-safe: one decoder per output stream.
 */
public final class Utf8StreamDecoder {

  private final byte[] pending = new byte[4];
  private int pendingLength;

  /** Appends {@code bytes}; returns the characters completed by them (possibly empty). */
  public String accept(byte[] bytes) {
    StringBuilder out = new StringBuilder(bytes.length + 1);
    for (byte b : bytes) {
      feed(b & 0xff, out);
    }
    return out.toString();
  }

  /** {@link #accept(byte[]) accept(tokenizer.tokenBytes(id))}. */
  public String accept(Tokenizer tokenizer, int id) {
    return accept(tokenizer.tokenBytes(id));
  }

  /**
   * Ends the stream: pending bytes of an unfinished character become U+FFFD. The decoder can then
   * be reused.
   */
  public String flush() {
    String s = pendingLength > 0 ? "\uFFFD" : "";
    pendingLength = 0;
    return s;
  }

  /** Whether bytes of an unfinished character are waiting. */
  public boolean hasPending() {
    return pendingLength > 0;
  }

  private void feed(int b, StringBuilder out) {
    if (pendingLength == 0) {
      if (b < 0x80) {
        out.append((char) b);
      } else if (sequenceLength(b) > 0) {
        pending[pendingLength++] = (byte) b;
      } else {
        out.append('\uFFFD'); // stray continuation byte or an invalid lead byte
      }
      return;
    }
    if (!validContinuation(b)) {
      // The pending sequence is cut short: replace it, then look at b afresh.
      out.append('\uFFFD');
      pendingLength = 0;
      feed(b, out);
      return;
    }
    pending[pendingLength++] = (byte) b;
    int need = sequenceLength(pending[0] & 0xff);
    if (pendingLength == need) {
      int cp = pending[0] & (0xff >> (need + 1));
      for (int i = 1; i < need; i++) {
        cp = (cp << 6) | (pending[i] & 0x3f);
      }
      out.appendCodePoint(cp);
      pendingLength = 0;
    }
  }

  /** Total length of a sequence starting with lead byte {@code b}, or 0 when it cannot lead. */
  private static int sequenceLength(int b) {
    if (b >= 0xC2 && b <= 0xDF) {
      return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
      return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
      return 4;
    }
    return 0;
  }

  /**
   * Whether {@code b} may follow the pending bytes. The second byte's range depends on the lead
   * byte, which is how UTF-8 excludes overlong forms, surrogates and code points above U+10FFFF.
   */
  private boolean validContinuation(int b) {
    if (pendingLength == 1) {
      int lead = pending[0] & 0xff;
      int lo = 0x80;
      int hi = 0xBF;
      switch (lead) {
        case 0xE0 -> lo = 0xA0;
        case 0xED -> hi = 0x9F;
        case 0xF0 -> lo = 0x90;
        case 0xF4 -> hi = 0x8F;
        default -> {}
      }
      return b >= lo && b <= hi;
    }
    return b >= 0x80 && b <= 0xBF;
  }
}
