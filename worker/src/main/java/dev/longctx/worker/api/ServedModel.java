package dev.longctx.worker.api;

import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.tokenizer.Tokenizer;
import java.util.List;

/**
 * What the coordinator serves: the model's shape and vocabulary and the limits requests are checked
 * against.
 *
 * @param name model name reported to clients
 * @param config the model's hyper-parameters
 * @param tokenizer its vocabulary
 * @param contextLimit tokens a sequence may hold (prompt + generated), the extended context
 * @param attentionMethods methods a request may choose; the first is the default
 */
public record ServedModel(
    String name,
    LlamaConfig config,
    Tokenizer tokenizer,
    int contextLimit,
    List<String> attentionMethods) {

  /** Tokens generated when a request leaves max_tokens unset (and the context allows). */
  public static final int DEFAULT_MAX_TOKENS = 256;

  public ServedModel {
    if (contextLimit < 1) {
      throw new IllegalArgumentException("context limit must be >= 1, got " + contextLimit);
    }
    attentionMethods = List.copyOf(attentionMethods);
  }
}
