package dev.longctx.worker.api;

import io.grpc.Status;

/**
 * An answer of the OpenAI-compatible API that is not a completion: an HTTP status and the body
 * OpenAI clients parse, {@code {"error":{"message","type","param","code"}}}.
 */
final class OpenAiError extends RuntimeException {

  final int status;
  final String type;
  final String param;
  final String code;

  OpenAiError(int status, String type, String param, String code, String message) {
    super(message, null, false, false);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  /** 400: the request is malformed or breaks a limit; {@code param} names the field. */
  static OpenAiError invalid(String param, String message) {
    return new OpenAiError(400, "invalid_request_error", param, null, message);
  }

  /**
   * The HTTP answer to a status of the serving path: {@code INVALID_ARGUMENT} → 400 (the field the
   * validator named becomes {@code param}), {@code RESOURCE_EXHAUSTED} → 429, {@code UNAVAILABLE} →
   * 503, anything else → 500.
   *
   * @param promptField the request's prompt field ({@code prompt} or {@code messages})
   * @param maxTokensField the name the client gave max tokens ({@code max_tokens} or {@code
   *     max_completion_tokens})
   */
  static OpenAiError fromStatus(Status status, String promptField, String maxTokensField) {
    String message = status.getDescription() != null ? status.getDescription() : status.toString();
    return switch (status.getCode()) {
      case INVALID_ARGUMENT -> invalidArgument(message, promptField, maxTokensField);
      case RESOURCE_EXHAUSTED ->
          new OpenAiError(429, "rate_limit_error", null, "insufficient_capacity", message);
      case UNAVAILABLE -> new OpenAiError(503, "server_error", null, "unavailable", message);
      case NOT_FOUND -> new OpenAiError(404, "invalid_request_error", null, "not_found", message);
      default -> new OpenAiError(500, "server_error", null, null, message);
    };
  }

  /**
   * The validator words its messages with the gRPC field names ({@code sampling.temperature}, the
   * prompt, {@code max_tokens}); an OpenAI client sent {@code temperature}, {@code prompt} or
   * {@code messages}, {@code max_tokens} or {@code max_completion_tokens}.
   */
  private static OpenAiError invalidArgument(
      String message, String promptField, String maxTokensField) {
    if (message.startsWith("sampling.")) {
      String rest = message.substring("sampling.".length());
      int end = rest.indexOf(' ');
      return invalid(end > 0 ? rest.substring(0, end) : null, rest);
    }
    if (message.startsWith("max_tokens")) {
      return invalid(maxTokensField, maxTokensField + message.substring("max_tokens".length()));
    }
    if (message.startsWith("stop")) {
      return invalid("stop", message);
    }
    if (message.contains("context limit")) {
      return new OpenAiError(
          400, "invalid_request_error", promptField, "context_length_exceeded", message);
    }
    if (message.contains("prompt") || message.contains("token id") || message.contains("chat")) {
      return invalid(promptField, message);
    }
    return invalid(null, message);
  }
}
