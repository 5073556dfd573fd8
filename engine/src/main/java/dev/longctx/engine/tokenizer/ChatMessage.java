package dev.longctx.engine.tokenizer;

import java.util.Objects;

/**
 * One chat turn.
 *
 * @param role "system", "user" or "assistant" (other roles are rendered as given)
 * @param content the text of the turn
 */
public record ChatMessage(String role, String content) {

  public ChatMessage {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(content, "content");
  }

  public static ChatMessage system(String content) {
    return new ChatMessage("system", content);
  }

  public static ChatMessage user(String content) {
    return new ChatMessage("user", content);
  }

  public static ChatMessage assistant(String content) {
    return new ChatMessage("assistant", content);
  }
}
