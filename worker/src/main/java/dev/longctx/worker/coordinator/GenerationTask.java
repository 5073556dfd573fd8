package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.sampling.Sampler;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.engine.tokenizer.Utf8StreamDecoder;
import java.util.Arrays;
import java.util.List;

/**
 * One request's generation as a sequence of engine steps (a prefill chunk, or one sampled token and
 * its decode), so one engine thread can interleave many requests. Token for token it makes the
 * choices {@code dev.longctx.engine.inference.Generator} makes: the same sampler calls on the same
 * logits, the same stop, length and context rules, the same text.
 */
public final class GenerationTask {

  /** Prompt tokens fed per prefill step: a multiple of the engine's chunk, so results match. */
  static final int PREFILL_STEP = 1024;

  /** A validated request. */
  public record Spec(
      String requestId,
      int[] prompt,
      SamplingParams sampling,
      int maxTokens,
      List<String> stop,
      int maxContext) {}

  private final Spec spec;
  private final Tokenizer tokenizer;
  private final GenerationSink sink;
  private final long arrivalNanos;
  private final int limit;
  private final Sampler sampler;
  private final int[] history;
  private final StopFilter stops;
  private final Utf8StreamDecoder utf8 = new Utf8StreamDecoder();

  private SequenceRunner runner;
  private int prefilled;
  private int length;
  private int generated;
  private float[] logits;
  private long prefillStartNanos;
  private long firstTokenNanos;
  private volatile boolean cancelled;
  private boolean done;

  public GenerationTask(Spec spec, Tokenizer tokenizer, GenerationSink sink) {
    this.spec = spec;
    this.tokenizer = tokenizer;
    this.sink = sink;
    this.arrivalNanos = System.nanoTime();
    this.limit = Math.min(spec.maxContext(), spec.prompt().length + spec.maxTokens());
    this.sampler = new Sampler(spec.sampling());
    this.history = new int[limit];
    System.arraycopy(spec.prompt(), 0, history, 0, spec.prompt().length);
    this.length = spec.prompt().length;
    this.stops = new StopFilter(spec.stop());
  }

  public Spec spec() {
    return spec;
  }

  public String requestId() {
    return spec.requestId();
  }

  /** KV positions the request may come to hold. */
  public int capacity() {
    return limit;
  }

  public long arrivalNanos() {
    return arrivalNanos;
  }

  /** Prompt tokens not yet prefilled. */
  public int pendingPrefillTokens() {
    return spec.prompt().length - prefilled;
  }

  /** KV tokens held now. */
  public int residentTokens() {
    return runner == null ? 0 : runner.length();
  }

  public boolean isDone() {
    return done;
  }

  /** The client went away: the next step frees the KV and ends the task. */
  public void cancel() {
    cancelled = true;
  }

  public boolean isCancelled() {
    return cancelled;
  }

  /** The request could not be started (no capacity, shutdown, backend failure). */
  void failToStart(Throwable error) {
    done = true;
    sink.onError(error);
  }

  void start(SequenceRunner runner) {
    this.runner = runner;
    this.prefillStartNanos = System.nanoTime();
  }

  /** Runs one engine step; returns true when the task is finished (its KV already freed). */
  boolean step() {
    if (done) {
      return true;
    }
    if (cancelled) {
      finish(null);
      return true;
    }
    try {
      int[] prompt = spec.prompt();
      if (prefilled < prompt.length) {
        int n = Math.min(PREFILL_STEP, prompt.length - prefilled);
        logits = runner.prefill(Arrays.copyOfRange(prompt, prefilled, prefilled + n));
        prefilled += n;
        if (prompt.length > PREFILL_STEP) {
          sink.onPrefillProgress(prefilled, prompt.length);
        }
        if (prefilled < prompt.length) {
          return false;
        }
      }
      return sampleAndAdvance();
    } catch (RuntimeException e) {
      closeRunner();
      done = true;
      sink.onError(e);
      return true;
    }
  }

  private boolean sampleAndAdvance() {
    int token = sampler.sample(logits, history, length);
    if (firstTokenNanos == 0) {
      firstTokenNanos = System.nanoTime();
    }
    if (tokenizer.isEndOfGeneration(token)) {
      finish(FinishReason.END_OF_TEXT);
      return true;
    }
    byte[] bytes = pieceBytes(history[length - 1], token);
    history[length++] = token;
    generated++;
    String text = stops.accept(utf8.accept(bytes));
    sink.onTokens(new int[] {token}, text);
    if (stops.stopped()) {
      finish(FinishReason.STOP);
    } else if (generated == spec.maxTokens()) {
      finish(FinishReason.LENGTH);
    } else if (length == limit) {
      finish(FinishReason.CONTEXT);
    } else {
      logits = runner.decode(token);
      return false;
    }
    return true;
  }

  private void finish(FinishReason reason) {
    closeRunner();
    done = true;
    if (reason == null) {
      return; // cancelled: nobody is listening
    }
    if (reason != FinishReason.STOP) {
      String tail = stops.accept(utf8.flush()) + (stops.stopped() ? "" : stops.flush());
      if (!tail.isEmpty()) {
        sink.onTokens(new int[0], tail);
      }
    }
    long end = System.nanoTime();
    long first = firstTokenNanos == 0 ? end : firstTokenNanos;
    double decodeSeconds = (end - first) / 1e9;
    double prefillSeconds = (first - prefillStartNanos) / 1e9;
    sink.onFinish(
        reason,
        new GenerationSink.Usage(
            spec.prompt().length,
            generated,
            runner == null ? 0 : runner.shardsUsed(),
            (first - arrivalNanos) / 1e9,
            decodeSeconds > 0 ? Math.max(0, generated - 1) / decodeSeconds : 0,
            prefillSeconds > 0 ? spec.prompt().length / prefillSeconds : 0));
  }

  private void closeRunner() {
    if (runner != null) {
      runner.close();
    }
  }

  /**
   * The bytes {@code token} adds after {@code previous}: right after BOS a SentencePiece
   * dummy-prefix space is dropped, as whole-sequence decoding does (the engine's Generator rule).
   */
  private byte[] pieceBytes(int previous, int token) {
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
