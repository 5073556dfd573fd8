package dev.longctx.worker.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.Tokenizer;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The admission queue of {@link EngineLoop} with a tiny capacity: requests that do not fit wait
 * (counted as queued prefill tokens), are admitted in arrival order as capacity frees, and get
 * RESOURCE_EXHAUSTED naming the limit only after the queue deadline. The backend's decode steps are
 * gated by the test, so which request holds capacity when is decided by the test, not by timing.
 */
class EngineLoopTest {

  static LoadedModel model;
  static Tokenizer tokenizer;

  @BeforeAll
  static void load() throws Exception {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    tokenizer = model.tokenizer();
  }

  @AfterAll
  static void close() {
    if (model != null) {
      model.close();
    }
  }

  /** The outcome of one request: its finish reason, or the status it failed with. */
  static final class Outcome implements GenerationSink {
    final CompletableFuture<Object> result = new CompletableFuture<>();
    final StringBuilder text = new StringBuilder();

    @Override
    public void onPrefillProgress(int done, int total) {}

    @Override
    public void onTokens(int[] tokenIds, String piece) {
      text.append(piece);
    }

    @Override
    public void onFinish(FinishReason reason, Usage usage) {
      result.complete(reason);
    }

    @Override
    public void onError(Throwable error) {
      result.complete(Status.fromThrowable(error));
    }

    Object await() throws Exception {
      return result.get(60, TimeUnit.SECONDS);
    }
  }

  static GenerationTask task(String id, String prompt, int maxTokens, Outcome sink) {
    int[] ids = tokenizer.encodePrompt(prompt);
    return new GenerationTask(
        new GenerationTask.Spec(id, ids, SamplingParams.greedy(), maxTokens, List.of(), 512),
        tokenizer,
        sink);
  }

