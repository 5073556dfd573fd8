package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Decoding;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.worker.telemetry.Telemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
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
  private long lastTokenNanos;
  private final Telemetry telemetry = Telemetry.get();
  // The request's trace: a span from arrival to the end of the stream, current while it steps.
  private final Span span;
  private final Context context;
  private volatile boolean cancelled;
  private boolean done;

  public GenerationTask(Spec spec, Tokenizer tokenizer, GenerationSink sink) {
    this.spec = spec;
    this.tokenizer = tokenizer;
    this.sink = sink;
    this.arrivalNanos = System.nanoTime();
    this.span =
        telemetry
            .tracer()
            .spanBuilder("longctx.generate")
            .setAllAttributes(Telemetry.request(spec.requestId()))
            .setAttribute("longctx.prompt_tokens", spec.prompt().length)
            .setAttribute("longctx.max_tokens", spec.maxTokens())
            .startSpan();
    this.context = Context.current().with(span);
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
    Telemetry.fail(span, error);
    span.end();
    sink.onError(error);
  }

  /** Runs {@code body} in the request's trace context (placement spans join the request). */
  <T> T inContext(java.util.function.Supplier<T> body) {
    try (Scope ignored = context.makeCurrent()) {
      return body.get();
    }
  }

  void start(SequenceRunner runner) {
    this.runner = runner;
    this.prefillStartNanos = System.nanoTime();
  }

  /** Runs one engine step; returns true when the task is finished (its KV already freed). */
  boolean step() {
    try (Scope ignored = context.makeCurrent()) {
      return runStep();
    }
  }

  private boolean runStep() {
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
        boolean last = prefilled + n == prompt.length;
        logits = runner.prefill(Arrays.copyOfRange(prompt, prefilled, prefilled + n), last);
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
      Telemetry.fail(span, e);
      span.end();
      sink.onError(e);
      return true;
    }
  }

  private boolean sampleAndAdvance() {
    Decoding.Step step = decoding.next(logits);
    long now = System.nanoTime();
    if (firstTokenNanos == 0) {
      firstTokenNanos = now;
      telemetry.recordTimeToFirstToken((now - arrivalNanos) / 1e9);
      if (now > prefillStartNanos) {
        telemetry.recordPrefillRate(spec.prompt().length / ((now - prefillStartNanos) / 1e9));
      }
      span.addEvent("first token");
    } else {
      telemetry.recordInterToken((now - lastTokenNanos) / 1e9);
    }
    lastTokenNanos = now;
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
      span.setAttribute("longctx.finish_reason", "cancelled");
      span.end();
      return; // cancelled: nobody is listening
    }
    span.setAttribute("longctx.finish_reason", reason.name().toLowerCase(java.util.Locale.ROOT));
    span.setAttribute("longctx.completion_tokens", decoding.generated());
    span.setAttribute("longctx.shards_used", runner == null ? 0 : runner.shardsUsed());
    span.end();
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
