package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Utf8StreamDecoderTest {

  @Test
  void holdsBackAnIncompleteCharacterUntilItsLastByte() {
    Utf8StreamDecoder d = new Utf8StreamDecoder();
    byte[] llama = "🦙".getBytes(StandardCharsets.UTF_8);
    assertThat(d.accept(new byte[] {'a', llama[0]})).isEqualTo("a");
    assertThat(d.hasPending()).isTrue();
    assertThat(d.accept(new byte[] {llama[1]})).isEmpty();
    assertThat(d.accept(new byte[] {llama[2]})).isEmpty();
    assertThat(d.accept(new byte[] {llama[3], 'b'})).isEqualTo("🦙b");
    assertThat(d.hasPending()).isFalse();
    assertThat(d.flush()).isEmpty();
  }

  @Test
  void flushReplacesAnUnfinishedCharacter() {
    Utf8StreamDecoder d = new Utf8StreamDecoder();
    assertThat(d.accept(new byte[] {(byte) 0xE6, (byte) 0x88})).isEmpty();
    assertThat(d.flush()).isEqualTo("\uFFFD");
    assertThat(d.accept("ok".getBytes(StandardCharsets.UTF_8))).isEqualTo("ok");
  }

  @Test
  void invalidBytesBecomeReplacementCharactersWithoutSwallowingValidOnes() {
    Utf8StreamDecoder d = new Utf8StreamDecoder();
    // Stray continuation, a cut 3-byte sequence followed by ASCII, an overlong C0 lead, a
    // surrogate.
    byte[] bad = {
      (byte) 0x80,
      (byte) 0xE6,
      (byte) 0x88,
      'x',
      (byte) 0xC0,
      (byte) 0xAF,
      (byte) 0xED,
      (byte) 0xA0,
      (byte) 0x80
    };
    assertThat(d.accept(bad) + d.flush()).isEqualTo(new String(bad, StandardCharsets.UTF_8));
  }

  @Test
  void anyByteStreamCutAnywhereDecodesLikeTheJdkDecoderOnTheWhole() {
    Random random = new Random(42);
    String sample = "Hello, 世界! 🦙 Äpfel ½ ﷽ \uD83D\uDE36\u200D\uD83C\uDF2B\uFE0F end";
    byte[] valid = sample.getBytes(StandardCharsets.UTF_8);
    for (int trial = 0; trial < 2000; trial++) {
      byte[] bytes;
      if (trial % 2 == 0) {
        bytes = valid.clone();
        for (int k = random.nextInt(4); k > 0; k--) {
          bytes[random.nextInt(bytes.length)] = (byte) random.nextInt(256);
        }
      } else {
        bytes = new byte[random.nextInt(40)];
        random.nextBytes(bytes);
      }
      Utf8StreamDecoder d = new Utf8StreamDecoder();
      StringBuilder out = new StringBuilder();
      int pos = 0;
      while (pos < bytes.length) {
        int n = 1 + random.nextInt(4);
        out.append(d.accept(Arrays.copyOfRange(bytes, pos, Math.min(bytes.length, pos + n))));
        pos += n;
      }
      out.append(d.flush());
      assertThat(out.toString())
          .as("bytes %s", Arrays.toString(bytes))
          .isEqualTo(new String(bytes, StandardCharsets.UTF_8));
    }
  }
}
