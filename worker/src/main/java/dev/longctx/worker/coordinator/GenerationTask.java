package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Decoding;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.List;

/**
 * One request's generation as a sequence of engine steps (a prefill chunk, or one sampled token and
 * its decode), so one engine thread can interleave many requests. The token decisions are the
 * engine's {@link Decoding}, the same that {@link Generator} makes in one process.
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
  private final Decoding decoding;

  private SequenceRunner runner;
  private int prefilled;
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
    this.decoding =
        new Decoding(
            tokenizer,
            new Generator.Request(
                spec.prompt(), spec.sampling(), spec.maxTokens(), spec.stop(), spec.maxContext()));
  }

  public Spec spec() {
    return spec;
  }

  public String requestId() {
    return spec.requestId();
  }

  /** KV positions the request may come to hold. */
  public int capacity() {
    return decoding.limit();
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
    Decoding.Step step = decoding.next(logits);
    if (firstTokenNanos == 0) {
      firstTokenNanos = System.nanoTime();
    }
    if (step.token() >= 0 || !step.text().isEmpty()) {
      sink.onTokens(step.tokens(), step.text());
    }
    if (step.finish() != null) {
      finish(step.finish());
      return true;
    }
    logits = runner.decode(step.token());
    return false;
  }

  private void finish(FinishReason reason) {
    closeRunner();
    done = true;
    if (reason == null) {
      return; // cancelled: nobody is listening
    }
    long end = System.nanoTime();
    long first = firstTokenNanos == 0 ? end : firstTokenNanos;
    double decodeSeconds = (end - first) / 1e9;
    double prefillSeconds = (first - prefillStartNanos) / 1e9;
    int generated = decoding.generated();
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
}
