package dev.longctx.worker.api;

import dev.longctx.engine.json.Json;
import dev.longctx.engine.json.JsonParseException;
import dev.longctx.proto.v1.ChatMessage;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.SamplingParams;
import java.math.BigInteger;
import java.util.List;
import java.util.Map;

/**
 * Reads the body of {@code POST /v1/completions} and {@code /v1/chat/completions} into the same
 * {@link GenerateRequest} a gRPC client sends, so both APIs share one validator and one engine
 * path.
 *
 * <p>Fields OpenAI clients send and this server honours: {@code model}, {@code prompt} (a string,
 * an array of token ids, or an array holding one of those), {@code messages} ({@code content} a
 * string or an array of text parts; role {@code developer} is read as {@code system}), {@code
 * max_tokens} / {@code max_completion_tokens}, {@code temperature}, {@code top_p}, {@code stop},
 * {@code seed}, {@code stream}, {@code stream_options.include_usage}; and the vLLM extensions
 * {@code top_k}, {@code min_p}, {@code repetition_penalty}. What this server cannot do as asked
 * ({@code n} &gt; 1, log probabilities, echo, presence and frequency penalties, logit bias, tools,
 * structured output) is refused with a 400 naming the field, rather than silently ignored. Fields
 * with no effect on the output ({@code user}, {@code metadata}, ...) are ignored; {@code null} is
 * read as absent, as OpenAI does.
 *
 * <p>Defaults follow the OpenAI API, not {@code longctx generate}: temperature 1, top-p 1, no top-k
 * or min-p, and {@code max_tokens} 16 for completions (chat completions run to the end of the text
 * or the context, capped by the server default).
 */
final class OpenAiRequests {

  /** OpenAI's default {@code max_tokens} of {@code /v1/completions}. */
  static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

  private OpenAiRequests() {}

  /**
   * A request as the engine runs it and as its answer is shaped.
   *
   * @param model the model the client named, or null
   * @param maxTokensField the field max tokens came from (for error messages)
   */
  record Parsed(
      boolean chat,
      String model,
      GenerateRequest generate,
      boolean stream,
      boolean includeUsage,
      String maxTokensField) {

    String promptField() {
      return chat ? "messages" : "prompt";
    }
  }

  static Parsed completion(String body) {
    Map<String, Object> r = object(body);
    refuseIf(r, "echo", Boolean.TRUE.equals(r.get("echo")), "echo is not supported");
    refuseIf(
        r,
        "suffix",
        r.get("suffix") instanceof String s && !s.isEmpty(),
        "suffix (insertion) is not supported");
    refuseIf(
        r,
        "logprobs",
        r.get("logprobs") != null,
        "logprobs are not supported by this server; remove the field");
    refuseIf(
        r,
        "best_of",
        r.get("best_of") != null && integer(r, "best_of") != 1,
        "best_of must be 1 (one completion per request)");
    GenerateRequest.Builder g = GenerateRequest.newBuilder();
    prompt(r.get("prompt"), g);
    int maxTokens =
        r.get("max_tokens") != null ? integer(r, "max_tokens") : COMPLETIONS_DEFAULT_MAX_TOKENS;
    g.setMaxTokens(maxTokens);
    return common(r, g, false, "max_tokens");
  }

