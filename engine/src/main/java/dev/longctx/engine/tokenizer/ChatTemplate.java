package dev.longctx.engine.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * The chat formats of the supported model families, written out in Java instead of evaluating the
 * Jinja templates that GGUF and Hugging Face files carry: each is a few lines, and an interpreter
 * for Jinja would be larger than the rest of the tokenizer package. {@link #fromJinja} recognises
 * which format a file's template is.
 *
 * <p>A rendered prompt spells special tokens as text, so it must be encoded with {@link
 * Tokenizer#encodeWithSpecialTokens}; {@link #encode} does that and adds BOS where the format does
 * not already start with it.
 */
public enum ChatTemplate {

  /** Llama-3 instruct: header tokens around the role, {@code <|eot_id|>} after each turn. */
  LLAMA3 {
    @Override
    String render(List<ChatMessage> messages, boolean generationPrompt, String bos, String eos) {
      StringBuilder sb = new StringBuilder(bos);
      for (ChatMessage m : messages) {
        sb.append("<|start_header_id|>")
            .append(m.role())
            .append("<|end_header_id|>\n\n")
            .append(m.content().strip())
            .append("<|eot_id|>");
      }
      if (generationPrompt) {
        sb.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
      }
      return sb.toString();
    }
  },

  /** ChatML as Qwen2 uses it, with Qwen2's default system prompt when the chat has none. */
  CHATML {
    @Override
    String render(List<ChatMessage> messages, boolean generationPrompt, String bos, String eos) {
      StringBuilder sb = new StringBuilder();
      if (messages.isEmpty() || !messages.getFirst().role().equals("system")) {
        sb.append("<|im_start|>system\n").append(DEFAULT_SYSTEM_PROMPT).append("<|im_end|>\n");
      }
      for (ChatMessage m : messages) {
        sb.append("<|im_start|>")
            .append(m.role())
            .append('\n')
            .append(m.content())
            .append("<|im_end|>\n");
      }
      if (generationPrompt) {
        sb.append("<|im_start|>assistant\n");
      }
      return sb.toString();
    }
  },

  /**
   * Llama-2 chat as Meta's reference code builds it: the system prompt folded into the first user
   * turn between {@code <<SYS>>} markers, each exchange {@code <s>[INST] user [/INST] answer </s>}.
   * The prompt always ends after {@code [/INST]}, so {@code generationPrompt} changes nothing.
   */
  LLAMA2 {
    @Override
    String render(List<ChatMessage> messages, boolean generationPrompt, String bos, String eos) {
      List<ChatMessage> turns = new ArrayList<>(messages);
      if (turns.size() >= 2 && turns.getFirst().role().equals("system")) {
        ChatMessage sys = turns.removeFirst();
        ChatMessage first = turns.removeFirst();
        turns.addFirst(
            new ChatMessage(
                first.role(),
                "<<SYS>>\n" + sys.content().strip() + "\n<</SYS>>\n\n" + first.content().strip()));
      }
      StringBuilder sb = new StringBuilder();
      for (ChatMessage m : turns) {
        if (m.role().equals("assistant")) {
          sb.append(' ').append(m.content().strip()).append(' ').append(eos);
        } else {
          sb.append(bos).append("[INST] ").append(m.content().strip()).append(" [/INST]");
        }
      }
      return sb.toString();
    }
  },

  /** For base models without a chat format: "User: ...\nAssistant:". */
  PLAIN {
    @Override
    String render(List<ChatMessage> messages, boolean generationPrompt, String bos, String eos) {
      StringBuilder sb = new StringBuilder();
      for (ChatMessage m : messages) {
        sb.append(capitalize(m.role())).append(": ").append(m.content()).append('\n');
      }
      if (generationPrompt) {
        sb.append("Assistant:");
      }
      return sb.toString();
    }
  };

  /** What Qwen2's template says when a chat has no system message. */
  public static final String DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant";

  abstract String render(
      List<ChatMessage> messages, boolean generationPrompt, String bos, String eos);

  /**
   * The chat as prompt text ending with the assistant's turn opened, with the family's usual BOS
   * and EOS spellings ({@code <|begin_of_text|>}, {@code <s>}, {@code </s>}).
   */
  public String render(List<ChatMessage> messages) {
    return render(messages, true);
  }

  public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
    return render(
        messages, addGenerationPrompt, this == LLAMA3 ? "<|begin_of_text|>" : "<s>", "</s>");
  }

  /**
   * Renders with {@code tokenizer}'s own BOS/EOS strings and encodes, special tokens as their ids
   * and BOS in front when the vocabulary asks for it and the format did not already put it there.
   */
  public int[] encode(Tokenizer tokenizer, List<ChatMessage> messages) {
    String bos = tokenizer.bosId() >= 0 ? tokenizer.tokenText(tokenizer.bosId()) : "";
    String eos = tokenizer.eosId() >= 0 ? tokenizer.tokenText(tokenizer.eosId()) : "";
    if (this == LLAMA3) {
      int begin = tokenizer.tokenId("<|begin_of_text|>");
      bos = begin >= 0 ? "<|begin_of_text|>" : bos;
    }
    String text = render(messages, true, bos, eos);
    return tokenizer.withBos(tokenizer.encodeWithSpecialTokens(text));
  }

  /**
   * The format a vocabulary's special tokens imply: Llama-3 header tokens, ChatML's {@code
   * <|im_start|>}, a 32000-piece-or-larger SentencePiece vocabulary with {@code <s>} (Llama-2 and
   * its relatives), otherwise {@link #PLAIN}.
   */
  public static ChatTemplate forTokenizer(Tokenizer t) {
    if (t.tokenId("<|start_header_id|>") >= 0 && t.tokenId("<|eot_id|>") >= 0) {
      return LLAMA3;
    }
    if (t.tokenId("<|im_start|>") >= 0 && t.tokenId("<|im_end|>") >= 0) {
      return CHATML;
    }
    if (t.bosId() >= 0 && t.tokenText(t.bosId()).strip().equals("<s>") && t.vocabSize() >= 32000) {
      return LLAMA2;
    }
    return PLAIN;
  }

  /** The format of a Jinja chat template (GGUF {@code tokenizer.chat_template}), if recognised. */
  public static Optional<ChatTemplate> fromJinja(String template) {
    if (template == null) {
      return Optional.empty();
    }
    if (template.contains("<|start_header_id|>")) {
      return Optional.of(LLAMA3);
    }
    if (template.contains("<|im_start|>")) {
      return Optional.of(CHATML);
    }
    if (template.contains("[INST]")) {
      return Optional.of(LLAMA2);
    }
    return Optional.empty();
  }

  /** The file's template when recognised, else what the vocabulary implies. */
  public static ChatTemplate select(Tokenizer t, String jinjaTemplateOrNull) {
    return fromJinja(jinjaTemplateOrNull).orElseGet(() -> forTokenizer(t));
  }

  /** By name: llama3, chatml (or qwen2), llama2, plain; case-insensitive. */
  public static ChatTemplate byName(String name) {
    return switch (name.toLowerCase(Locale.ROOT).replace("-", "").replace("_", "")) {
      case "llama3" -> LLAMA3;
      case "chatml", "qwen2", "qwen" -> CHATML;
      case "llama2", "inst" -> LLAMA2;
      case "plain", "none", "raw" -> PLAIN;
      default ->
          throw new IllegalArgumentException(
              "unknown chat template '" + name + "' (llama3, chatml, llama2, plain)");
    };
  }

  private static String capitalize(String role) {
    return role.isEmpty() ? role : Character.toUpperCase(role.charAt(0)) + role.substring(1);
  }
}
