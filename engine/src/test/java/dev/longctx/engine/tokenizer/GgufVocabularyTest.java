package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.gguf.GgufWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Vocabulary facts and special-token handling of the three GGUF vocab files. */
class GgufVocabularyTest {

  private static final Map<String, Tokenizer> CACHE = new HashMap<>();

  static synchronized Tokenizer tokenizer(String name) {
    return CACHE.computeIfAbsent(
        name,
        n -> {
          try (GgufFile g =
              GgufFile.open(TestData.file("tokenizers/gguf-vocab/ggml-vocab-" + n + ".gguf"))) {
            return Tokenizers.fromGguf(g);
          }
        });
  }

  @AfterAll
  static void release() {
    CACHE.clear();
  }

  @Test
  void llamaSpmIsSentencePieceWithBosAndByteFallback() {
    Tokenizer t = tokenizer("llama-spm");
    assertThat(t).isInstanceOf(SentencePieceTokenizer.class);
    assertThat(t.vocabSize()).isEqualTo(32000);
    assertThat(t.addBos()).isTrue();
    assertThat(t.bosId()).isEqualTo(1);
    assertThat(t.eosId()).isEqualTo(2);
    assertThat(t.isEndOfGeneration(2)).isTrue();
    // "\n" has no piece in Llama-2: byte fallback <0x0A> = 13, after the dummy prefix "▁" = 29871.
    assertThat(t.encode("\n")).containsExactly(29871, 13);
    assertThat(t.tokenBytes(13)).containsExactly('\n');
    assertThat(t.tokenBytes(29871)).containsExactly(' ');
    assertThat(t.tokenBytes(1)).isEmpty();
  }

  @Test
  void spmSpecialTokensRestartTheDummyPrefixAsLlamaCppDoes() {
    Tokenizer t = tokenizer("llama-spm");
    // Llama-2 chat prompts begin [1, 518, 25580, 29962] = <s> ▁[ INST ].
    assertThat(t.encodeWithSpecialTokens("<s>[INST] Hi [/INST]")).startsWith(1, 518, 25580, 29962);
    assertThat(t.encode("<s>")).doesNotContain(1);
  }

  @Test
  void llama3IsByteLevelWithBosAndHeaderSpecialTokens() {
    Tokenizer t = tokenizer("llama-bpe");
    assertThat(t).isInstanceOf(ByteLevelBpeTokenizer.class);
    assertThat(t.addBos()).isTrue();
    assertThat(t.bosId()).isEqualTo(128000);
    assertThat(t.eosId()).isEqualTo(128001);
    int eot = t.tokenId("<|eot_id|>");
    assertThat(eot).isEqualTo(128009);
    assertThat(t.isEndOfGeneration(eot)).isTrue();
    assertThat(t.isEndOfGeneration(128001)).isTrue();
    assertThat(t.isEndOfGeneration(128006)).isFalse();
    String turn = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    assertThat(t.encodeWithSpecialTokens(turn))
        .containsExactly(128006, t.tokenId("user"), 128007, 271, t.tokenId("Hi"), 128009);
    // Plain encode treats the same string as text: no special ids.
    assertThat(java.util.Arrays.stream(t.encode(turn)).max().getAsInt()).isLessThan(128000);
    assertThat(t.decode(t.encode(turn))).isEqualTo(turn);
    // The longest special token wins where one is a prefix of another.
    assertThat(t.encodeWithSpecialTokens("<|reserved_special_token_10|>"))
        .containsExactly(t.tokenId("<|reserved_special_token_10|>"));
    assertThat(t.tokenBytes(128009)).isEmpty();
  }

  @Test
  void llama3GroupsDigitsInThreesAndQwen2SplitsThem() {
    Tokenizer llama3 = tokenizer("llama-bpe");
    Tokenizer qwen2 = tokenizer("qwen2");
    assertThat(llama3.encode("1234567")).hasSize(3); // 123 456 7
    assertThat(qwen2.encode("1234567")).hasSize(7);
  }

  @Test
  void qwen2HasNoBosAndEndsTurnsAtImEnd() {
    Tokenizer t = tokenizer("qwen2");
    assertThat(t.addBos()).isFalse();
    assertThat(t.encodePrompt("Hi")).containsExactly(t.encode("Hi"));
    int imEnd = t.tokenId("<|im_end|>");
    assertThat(imEnd).isEqualTo(151645);
    assertThat(t.isEndOfGeneration(imEnd)).isTrue();
    assertThat(t.isEndOfGeneration(151643)).isTrue();
    // User-defined tokens ([PAD151646], type 4) are matched as specials and decode as text.
    assertThat(t.encodeWithSpecialTokens("[PAD151646]")).containsExactly(151646);
    assertThat(t.decode(new int[] {151646})).isEqualTo("[PAD151646]");
  }

