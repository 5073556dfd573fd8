package dev.longctx.engine.inference;

import dev.longctx.engine.sampling.Sampler;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.engine.tokenizer.Utf8StreamDecoder;
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

  public static Result generate(
      Transformer model, Tokenizer tokenizer, Request request, Listener listener) {
    int limit = Math.min(request.maxContext(), request.prompt().length + request.maxTokens());
    Sequence seq = model.newSequence(limit);
    Sampler sampler = new Sampler(request.sampling());
    int[] history = new int[limit];
    System.arraycopy(request.prompt(), 0, history, 0, request.prompt().length);
    int length = request.prompt().length;
    StopMatcher stops = new StopMatcher(request.stop(), listener);
    Utf8StreamDecoder utf8 = new Utf8StreamDecoder();

    long t0 = System.nanoTime();
    float[] logits = model.prefill(seq, request.prompt());
    long prefillEnd = 0;
    FinishReason reason = FinishReason.LENGTH;
    int generated = 0;
    while (true) {
      int token = sampler.sample(logits, history, length);
      if (prefillEnd == 0) {
        prefillEnd = System.nanoTime();
      }
      if (tokenizer.isEndOfGeneration(token)) {
        reason = FinishReason.END_OF_TEXT;
        break;
      }
      byte[] bytes = pieceBytes(tokenizer, history[length - 1], token);
      history[length++] = token;
      generated++;
      if (stops.accept(utf8.accept(bytes))) {
        reason = FinishReason.STOP;
        break;
      }
      if (generated == request.maxTokens()) {
        reason = FinishReason.LENGTH;
        break;
      }
      if (length == limit) {
        reason = FinishReason.CONTEXT;
        break;
      }
      logits = model.decode(seq, token);
    }
    long end = System.nanoTime();
    if (reason != FinishReason.STOP) {
      stops.accept(utf8.flush());
      stops.flush();
    }
    int[] tokens = new int[generated];
    System.arraycopy(history, request.prompt().length, tokens, 0, generated);
    return new Result(
        request.prompt().length, tokens, stops.text(), reason, prefillEnd - t0, end - prefillEnd);
  }

  /**
   * The bytes {@code token} adds to the text after {@code previous}. Right after BOS, a
   * SentencePiece vocabulary's dummy-prefix space is dropped, as its whole-sequence {@code decode}
   * (and llama2.c, llama.cpp, Hugging Face) do; byte-level vocabularies keep their spaces.
   */
  static byte[] pieceBytes(Tokenizer tokenizer, int previous, int token) {
    byte[] bytes = tokenizer.tokenBytes(token);
    if (previous == tokenizer.bosId()
        && bytes.length > 0
        && bytes[0] == ' '
        && !tokenizer.decode(new int[] {token}).startsWith(" ")) {
      return java.util.Arrays.copyOfRange(bytes, 1, bytes.length);
    }
    return bytes;
  }

  /** Streams text to a listener, holding back any tail that could begin a stop string. */
  static final class StopMatcher {
    private final List<String> stops;
    private final Listener listener;
    private final StringBuilder emitted = new StringBuilder();
    private final StringBuilder pending = new StringBuilder();

    StopMatcher(List<String> stops, Listener listener) {
      this.stops = stops;
      this.listener = listener;
    }

    /** Adds text; returns true when a stop string completed (text before it is emitted). */
    boolean accept(String text) {
      if (text.isEmpty()) {
        return false;
      }
      pending.append(text);
      int cut = -1;
      for (String s : stops) {
        int i = pending.indexOf(s);
        if (i >= 0 && (cut < 0 || i < cut)) {
          cut = i;
        }
      }
      if (cut >= 0) {
        emit(pending.substring(0, cut));
        pending.setLength(0);
        return true;
      }
      int hold = 0;
      String p = pending.toString();
      for (String s : stops) {
        for (int k = Math.min(s.length() - 1, p.length()); k > hold; k--) {
          if (p.regionMatches(p.length() - k, s, 0, k)) {
            hold = k;
            break;
          }
        }
      }
      emit(pending.substring(0, pending.length() - hold));
      pending.delete(0, pending.length() - hold);
      return false;
    }

    void flush() {
      emit(pending.toString());
      pending.setLength(0);
    }

    private void emit(String s) {
      if (!s.isEmpty()) {
        emitted.append(s);
        listener.onText(s);
      }
    }

    String text() {
      return emitted.toString();
    }
  }
}
