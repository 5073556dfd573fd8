package dev.longctx.engine.tokenizer;

import java.util.Arrays;

/**
 * GPT-2's reversible byte ↔ character table: byte-level BPE vocabularies spell every byte as a
 * printable character so that tokens are plain strings. Printable Latin-1 bytes map to themselves;
 * the 68 others (controls, space, NBSP, soft hyphen) map to U+0100 upwards in byte order, which is
 * why a space shows as "Ġ" (U+0120) and a newline as "Ċ" (U+010A).
 */
final class ByteUnicode {

  private static final char[] BYTE_TO_CHAR = new char[256];
  private static final int[] CHAR_TO_BYTE = new int[512];

  static {
    Arrays.fill(CHAR_TO_BYTE, -1);
    int extra = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char c = printable ? (char) b : (char) (256 + extra++);
      BYTE_TO_CHAR[b] = c;
      CHAR_TO_BYTE[c] = b;
    }
  }

  private ByteUnicode() {}

  static char toChar(int b) {
    return BYTE_TO_CHAR[b & 0xff];
  }

  /** The byte a character stands for, or -1 when it is not one of the 256 table characters. */
  static int toByte(char c) {
    return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
  }

  /** The byte-level spelling of UTF-8 bytes. */
  static String encode(byte[] bytes) {
    char[] out = new char[bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      out[i] = BYTE_TO_CHAR[bytes[i] & 0xff];
    }
    return new String(out);
  }

  /** The bytes of a byte-level token, or null when some character is not in the table. */
  static byte[] decode(String token) {
    byte[] out = new byte[token.length()];
    for (int i = 0; i < out.length; i++) {
      int b = toByte(token.charAt(i));
      if (b < 0) {
        return null;
      }
      out[i] = (byte) b;
    }
    return out;
  }
}