  static Parsed chat(String body) {
    Map<String, Object> r = object(body);
    Object toolChoice = r.get("tool_choice");
    refuseIf(
        r,
        "tool_choice",
        toolChoice != null && !"none".equals(toolChoice) && !"auto".equals(toolChoice),
        "tool_choice is not supported by this server");
    refuseIf(
        r,
        "logprobs",
        Boolean.TRUE.equals(r.get("logprobs")),
        "logprobs are not supported by this server; remove the field or set it to false");
    refuseIf(
        r,
        "top_logprobs",
        r.get("top_logprobs") != null,
        "top_logprobs is not supported by this server");
    refuseIf(
        r,
        "tools",
        r.get("tools") instanceof List<?> l && !l.isEmpty(),
        "tools (function calling) are not supported by this server");
    refuseIf(
        r,
        "functions",
        r.get("functions") instanceof List<?> l && !l.isEmpty(),
        "functions are not supported by this server");
    refuseIf(
        r,
        "response_format",
        r.get("response_format") instanceof Map<?, ?> f && !"text".equals(f.get("type")),
        "response_format other than {\"type\": \"text\"} is not supported by this server");
    GenerateRequest.Builder g = GenerateRequest.newBuilder();
    Object messages = r.get("messages");
    if (!(messages instanceof List<?> list)) {
      throw OpenAiError.invalid(
          "messages", "messages must be an array of {\"role\", \"content\"} objects");
    }
    var chat = g.getChatBuilder();
    for (int i = 0; i < list.size(); i++) {
      String at = "messages[" + i + "]";
      if (!(list.get(i) instanceof Map<?, ?> m)) {
        throw OpenAiError.invalid(at, at + " must be an object with role and content");
      }
      if (!(m.get("role") instanceof String role)) {
        throw OpenAiError.invalid(at + ".role", at + ".role must be a string");
      }
      chat.addMessages(
          ChatMessage.newBuilder()
              .setRole(role.equals("developer") ? "system" : role)
              .setContent(content(m.get("content"), at + ".content")));
    }
    String field = "max_tokens";
    if (r.get("max_completion_tokens") != null) {
      field = "max_completion_tokens";
      g.setMaxTokens(integer(r, field));
    } else if (r.get("max_tokens") != null) {
      g.setMaxTokens(integer(r, field));
    }
    return common(r, g, true, field);
  }

