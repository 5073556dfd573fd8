package dev.longctx.engine.inference;

import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.sampling.Sampler;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.engine.tokenizer.Utf8StreamDecoder;
import java.util.Arrays;

/**
 * The token-by-token decisions of one generation, apart from where its forward pass runs: sample
 * from the logits, keep the history the sampler's penalties read, turn tokens into final text
 * (UTF-8 completed, stop strings held back and cut), and decide when to stop. {@link Generator}
 * drives it with an in-process {@link Transformer}; the serving layer drives it one engine step at
 * a time with a local or sharded forward pass, so both make exactly the same choices.
 */
public final class Decoding {

  /**
   * What one {@link #next} produced.
   *
   * @param token the sampled token, or -1 when the model ended the text (EOS is not kept)
   * @param text text that became final with this step (may be empty)
   * @param finish why generation ended with this step, or null to continue with {@code token}
   */
  public record Step(int token, String text, FinishReason finish) {

    /** The sampled token as an array of zero or one ids (for streaming). */
    public int[] tokens() {
      return token < 0 ? new int[0] : new int[] {token};
    }
  }

  private final Tokenizer tokenizer;
  private final Generator.Request request;
  private final int limit;
  private final Sampler sampler;
  private final int[] history;
  private final StopStrings stops;
  private final Utf8StreamDecoder utf8 = new Utf8StreamDecoder();
  private final StringBuilder text = new StringBuilder();
  private int length;
  private int generated;
  private FinishReason finish;

  public Decoding(Tokenizer tokenizer, Generator.Request request) {
    this.tokenizer = tokenizer;
    this.request = request;
    this.limit = Math.min(request.maxContext(), request.prompt().length + request.maxTokens());
    this.sampler = new Sampler(request.sampling());
    this.history = new int[limit];
    System.arraycopy(request.prompt(), 0, history, 0, request.prompt().length);
    this.length = request.prompt().length;
    this.stops = new StopStrings(request.stop());
  }

  /** The most tokens the sequence will hold (prompt + generated): its KV capacity. */
  public int limit() {
    return limit;
  }

  public Generator.Request request() {
    return request;
  }

  /** Tokens generated so far (the EOS that ended the text is not counted). */
  public int generated() {
    return generated;
  }

  /** The generated token ids. */
  public int[] generatedTokens() {
    return Arrays.copyOfRange(history, request.prompt().length, length);
  }

  /** All the text streamed so far. */
  public String text() {
    return text.toString();
  }

  /** Why generation ended, or null while it goes on. */
  public FinishReason finishReason() {
    return finish;
  }

  /**
   * Samples the next token from the logits after the sequence's last token. When the returned step
   * has no finish reason, the caller feeds {@code step.token()} to the forward pass and calls again
   * with the new logits. A finishing step carries the text still held back (unless a stop string
   * ended it, whose tail is dropped).
   */
  public Step next(float[] logits) {
    if (finish != null) {
      throw new IllegalStateException("generation already finished: " + finish);
    }
    int token = sampler.sample(logits, history, length);
    if (tokenizer.isEndOfGeneration(token)) {
      return end(-1, "", FinishReason.END_OF_TEXT);
    }
    byte[] bytes = pieceBytes(tokenizer, history[length - 1], token);
    history[length++] = token;
    generated++;
    String piece = stops.accept(utf8.accept(bytes));
    if (stops.stopped()) {
      return end(token, piece, FinishReason.STOP);
    }
    if (generated == request.maxTokens()) {
      return end(token, piece, FinishReason.LENGTH);
    }
    if (length == limit) {
      return end(token, piece, FinishReason.CONTEXT);
    }
    text.append(piece);
    return new Step(token, piece, null);
  }

  private Step end(int token, String piece, FinishReason reason) {
    finish = reason;
    StringBuilder out = new StringBuilder(piece);
    if (reason != FinishReason.STOP) {
      String tail = stops.accept(utf8.flush());
      out.append(tail);
      if (!stops.stopped()) {
        out.append(stops.flush());
      }
    }
    text.append(out);
    return new Step(token, out.toString(), reason);
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
      return Arrays.copyOfRange(bytes, 1, bytes.length);
    }
    return bytes;
  }
}
