package dev.longctx.engine.gguf;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The vocab-only GGUF v3 files of llama.cpp's tokenizer tests parse, with the facts a tokenizer
 * depends on. Together they hold STRING, UINT32, FLOAT32, BOOL and arrays of STRING, FLOAT32 and
 * INT32 (checked below); the other value types are covered by {@link GgufRoundTripTest}.
 */
class GgufVocabFilesTest {

  @TempDir Path dir;

  private static GgufFile open(String name) {
    return GgufFile.open(TestData.file("tokenizers/gguf-vocab/" + name));
  }

  @Test
  void llamaSpmVocabHasSentencePieceTokensScoresAndTypes() {
    try (GgufFile g = open("ggml-vocab-llama-spm.gguf")) {
      assertThat(g.version()).isEqualTo(3);
      assertThat(g.alignment()).isEqualTo(GgufFile.DEFAULT_ALIGNMENT);
      assertThat(g.tensors()).isEmpty();
      assertThat(g.metadata()).hasSize(22);
      assertThat(g.getString("general.architecture")).isEqualTo("llama");
      assertThat(g.getString("tokenizer.ggml.model")).isEqualTo("llama");
      assertThat(g.getString("tokenizer.ggml.pre")).isEqualTo("default");

      String[] tokens = g.getStringArray("tokenizer.ggml.tokens");
      assertThat(tokens).hasSize(32000);
      assertThat(tokens[0]).isEqualTo("<unk>");
      assertThat(tokens[1]).isEqualTo("<s>");
      assertThat(tokens[2]).isEqualTo("</s>");
      assertThat(tokens[3]).isEqualTo("<0x00>");
      // The vocabulary itself holds two tokens spelled U+FFFD (bytes EF BF BD); every other token
      // decodes cleanly, so the reader introduced no replacement characters.
      assertThat(Arrays.stream(tokens).filter(t -> t.contains("\uFFFD"))).hasSize(2);
      assertThat(g.getInt("llama.vocab_size")).isEqualTo(tokens.length);

      float[] scores = g.getFloatArray("tokenizer.ggml.scores");
      assertThat(scores).hasSize(tokens.length);
      int[] types = g.getIntArray("tokenizer.ggml.token_type");
      assertThat(types).hasSize(tokens.length);
      // llama.cpp token types: 2 = unknown, 3 = control, 6 = byte.
      assertThat(types[0]).isEqualTo(2);
      assertThat(types[1]).isEqualTo(3);
      assertThat(types[3]).isEqualTo(6);
      assertThat(g.has("tokenizer.ggml.merges")).isFalse();

      assertThat(g.getInt("tokenizer.ggml.bos_token_id")).isEqualTo(1);
      assertThat(g.getInt("tokenizer.ggml.eos_token_id")).isEqualTo(2);
      assertThat(g.getInt("tokenizer.ggml.unknown_token_id")).isZero();
      assertThat(g.getBoolean("tokenizer.ggml.add_bos_token")).isTrue();
      assertThat(g.getBoolean("tokenizer.ggml.add_eos_token")).isFalse();
      assertThat(g.getFloat("llama.attention.layer_norm_rms_epsilon")).isEqualTo(1e-5f);
      assertThat(g.value("llama.context_length").type()).isEqualTo(GgufValueType.UINT32);
      assertThat(g.getInt("llama.context_length")).isEqualTo(4096);
      assertThat(g.getLong("llama.context_length")).isEqualTo(4096L);
    }
  }