  /** The fields both endpoints share. */
  private static Parsed common(
      Map<String, Object> r, GenerateRequest.Builder g, boolean chat, String maxTokensField) {
    refuseIf(
        r,
        "n",
        r.get("n") != null && integer(r, "n") != 1,
        "n must be 1: this server returns one choice per request");
    for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
      refuseIf(
          r,
          penalty,
          r.get(penalty) != null && number(r, penalty) != 0,
          penalty + " is not supported by this server; use repetition_penalty");
    }
    refuseIf(
        r,
        "logit_bias",
        r.get("logit_bias") instanceof Map<?, ?> m && !m.isEmpty(),
        "logit_bias is not supported by this server");
    String model = null;
    if (r.get("model") != null) {
      if (!(r.get("model") instanceof String m)) {
        throw OpenAiError.invalid("model", "model must be a string");
      }
      model = m;
    }
    SamplingParams.Builder s = g.getSamplingBuilder();
    s.setTemperature(r.get("temperature") != null ? number(r, "temperature") : 1f);
    s.setTopP(r.get("top_p") != null ? number(r, "top_p") : 1f);
    s.setTopK(r.get("top_k") != null ? integer(r, "top_k") : 0);
    s.setMinP(r.get("min_p") != null ? number(r, "min_p") : 0f);
    if (r.get("repetition_penalty") != null) {
      s.setRepetitionPenalty(number(r, "repetition_penalty"));
    }
    if (r.get("seed") != null) {
      if (!(r.get("seed") instanceof Long seed)) {
        throw OpenAiError.invalid("seed", "seed must be an integer in the range of int64");
      }
      s.setSeed(seed);
    }
    Object stop = r.get("stop");
    if (stop instanceof String one) {
      g.addStop(one);
    } else if (stop instanceof List<?> many) {
      for (Object o : many) {
        if (!(o instanceof String one)) {
          throw OpenAiError.invalid("stop", "stop must be a string or an array of strings");
        }
        g.addStop(one);
      }
    } else if (stop != null) {
      throw OpenAiError.invalid("stop", "stop must be a string or an array of strings");
    }
    boolean stream = bool(r, "stream");
    boolean includeUsage = false;
    if (r.get("stream_options") instanceof Map<?, ?> options) {
      Object include = options.get("include_usage");
      if (include != null && !(include instanceof Boolean)) {
        throw OpenAiError.invalid(
            "stream_options.include_usage", "stream_options.include_usage must be a boolean");
      }
      includeUsage = Boolean.TRUE.equals(include);
    } else if (r.get("stream_options") != null) {
      throw OpenAiError.invalid("stream_options", "stream_options must be an object");
    }
    return new Parsed(chat, model, g.build(), stream, includeUsage, maxTokensField);
  }

  private static void refuseIf(Map<String, Object> r, String field, boolean refuse, String why) {
    if (refuse) {
      throw OpenAiError.invalid(field, why);
    }
  }

  private static void prompt(Object p, GenerateRequest.Builder g) {
    if (p instanceof List<?> list && list.size() == 1 && !(list.getFirst() instanceof Long)) {
      p = list.getFirst(); // ["text"] or [[ids]]: a batch of one
    }
    switch (p) {
      case null -> throw OpenAiError.invalid("prompt", "prompt is required");
      case String text -> g.setPrompt(text);
      case List<?> list -> {
        var ids = g.getTokenIdsBuilder();
        for (Object o : list) {
          if (o instanceof Long id && id >= Integer.MIN_VALUE && id <= Integer.MAX_VALUE) {
            ids.addIds((int) (long) id);
          } else if (o instanceof String || o instanceof List<?>) {
            throw OpenAiError.invalid(
                "prompt", "batched prompts are not supported: send one prompt per request");
          } else {
            throw OpenAiError.invalid(
                "prompt",
                "prompt must be a string or an array of token ids, got an array holding " + o);
          }
        }
      }
      default ->
          throw OpenAiError.invalid("prompt", "prompt must be a string or an array of token ids");
    }
  }

  /** A message's content: a string, or the concatenated text of an array of text parts. */
  private static String content(Object c, String at) {
    switch (c) {
      case String s -> {
        return s;
      }
      case List<?> parts -> {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < parts.size(); i++) {
          if (!(parts.get(i) instanceof Map<?, ?> part)
              || !"text".equals(part.get("type"))
              || !(part.get("text") instanceof String piece)) {
            throw OpenAiError.invalid(
                at + "[" + i + "]",
                at
                    + "["
                    + i
                    + "] must be {\"type\": \"text\", \"text\": ...}: this model reads"
                    + " text only");
          }
          text.append(piece);
        }
        return text.toString();
      }
      case null -> throw OpenAiError.invalid(at, at + " is required");
      default -> throw OpenAiError.invalid(at, at + " must be a string or an array of text parts");
    }
  }

  private static Map<String, Object> object(String body) {
    Object parsed;
    try {
      parsed = Json.parse(body);
    } catch (JsonParseException e) {
      throw OpenAiError.invalid(
          null,
          "the body is not valid JSON: "
              + e.reason()
              + " at line "
              + e.line()
              + ", column "
              + e.column());
    }
    if (!(parsed instanceof Map<?, ?> map)) {
      throw OpenAiError.invalid(null, "the body must be a JSON object");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> r = (Map<String, Object>) map;
    return r;
  }

  private static int integer(Map<String, Object> r, String field) {
    Object v = r.get(field);
    if (v instanceof Long l && l >= Integer.MIN_VALUE && l <= Integer.MAX_VALUE) {
      return (int) (long) l;
    }
    if (v instanceof Long || v instanceof BigInteger) {
      throw OpenAiError.invalid(field, field + " is out of range, got " + v);
    }
    throw OpenAiError.invalid(field, field + " must be an integer, got " + describe(v));
  }

  private static float number(Map<String, Object> r, String field) {
    Object v = r.get(field);
    if (v instanceof Number n && !(v instanceof BigInteger)) {
      return n.floatValue();
    }
    throw OpenAiError.invalid(field, field + " must be a number, got " + describe(v));
  }

  private static boolean bool(Map<String, Object> r, String field) {
    Object v = r.get(field);
    if (v == null || v instanceof Boolean) {
      return Boolean.TRUE.equals(v);
    }
    throw OpenAiError.invalid(field, field + " must be a boolean, got " + describe(v));
  }

  private static String describe(Object v) {
    return v instanceof String s ? "the string \"" + s + "\"" : String.valueOf(v);
  }
}
