package dev.longctx.worker.api;

import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.ChatMessage;
import dev.longctx.engine.tokenizer.ChatTemplate;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.proto.v1.ChatMessages;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.worker.coordinator.GenerationTask;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * The edge check of every request (DESIGN.md §5): a request the engine cannot serve as asked is
 * answered {@code INVALID_ARGUMENT}, with the field and the limit it broke named.
 */
public final class RequestValidator {

  private static final Set<String> KNOWN_METHODS = Set.of("dense", "indexer-topk", "block-topk");

  private final ServedModel model;

  public RequestValidator(ServedModel model) {
    this.model = model;
  }

  /** The request as the engine runs it; throws {@code INVALID_ARGUMENT} naming the limit. */
  public GenerationTask.Spec validate(GenerateRequest r) {
    String requestId = r.getRequestId().isEmpty() ? UUID.randomUUID().toString() : r.getRequestId();
    if (r.getRequestId().length() > 256) {
      throw invalid("request_id must be at most 256 characters, got " + r.getRequestId().length());
    }
    int[] prompt = promptTokens(r);
    int limit = model.contextLimit();
    if (prompt.length > limit) {
      throw invalid(
          "the prompt has "
              + prompt.length
              + " tokens, more than the context limit of "
              + limit
              + " tokens");
    }
    int vocab = model.config().vocabSize();
    for (int id : prompt) {
      if (id < 0 || id >= vocab) {
        throw invalid("token id " + id + " is outside the vocabulary [0, " + vocab + ")");
      }
    }
    int maxTokens;
    if (r.hasMaxTokens()) {
      maxTokens = r.getMaxTokens();
      if (maxTokens < 1) {
        throw invalid("max_tokens must be >= 1, got " + maxTokens);
      }
    } else {
      maxTokens = Math.max(1, Math.min(ServedModel.DEFAULT_MAX_TOKENS, limit - prompt.length));
    }
    for (String s : r.getStopList()) {
      if (s.isEmpty()) {
        throw invalid("stop strings must not be empty");
      }
    }
    if (r.hasAttention()) {
      String method = r.getAttention().getMethod();
      if (!method.isEmpty() && !model.attentionMethods().contains(method)) {
        throw invalid(
            (KNOWN_METHODS.contains(method)
                    ? "attention.method \"" + method + "\" is not available for this model"
                    : "attention.method \"" + method + "\" is unknown")
                + "; available: "
                + String.join(", ", model.attentionMethods()));
      }
      if (r.getAttention().hasTopK() && r.getAttention().getTopK() < 1) {
        throw invalid("attention.top_k must be >= 1, got " + r.getAttention().getTopK());
      }
      if (r.getAttention().hasBlockSize() && r.getAttention().getBlockSize() < 1) {
        throw invalid("attention.block_size must be >= 1, got " + r.getAttention().getBlockSize());
      }
    }
    return new GenerationTask.Spec(
        requestId, prompt, sampling(r), maxTokens, List.copyOf(r.getStopList()), limit);
  }

  private int[] promptTokens(GenerateRequest r) {
    Tokenizer tok = model.tokenizer();
    int[] ids =
        switch (r.getInputCase()) {
          case PROMPT -> r.getPrompt().isEmpty() ? new int[0] : tok.encodePrompt(r.getPrompt());
          case TOKEN_IDS ->
              r.getTokenIds().getIdsList().stream().mapToInt(Integer::intValue).toArray();
          case CHAT -> chatTokens(tok, r.getChat());
          case INPUT_NOT_SET -> new int[0];
        };
    if (ids.length == 0) {
      throw invalid("the prompt is empty: give prompt text, token ids or chat messages");
    }
    return ids;
  }

  static int[] chatTokens(Tokenizer tok, ChatMessages chat) {
    if (chat.getMessagesCount() == 0) {
      return new int[0];
    }
    List<ChatMessage> messages = new ArrayList<>();
    for (var m : chat.getMessagesList()) {
      if (!Set.of("system", "user", "assistant").contains(m.getRole())) {
        throw invalid(
            "chat message role must be system, user or assistant, got \"" + m.getRole() + "\"");
      }
      messages.add(new ChatMessage(m.getRole(), m.getContent()));
    }
    return ChatTemplate.forTokenizer(tok).encode(tok, messages);
  }

  /** Server defaults are those of {@code longctx generate}. */
  private static SamplingParams sampling(GenerateRequest r) {
    var s = r.getSampling();
    float temperature = s.hasTemperature() ? s.getTemperature() : 0.8f;
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw invalid(
          "sampling.temperature must be >= 0 and finite (0 = greedy), got " + temperature);
    }
    float topP = s.hasTopP() ? s.getTopP() : 0.95f;
    if (!(topP > 0 && topP <= 1)) {
      throw invalid("sampling.top_p must be in (0, 1] (1 = off), got " + topP);
    }
    int topK = s.hasTopK() ? s.getTopK() : 40;
    float minP = s.hasMinP() ? s.getMinP() : 0.05f;
    float penalty = s.hasRepetitionPenalty() ? s.getRepetitionPenalty() : 1f;
    int lastN = s.hasRepetitionLastN() ? s.getRepetitionLastN() : 64;
    long seed = s.hasSeed() ? s.getSeed() : System.nanoTime();
    try {
      return new SamplingParams(temperature, topK, topP, minP, penalty, lastN, seed);
    } catch (IllegalArgumentException e) {
      throw invalid("sampling." + e.getMessage());
    }
  }

  static StatusRuntimeException invalid(String message) {
    return Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
  }
}