  @Test
  void byteLevelTokensStreamBackIntoWholeCharacters() {
    Tokenizer t = tokenizer("qwen2");
    String text = "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～";
    Utf8StreamDecoder d = new Utf8StreamDecoder();
    StringBuilder out = new StringBuilder();
    for (int id : t.encode(text)) {
      String piece = d.accept(t, id);
      assertThat(piece).doesNotContain("\uFFFD");
      out.append(piece);
    }
    assertThat(out.append(d.flush()).toString()).isEqualTo(text);
  }

  /** A small SentencePiece-style vocabulary in a GGUF file, with {@code edit} applied. */
  private static Path writeTinyVocab(Path dir, java.util.function.Consumer<GgufWriter> edit)
      throws IOException {
    GgufWriter w =
        new GgufWriter()
            .putString(GgufVocabulary.MODEL, "llama")
            .putStringArray(GgufVocabulary.TOKENS, "<unk>", "<s>", "</s>", "\u2581", "a", "\u2581a")
            .putFloat32Array(GgufVocabulary.SCORES, new float[] {0, 0, 0, -1, -2, -3})
            .putInt32Array(GgufVocabulary.TOKEN_TYPE, new int[] {2, 3, 3, 1, 1, 1})
            .putUInt32(GgufVocabulary.BOS_ID, 1)
            .putUInt32(GgufVocabulary.EOS_ID, 2);
    edit.accept(w);
    Path f = dir.resolve("tiny.gguf");
    w.write(f);
    return f;
  }

  private static Tokenizer open(Path f) {
    try (GgufFile g = GgufFile.open(f)) {
      return Tokenizers.fromGguf(g);
    }
  }

  @Test
  void tinyGgufVocabularyHonoursAddSpacePrefixAndAddBos(@TempDir Path dir) throws IOException {
    Tokenizer t = open(writeTinyVocab(dir, w -> {}));
    assertThat(t.encode("a a")).containsExactly(5, 5);
    assertThat(t.encodePrompt("a")).containsExactly(1, 5);
    Tokenizer noPrefix =
        open(
            writeTinyVocab(
                dir,
                w ->
                    w.putBool(GgufVocabulary.ADD_SPACE_PREFIX, false)
                        .putBool(GgufVocabulary.ADD_BOS, false)));
    assertThat(noPrefix.encode("a a")).containsExactly(4, 5);
    assertThat(noPrefix.encodePrompt("a")).containsExactly(4);
    assertThat(noPrefix.decode(new int[] {4, 5})).isEqualTo("a a");
    // No byte pieces: an unknown character becomes UNK.
    assertThat(t.encode("ab")).containsExactly(5, 0);
  }

  @Test
  void badTokenizerMetadataNamesTheKey(@TempDir Path dir) throws IOException {
    assertThatThrownBy(
            () -> open(writeTinyVocab(dir, w -> w.putString(GgufVocabulary.MODEL, "bert"))))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key '" + GgufVocabulary.MODEL + "'")
        .hasMessageContaining("bert");
    assertThatThrownBy(() -> open(writeTinyVocab(dir, w -> w.putUInt32(GgufVocabulary.EOS_ID, 99))))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key '" + GgufVocabulary.EOS_ID + "'")
        .hasMessageContaining("outside the vocabulary");
    assertThatThrownBy(
            () ->
                open(
                    writeTinyVocab(
                        dir, w -> w.putFloat32Array(GgufVocabulary.SCORES, new float[] {0}))))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key '" + GgufVocabulary.SCORES + "'");
    assertThatThrownBy(
            () ->
                open(
                    writeTinyVocab(
                        dir,
                        w ->
                            w.putString(GgufVocabulary.MODEL, "gpt2")
                                .putStringArray(GgufVocabulary.MERGES, "a a")
                                .putString(GgufVocabulary.PRE, "falcon"))))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key '" + GgufVocabulary.PRE + "'")
        .hasMessageContaining("falcon");
    assertThatThrownBy(
            () -> open(writeTinyVocab(dir, w -> w.putString(GgufVocabulary.MODEL, "gpt2"))))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("key '" + GgufVocabulary.MERGES + "'");
  }
}