  /** Polls the loop's load until {@code done} holds (the engine thread moves on its own). */
  static EngineLoop.Snapshot awaitLoad(
      EngineLoop loop, java.util.function.Predicate<EngineLoop.Snapshot> done) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    EngineLoop.Snapshot s = loop.snapshot();
    while (!done.test(s) && System.nanoTime() < deadline) {
      Thread.sleep(10);
      s = loop.snapshot();
    }
    return s;
  }

  /**
   * Lets the engine take {@code n} decode steps and waits until it has: the admission rounds
   * between them have then run.
   */
  static void runSteps(GatedBackend backend, int n) throws InterruptedException {
    backend.steps.release(n);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (backend.steps.availablePermits() > 0 && System.nanoTime() < deadline) {
      Thread.sleep(5);
    }
    assertThat(backend.steps.availablePermits()).isZero();
  }

  @Test
  void requestBeyondCapacityWaitsAsQueuedLoadThenRunsWhenCapacityFrees() throws Exception {
    GatedBackend backend = new GatedBackend(model.transformer());
    // Room for one request of prompt + 40 tokens, not two.
    try (EngineLoop loop = new EngineLoop(backend, 60, new EngineLoop.Limits(8, 60_000))) {
      Outcome first = new Outcome();
      Outcome second = new Outcome();
      int secondPrompt = tokenizer.encodePrompt("The little dog ran").length;
      loop.submit(task("first", "Once upon a time", 40, first));
      awaitLoad(loop, s -> s.activeRequests() == 1 && s.residentTokens() > 0);
      loop.submit(task("second", "The little dog ran", 40, second));

      awaitLoad(loop, s -> s.queuedRequests() == 1);
      runSteps(backend, 5); // admission rounds run between the steps: the second still waits
      EngineLoop.Snapshot waiting = loop.snapshot();
      assertThat(waiting.queuedRequests()).isEqualTo(1);
      assertThat(waiting.activeRequests()).isEqualTo(1);
      assertThat(waiting.queuedTokens()).isEqualTo(secondPrompt);
      assertThat(backend.opened()).containsExactly("first");
      assertThat(second.result).isNotDone();

      backend.steps.release(1_000); // let both run to the end
      assertThat(first.await()).isEqualTo(FinishReason.LENGTH);
      assertThat(second.await()).isEqualTo(FinishReason.LENGTH);
      assertThat(backend.opened()).containsExactly("first", "second");
      EngineLoop.Snapshot idle = awaitLoad(loop, s -> s.activeRequests() == 0);
      assertThat(idle.residentTokens()).isZero();
      assertThat(idle.queuedTokens()).isZero();
    }
  }

  @Test
  void queuedRequestGetsResourceExhaustedNamingTheLimitOnlyAfterTheDeadline() throws Exception {
    GatedBackend backend = new GatedBackend(model.transformer());
    try (EngineLoop loop = new EngineLoop(backend, 60, new EngineLoop.Limits(8, 300))) {
      Outcome holder = new Outcome();
      Outcome late = new Outcome();
      loop.submit(task("holder", "Once upon a time", 40, holder));
      awaitLoad(loop, s -> s.activeRequests() == 1 && s.residentTokens() > 0);
      loop.submit(task("late", "The little dog ran", 40, late));
      awaitLoad(loop, s -> s.queuedRequests() == 1);
      // The engine thread is held inside the holder's decode; the late request's deadline passes
      // while it waits, and the next admission round (after one more step) expires it.
      Thread.sleep(400);
      assertThat(late.result).isNotDone();
      backend.steps.release(1);

      Object failed = late.await();
      assertThat(failed).isInstanceOf(Status.class);
      Status status = (Status) failed;
      assertThat(status.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      assertThat(status.getDescription())
          .contains("no KV capacity for", "300 ms", "capacity 60 tokens");
      assertThat(backend.opened()).containsExactly("holder");
      backend.steps.release(1_000);
      assertThat(holder.await()).isEqualTo(FinishReason.LENGTH);
    }
  }

  @Test
  void concurrencyLimitQueuesInArrivalOrderAndNamesTheLimit() throws Exception {
    GatedBackend backend = new GatedBackend(model.transformer());
    try (EngineLoop loop = new EngineLoop(backend, 1 << 20, new EngineLoop.Limits(1, 300))) {
      Outcome a = new Outcome();
      Outcome b = new Outcome();
      loop.submit(task("a", "Once upon a time", 20, a));
      awaitLoad(loop, s -> s.activeRequests() == 1);
      loop.submit(task("b", "The little dog ran", 20, b));
      awaitLoad(loop, s -> s.queuedRequests() == 1);
      Thread.sleep(400);
      backend.steps.release(1);
      Status status = (Status) b.await();
      assertThat(status.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      assertThat(status.getDescription()).contains("limit of 1 concurrent requests", "300 ms");
      backend.steps.release(1_000);
      assertThat(a.await()).isEqualTo(FinishReason.LENGTH);
    }
    // With a long deadline the queue drains in arrival order, one at a time.
    GatedBackend ordered = new GatedBackend(model.transformer());
    try (EngineLoop loop = new EngineLoop(ordered, 1 << 20, new EngineLoop.Limits(1, 60_000))) {
      List<Outcome> outcomes = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        Outcome o = new Outcome();
        outcomes.add(o);
        loop.submit(task("r" + i, "Once upon a time", 5, o));
      }
      ordered.steps.release(1_000);
      for (Outcome o : outcomes) {
        assertThat(o.await()).isEqualTo(FinishReason.LENGTH);
      }
      assertThat(ordered.opened()).containsExactly("r0", "r1", "r2", "r3");
    }
  }

  @Test
  void largeRequestAtTheHeadIsNotOvertakenBySmallerOnes() throws Exception {
    GatedBackend backend = new GatedBackend(model.transformer());
    try (EngineLoop loop = new EngineLoop(backend, 100, new EngineLoop.Limits(8, 60_000))) {
      Outcome holder = new Outcome();
      Outcome large = new Outcome();
      Outcome small = new Outcome();
      loop.submit(task("holder", "Once", 40, holder)); // reserves about 42 of 100
      awaitLoad(loop, s -> s.activeRequests() == 1);
      loop.submit(task("large", "Once upon a time", 80, large)); // needs about 85: must wait
      loop.submit(task("small", "Once", 10, small)); // would fit now, but arrived later
      awaitLoad(loop, s -> s.queuedRequests() == 2);
      runSteps(backend, 5); // in each admission round between, "small" fitted but waited
      assertThat(backend.opened()).containsExactly("holder");
      backend.steps.release(10_000);
      assertThat(holder.await()).isEqualTo(FinishReason.LENGTH);
      assertThat(large.await()).isEqualTo(FinishReason.LENGTH);
      assertThat(small.await()).isEqualTo(FinishReason.LENGTH);
      assertThat(backend.opened()).containsExactly("holder", "large", "small");
    }
  }
}
