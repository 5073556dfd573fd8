package dev.longctx.engine.inference;

import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import java.util.List;

/**
 * Autoregressive generation: prefill the prompt, then sample one token at a time, streaming text as
 * soon as it is final. Text that might be the start of a stop string is held back until it is known
 * not to be one, so a stop string never reaches the listener.
 */
public final class Generator {

  /** Why generation ended (OpenAI's {@code finish_reason} maps STOP and END_OF_TEXT to "stop"). */
  public enum FinishReason {
    /** A stop string appeared. */
    STOP,
    /** The model produced an end-of-generation token. */
    END_OF_TEXT,
    /** maxTokens were generated. */
    LENGTH,
    /** The sequence reached the model's context length. */
    CONTEXT
  }

  /**
   * What to generate.
   *
   * @param prompt prompt token ids (BOS included when wanted), at least one
   * @param sampling sampling parameters
   * @param maxTokens tokens to generate at most, ≥ 1
   * @param stop stop strings (may be empty)
   * @param maxContext the most tokens the sequence may hold (prompt + generated), ≥ 1
   */
  public record Request(
      int[] prompt, SamplingParams sampling, int maxTokens, List<String> stop, int maxContext) {
    public Request {
      if (prompt.length == 0) {
        throw new IllegalArgumentException("the prompt is empty: give at least one token");
      }
      if (maxTokens < 1) {
        throw new IllegalArgumentException("max tokens must be >= 1, got " + maxTokens);
      }
      if (prompt.length > maxContext) {
        throw new IllegalArgumentException(
            "the prompt has "
                + prompt.length
                + " tokens, more than the context limit of "
                + maxContext
                + " tokens");
      }
      stop = List.copyOf(stop);
      for (String s : stop) {
        if (s.isEmpty()) {
          throw new IllegalArgumentException("stop strings must not be empty");
        }
      }
    }
  }

  /**
   * The outcome.
   *
   * @param tokens generated token ids (the one that ended generation by EOS is not included)
   * @param text the streamed text, without any stop string
   * @param prefillNanos time from start to the first generated token's logits
   * @param decodeNanos time of the remaining decode steps
   */
  public record Result(
      int promptTokens,
      int[] tokens,
      String text,
      FinishReason finishReason,
      long prefillNanos,
      long decodeNanos) {

    public int completionTokens() {
      return tokens.length;
    }

    public double prefillTokensPerSecond() {
      return promptTokens / (prefillNanos / 1e9);
    }

    /** Decode steps after the first token, per second. */
    public double decodeTokensPerSecond() {
      int steps = Math.max(0, tokens.length - 1);
      return decodeNanos == 0 ? 0 : steps / (decodeNanos / 1e9);
    }
  }

  /** Receives text as it becomes final. */
  @FunctionalInterface
  public interface Listener {
    void onText(String text);
  }

  private Generator() {}

  public static <S> Result generate(
      Decoder<S> model, Tokenizer tokenizer, Request request, Listener listener) {
    Decoding decoding = new Decoding(tokenizer, request);
    S seq = model.newSequence(decoding.limit());
    try {
      return run(model, seq, decoding, request, listener);
    } finally {
      model.release(seq);
    }
  }

  private static <S> Result run(
      Decoder<S> model, S seq, Decoding decoding, Request request, Listener listener) {
    long t0 = System.nanoTime();
    float[] logits = model.prefill(seq, request.prompt());
    long prefillEnd = 0;
    while (true) {
      Decoding.Step step = decoding.next(logits);
      if (prefillEnd == 0) {
        prefillEnd = System.nanoTime();
      }
      if (!step.text().isEmpty()) {
        listener.onText(step.text());
      }
      if (step.finish() != null) {
        break;
      }
      logits = model.decode(seq, step.token());
    }
    long end = System.nanoTime();
    return new Result(
        request.prompt().length,
        decoding.generatedTokens(),
        decoding.text(),
        decoding.finishReason(),
        prefillEnd - t0,
        end - prefillEnd);
  }
}