  @Test
  void llamaBpeVocabHas128256TokensAndMerges() {
    try (GgufFile g = open("ggml-vocab-llama-bpe.gguf")) {
      assertThat(g.version()).isEqualTo(3);
      assertThat(g.getString("tokenizer.ggml.model")).isEqualTo("gpt2");
      assertThat(g.getString("tokenizer.ggml.pre")).isEqualTo("llama-bpe");
      String[] tokens = g.getStringArray("tokenizer.ggml.tokens");
      assertThat(tokens).hasSize(128256);
      assertThat(tokens[0]).isEqualTo("!");
      assertThat(tokens[128000]).isEqualTo("<|begin_of_text|>");
      assertThat(tokens[128001]).isEqualTo("<|end_of_text|>");
      assertThat(tokens).noneMatch(t -> t.contains("\uFFFD"));
      assertThat(g.getIntArray("tokenizer.ggml.token_type")).hasSize(tokens.length);
      // Byte-level BPE vocabularies carry merges instead of scores.
      assertThat(g.has("tokenizer.ggml.scores")).isFalse();
      String[] merges = g.getStringArray("tokenizer.ggml.merges");
      assertThat(merges).hasSize(280147);
      assertThat(merges[0]).isEqualTo("Ġ Ġ");
      assertThat(merges).allSatisfy(m -> assertThat(m).contains(" "));
      assertThat(g.getInt("tokenizer.ggml.bos_token_id")).isEqualTo(128000);
      assertThat(g.getInt("tokenizer.ggml.eos_token_id")).isEqualTo(128001);
      assertThat(g.getFloat("llama.rope.freq_base")).isEqualTo(500000f);
      assertThat(g.getInt("llama.attention.head_count_kv")).isEqualTo(8);
    }
  }

  @Test
  void qwen2VocabHas151936TokensMergesAndChatTemplate() {
    try (GgufFile g = open("ggml-vocab-qwen2.gguf")) {
      assertThat(g.getString("general.architecture")).isEqualTo("qwen2");
      assertThat(g.getString("tokenizer.ggml.model")).isEqualTo("gpt2");
      assertThat(g.getString("tokenizer.ggml.pre")).isEqualTo("qwen2");
      String[] tokens = g.getStringArray("tokenizer.ggml.tokens");
      assertThat(tokens).hasSize(151936);
      assertThat(tokens[151643]).isEqualTo("<|endoftext|>");
      assertThat(g.getIntArray("tokenizer.ggml.token_type")).hasSize(tokens.length);
      String[] merges = g.getStringArray("tokenizer.ggml.merges");
      assertThat(merges).hasSize(151387);
      assertThat(merges[0]).isEqualTo("Ġ Ġ");
      assertThat(g.getInt("tokenizer.ggml.eos_token_id")).isEqualTo(151643);
      assertThat(g.getInt("tokenizer.ggml.padding_token_id")).isEqualTo(151643);
      assertThat(g.getString("tokenizer.chat_template")).contains("<|im_start|>");
      assertThat(g.getFloat("qwen2.attention.layer_norm_rms_epsilon")).isEqualTo(1e-6f);
      // Absent keys: defaults apply.
      assertThat(g.getBoolean("tokenizer.ggml.add_bos_token", false)).isFalse();
      assertThat(g.findStringArray("tokenizer.ggml.scores")).isEmpty();
    }
  }

  @Test
  void everyValueTypeInTheVocabFilesIsRead() {
    Set<String> seen = new TreeSet<>();
    for (String f :
        new String[] {
          "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"
        }) {
      try (GgufFile g = open(f)) {
        g.metadata()
            .values()
            .forEach(
                v -> seen.add(v.isArray() ? "ARRAY[" + v.elementType() + "]" : v.type().name()));
      }
    }
    assertThat(seen)
        .containsExactlyInAnyOrder(
            "STRING",
            "UINT32",
            "FLOAT32",
            "BOOL",
            "ARRAY[STRING]",
            "ARRAY[FLOAT32]",
            "ARRAY[INT32]");
  }

  @Test
  void rewritingEachVocabFileWithTheWriterReproducesItByteForByte() throws IOException {
    for (String f :
        new String[] {
          "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"
        }) {
      Path original = TestData.file("tokenizers/gguf-vocab/" + f);
      Path copy = dir.resolve(f);
      try (GgufFile g = GgufFile.open(original)) {
        new GgufWriter().putAll(g.metadata()).write(copy);
      }
      assertThat(Files.mismatch(original, copy)).as(f).isEqualTo(-1L);
    }
  }

  @Test
  void closeUnmapsTheFileAndIsIdempotent() {
    GgufFile g = open("ggml-vocab-llama-spm.gguf");
    String[] tokens = g.getStringArray("tokenizer.ggml.tokens");
    g.close();
    g.close();
    // Metadata was copied to the heap while parsing and outlives the mapping.
    assertThat(tokens).hasSize(32000);
    assertThat(g.getString("tokenizer.ggml.model")).isEqualTo("llama");
  }
}
