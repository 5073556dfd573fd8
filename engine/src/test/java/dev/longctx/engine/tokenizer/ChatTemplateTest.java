package dev.longctx.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class ChatTemplateTest {

  private static final List<ChatMessage> CHAT =
      List.of(
          ChatMessage.system("Be brief."),
          ChatMessage.user("Hi!"),
          ChatMessage.assistant("Hello."),
          ChatMessage.user("Who are you?"));

  @Test
  void llama3RendersHeadersAndEotWithOneLeadingBos() {
    assertThat(ChatTemplate.LLAMA3.render(CHAT))
        .isEqualTo(
            "<|begin_of_text|>"
                + "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n");
  }

  @Test
  void chatMlAddsQwen2DefaultSystemPromptOnlyWhenThereIsNone() {
    assertThat(ChatTemplate.CHATML.render(List.of(ChatMessage.user("Hi"))))
        .isEqualTo(
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                + "<|im_start|>user\nHi<|im_end|>\n"
                + "<|im_start|>assistant\n");
    assertThat(ChatTemplate.CHATML.render(CHAT, false))
        .startsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!")
        .endsWith("<|im_start|>user\nWho are you?<|im_end|>\n");
  }

  @Test
  void llama2FoldsTheSystemPromptIntoTheFirstInstruction() {
    assertThat(ChatTemplate.LLAMA2.render(CHAT))
        .isEqualTo(
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. </s>"
                + "<s>[INST] Who are you? [/INST]");
  }

  @Test
  void plainFallbackForBaseModels() {
    assertThat(ChatTemplate.PLAIN.render(List.of(ChatMessage.user("Tell me a story."))))
        .isEqualTo("User: Tell me a story.\nAssistant:");
  }

  @Test
  void chosenFromTheVocabularysSpecialTokens() {
    assertThat(ChatTemplate.forTokenizer(GgufVocabularyTest.tokenizer("llama-bpe")))
        .isEqualTo(ChatTemplate.LLAMA3);
    assertThat(ChatTemplate.forTokenizer(GgufVocabularyTest.tokenizer("qwen2")))
        .isEqualTo(ChatTemplate.CHATML);
    assertThat(ChatTemplate.forTokenizer(GgufVocabularyTest.tokenizer("llama-spm")))
        .isEqualTo(ChatTemplate.LLAMA2);
    assertThat(
            ChatTemplate.forTokenizer(
                Tokenizers.fromLlama2c(TestData.file("models/stories260K/tok512.bin"))))
        .isEqualTo(ChatTemplate.PLAIN);
  }

  @Test
  void chosenFromTheGgufJinjaTemplateOrByName() {
    String jinja;
    try (GgufFile g = GgufFile.open(TestData.file("tokenizers/gguf-vocab/ggml-vocab-qwen2.gguf"))) {
      jinja = g.getString(GgufVocabulary.CHAT_TEMPLATE);
    }
    assertThat(ChatTemplate.fromJinja(jinja)).contains(ChatTemplate.CHATML);
    assertThat(ChatTemplate.fromJinja("{{ messages }}")).isEmpty();
    assertThat(ChatTemplate.select(GgufVocabularyTest.tokenizer("llama-bpe"), null))
        .isEqualTo(ChatTemplate.LLAMA3);
    assertThat(ChatTemplate.byName("Llama-3")).isEqualTo(ChatTemplate.LLAMA3);
    assertThat(ChatTemplate.byName("qwen2")).isEqualTo(ChatTemplate.CHATML);
    assertThatThrownBy(() -> ChatTemplate.byName("vicuna"))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void llama3EncodingHasExactlyOneBosAndEndsWithTheAssistantHeader() {
    Tokenizer t = GgufVocabularyTest.tokenizer("llama-bpe");
    int[] ids = ChatTemplate.LLAMA3.encode(t, List.of(ChatMessage.user("Hi")));
    assertThat(ids)
        .containsExactly(
            128000,
            128006,
            t.tokenId("user"),
            128007,
            271,
            t.tokenId("Hi"),
            128009,
            128006,
            t.tokenId("assistant"),
            128007,
            271);
  }

  @Test
  void qwen2EncodingUsesImStartAndNoBos() {
    Tokenizer t = GgufVocabularyTest.tokenizer("qwen2");
    int[] ids = ChatTemplate.CHATML.encode(t, List.of(ChatMessage.user("Hi")));
    int imStart = t.tokenId("<|im_start|>");
    assertThat(ids[0]).isEqualTo(imStart);
    assertThat(Arrays.stream(ids).filter(id -> id == imStart)).hasSize(3);
    assertThat(t.decode(ids))
        .isEqualTo("system\nYou are a helpful assistant\nuser\nHi\nassistant\n");
  }

  @Test
  void llama2EncodingMatchesMetasPerTurnTokenization() {
    Tokenizer t = GgufVocabularyTest.tokenizer("llama-spm");
    int[] ids = ChatTemplate.LLAMA2.encode(t, CHAT);
    // Meta's chat_completion: bos + encode("[INST] ... [/INST] answer ") + eos, then the last turn.
    int[] first = t.encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. ");
    int[] second = t.encode("[INST] Who are you? [/INST]");
    int[] expected = new int[first.length + second.length + 3];
    expected[0] = 1;
    System.arraycopy(first, 0, expected, 1, first.length);
    expected[first.length + 1] = 2;
    expected[first.length + 2] = 1;
    System.arraycopy(second, 0, expected, first.length + 3, second.length);
    assertThat(ids).containsExactly(expected);
  }

  @Test
  void plainTemplateGetsBosFromTheTokenizer() {
    Tokenizer t = Tokenizers.fromLlama2c(TestData.file("models/stories260K/tok512.bin"));
    int[] ids = ChatTemplate.PLAIN.encode(t, List.of(ChatMessage.user("Hi")));
    assertThat(ids[0]).isEqualTo(1);
    assertThat(t.decode(ids)).isEqualTo("User: Hi\nAssistant:");
  }
}
