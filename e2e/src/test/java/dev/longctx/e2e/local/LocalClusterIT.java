package dev.longctx.e2e.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.json.Json;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.proto.v1.AttentionOverride;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.GetLoadRequest;
import dev.longctx.proto.v1.Load;
import dev.longctx.proto.v1.ShardLoad;
import dev.longctx.proto.v1.TokenIds;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The README's local mode as separate JVMs on loopback: {@code longctx serve --shards 2} (a
 * coordinator and two shard processes, real gRPC between them) serving stories260K, checked from
 * outside like a client would: greedy streams equal the single-process engine's output, over gRPC
 * and over the OpenAI-compatible HTTP API; 32 concurrent streams with mixed prompt lengths are
 * neither lost nor mixed up; a cancelled stream frees its KV on every shard; every bad request gets
 * its status; and a shard SIGKILLed mid-stream does not change a single greedy token (the
 * coordinator rebuilds the lost KV on the surviving shard, DESIGN.md §5). The kill runs last: the
 * pool has one shard after it.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LocalClusterIT {

  static final String API_KEY = "e2e-secret";

  /** Prompts longer than this are spread over both shards. */
  static final int MIN_TOKENS_PER_SHARD = 16;

  static final String STORY =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park"
          + " with her dog and her friends. One day, she saw a big red ball under a tree. ";

  static LoadedModel model;
  static LocalCluster cluster;
  static final HttpClient http =
      HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

  @BeforeAll
  static void start() throws Exception {
    Path file = TestData.file("models/stories260K/stories260K.bin");
    model = LoadedModel.load(file, null);
    cluster =
        LocalCluster.start(
            file,
            2,
            Map.of("LONGCTX_API_KEY", API_KEY),
            "--min-tokens-per-shard",
            Integer.toString(MIN_TOKENS_PER_SHARD));
  }

  @AfterAll
  static void stop() throws Exception {
    if (cluster != null) {
      cluster.close();
    }
    if (model != null) {
      model.close();
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  /** The first {@code n} tokens of a long story (BOS first). */
  static int[] storyTokens(int n) {
    return Arrays.copyOf(model.tokenizer().encodePrompt(STORY.repeat(30)), n);
  }

  static GenerateRequest.Builder greedy(int maxTokens) {
    GenerateRequest.Builder b = GenerateRequest.newBuilder().setMaxTokens(maxTokens);
    b.getSamplingBuilder().setTemperature(0).setTopK(0).setTopP(1).setMinP(0);
    return b;
  }

  static GenerateRequest greedy(int[] prompt, int maxTokens) {
    TokenIds.Builder ids = TokenIds.newBuilder();
    Arrays.stream(prompt).forEach(ids::addIds);
    return greedy(maxTokens).setTokenIds(ids).build();
  }

  static Generator.Result reference(int[] prompt, int maxTokens) {
    return Generator.generate(
        model.transformer(),
        model.tokenizer(),
        new Generator.Request(
            prompt, SamplingParams.greedy(), maxTokens, List.of(), model.config().contextLength()),
        t -> {});
  }

  record Streamed(List<Integer> tokens, String text, GenerateResponse last, List<String> ids) {}

  static Streamed drain(Iterator<GenerateResponse> it, Streamed sofar) {
    List<Integer> tokens = new ArrayList<>(sofar.tokens());
    StringBuilder text = new StringBuilder(sofar.text());
    List<String> ids = new ArrayList<>(sofar.ids());
    GenerateResponse last = sofar.last();
    while (it.hasNext()) {
      last = it.next();
      ids.add(last.getRequestId());
      if (last.hasTokens()) {
        tokens.addAll(last.getTokens().getTokenIdsList());
        text.append(last.getTokens().getText());
      }
    }
    return new Streamed(tokens, text.toString(), last, ids);
  }

  static Streamed stream(GenerateRequest request) {
    return drain(
        cluster.inference().generate(request), new Streamed(List.of(), "", null, List.of()));
  }

  static List<Integer> boxed(int[] a) {
    return Arrays.stream(a).boxed().toList();
  }

  static Load awaitLoad(Predicate<Load> done) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    Load load = cluster.admin().getLoad(GetLoadRequest.getDefaultInstance());
    while (!done.test(load) && System.nanoTime() < deadline) {
      Thread.sleep(20);
      load = cluster.admin().getLoad(GetLoadRequest.getDefaultInstance());
    }
    return load;
  }

  static HttpResponse<String> post(String path, String body, boolean withKey) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(cluster.httpBase() + path))
            .timeout(Duration.ofSeconds(120))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body));
    if (withKey) {
      b.header("Authorization", "Bearer " + API_KEY);
    }
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> json(String text) {
    return (Map<String, Object>) Json.parse(text);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> error(HttpResponse<String> r) {
    return (Map<String, Object>) json(r.body()).get("error");
  }

  // ---- the tests ------------------------------------------------------------------------

  @Test
  @Order(1)
  void streamedCompletionEqualsSingleProcessGreedyOutput() {
    String prompt = "Once upon a time";
    Generator.Result shortWant = reference(model.tokenizer().encodePrompt(prompt), 60);
    Streamed shortGot = stream(greedy(60).setPrompt(prompt).setRequestId("short").build());
    assertThat(shortGot.tokens()).isEqualTo(boxed(shortWant.tokens()));
    assertThat(shortGot.text()).isEqualTo(shortWant.text());
    assertThat(shortGot.last().getFinal().getUsage().getShardsUsed()).isEqualTo(1);

    int[] longPrompt = storyTokens(120);
    Generator.Result longWant = reference(longPrompt, 80);
    Streamed longGot = stream(greedy(longPrompt, 80));
    assertThat(longGot.tokens()).isEqualTo(boxed(longWant.tokens()));
    assertThat(longGot.text()).isEqualTo(longWant.text());
    var usage = longGot.last().getFinal().getUsage();
    assertThat(usage.getShardsUsed()).as("a 120-token prompt spans both shards").isEqualTo(2);
    assertThat(usage.getPromptTokens()).isEqualTo(120);
    assertThat(usage.getCompletionTokens()).isEqualTo(longWant.tokens().length);
  }

  @Test
  @Order(2)
  void openAiStreamingOverHttpEqualsSingleProcessGreedyOutput() throws Exception {
    int[] prompt = model.tokenizer().encodePrompt("The little dog");
    Generator.Result want = reference(prompt, 50);
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(cluster.httpBase() + "/v1/completions"))
            .timeout(Duration.ofSeconds(120))
            .header("Authorization", "Bearer " + API_KEY)
            .POST(
                HttpRequest.BodyPublishers.ofString(
                    """
                    {"model": "stories260K.bin", "prompt": "The little dog", "max_tokens": 50,
                     "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}
                    """))
            .build();
    // Read the events as they arrive, the way an SSE client does.
    HttpResponse<java.util.stream.Stream<String>> r =
        http.send(request, HttpResponse.BodyHandlers.ofLines());
    assertThat(r.statusCode()).isEqualTo(200);
    assertThat(r.headers().firstValue("Content-Type")).hasValue("text/event-stream; charset=utf-8");
    List<String> data =
        r.body().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
    assertThat(data.getLast()).isEqualTo("[DONE]");
    StringBuilder text = new StringBuilder();
    Map<String, Object> usage = null;
    String finish = null;
    for (String d : data.subList(0, data.size() - 1)) {
      Map<String, Object> chunk = json(d);
      List<?> choices = (List<?>) chunk.get("choices");
      if (choices.isEmpty()) {
        @SuppressWarnings("unchecked")
        Map<String, Object> u = (Map<String, Object>) chunk.get("usage");
        usage = u;
        continue;
      }
      Map<?, ?> c = (Map<?, ?>) choices.getFirst();
      text.append((String) c.get("text"));
      finish = c.get("finish_reason") == null ? finish : (String) c.get("finish_reason");
    }
    assertThat(text.toString()).isEqualTo(want.text());
    assertThat(finish)
        .isEqualTo(want.finishReason() == Generator.FinishReason.LENGTH ? "length" : "stop");
    assertThat(usage)
        .containsEntry("prompt_tokens", (long) prompt.length)
        .containsEntry("completion_tokens", (long) want.tokens().length);

    HttpResponse<String> models =
        http.send(
            HttpRequest.newBuilder(URI.create(cluster.httpBase() + "/v1/models"))
                .header("Authorization", "Bearer " + API_KEY)
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(models.body()).contains("\"id\":\"stories260K.bin\"");
  }

  @Test
  @Order(3)
  void thirtyTwoConcurrentStreamsWithMixedPromptLengthsAreNeitherLostNorMixedUp() throws Exception {
    int n = 32;
    List<GenerateRequest> requests = new ArrayList<>();
    List<Generator.Result> wants = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int promptLength = 3 + (i * 37) % 220; // 3 .. 222 tokens: one shard and two
      int maxTokens = 12 + (i % 5) * 6;
      int[] prompt = storyTokens(promptLength);
      requests.add(greedy(prompt, maxTokens).toBuilder().setRequestId("mixed-" + i).build());
      wants.add(reference(prompt, maxTokens));
    }
    ExecutorService pool = Executors.newFixedThreadPool(n);
    try {
      List<Future<Streamed>> futures = new ArrayList<>();
      for (GenerateRequest r : requests) {
        futures.add(pool.submit(() -> stream(r)));
      }
      for (int i = 0; i < n; i++) {
        Streamed got = futures.get(i).get(120, TimeUnit.SECONDS);
        assertThat(got.ids()).as("request %d", i).containsOnly("mixed-" + i);
        assertThat(got.tokens()).as("request %d", i).isEqualTo(boxed(wants.get(i).tokens()));
        assertThat(got.text()).as("request %d", i).isEqualTo(wants.get(i).text());
        assertThat(got.last().hasFinal()).isTrue();
      }
    } finally {
      pool.shutdownNow();
    }
    Load idle = awaitLoad(l -> l.getActiveRequests() == 0 && l.getResidentTokens() == 0);
    assertThat(idle.getQueuedTokens()).isZero();
  }

  @Test
  @Order(4)
  void cancelledStreamFreesItsKvOnEveryShard() throws Exception {
    CountDownLatch firstTokens = new CountDownLatch(1);
    Context.CancellableContext call = Context.current().withCancellation();
    call.run(
        () ->
            cluster
                .inferenceAsync()
                .generate(
                    greedy(storyTokens(150), 350).toBuilder().setRequestId("cancel").build(),
                    new StreamObserver<>() {
                      @Override
                      public void onNext(GenerateResponse r) {
                        if (r.hasTokens()) {
                          firstTokens.countDown();
                        }
                      }

                      @Override
                      public void onError(Throwable t) {}

                      @Override
                      public void onCompleted() {}
                    }));
    assertThat(firstTokens.await(60, TimeUnit.SECONDS)).isTrue();
    Load busy = awaitLoad(l -> l.getShardsList().stream().allMatch(s -> s.getResidentTokens() > 0));
    assertThat(busy.getShardsList())
        .as("the 150-token prompt holds KV on both shards")
        .hasSize(2)
        .allMatch(s -> s.getResidentTokens() > 0);

    call.cancel(null);
    Load freed =
        awaitLoad(
            l ->
                l.getActiveRequests() == 0
                    && l.getShardsList().stream().allMatch(s -> s.getResidentTokens() == 0));
    assertThat(freed.getActiveRequests()).isZero();
    assertThat(freed.getResidentTokens()).isZero();
    assertThat(freed.getShardsList())
        .allMatch(ShardLoad::getReady)
        .allMatch(s -> s.getResidentTokens() == 0 && s.getActiveRequests() == 0);
    assertThat(cluster.coordinatorLog())
        .as("freed by the cancellation, not by running to its end")
        .contains("request cancel: cancelled by the client");
  }

  static void assertStatus(GenerateRequest r, Status.Code code, String... messageParts) {
    assertThatThrownBy(() -> stream(r))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(code);
              assertThat(e.getStatus().getDescription()).contains(messageParts);
            });
  }

  @Test
  @Order(5)
  void everyBadRequestGetsItsStatus() throws Exception {
    Status.Code invalid = Status.Code.INVALID_ARGUMENT;
    assertStatus(greedy(5).setPrompt("").build(), invalid, "prompt is empty");
    assertStatus(greedy(storyTokens(600), 5), invalid, "600 tokens", "context limit of 512");
    assertStatus(greedy(0).setPrompt("Once").build(), invalid, "max_tokens must be >= 1");
    GenerateRequest.Builder hot = greedy(5).setPrompt("Once");
    hot.getSamplingBuilder().setTemperature(-1);
    assertStatus(hot.build(), invalid, "temperature must be >= 0");
    GenerateRequest.Builder topP = greedy(5).setPrompt("Once");
    topP.getSamplingBuilder().setTopP(0);
    assertStatus(topP.build(), invalid, "top_p must be in (0, 1]");
    assertStatus(
        greedy(5)
            .setPrompt("Once")
            .setAttention(AttentionOverride.newBuilder().setMethod("ring-magic"))
            .build(),
        invalid,
        "attention.method \"ring-magic\" is unknown");
    assertStatus(greedy(new int[] {1, 9999}, 5), invalid, "outside the vocabulary");

    String ok = "{\"prompt\": \"Once\", \"max_tokens\": 4}";
    HttpResponse<String> noKey = post("/v1/completions", ok, false);
    assertThat(noKey.statusCode()).isEqualTo(401);
    assertThat(error(noKey)).containsEntry("code", "invalid_api_key");
    assertThat(post("/v1/completions", ok, true).statusCode()).isEqualTo(200);
    HttpResponse<String> tooLong =
        post("/v1/completions", "{\"prompt\": \"" + STORY.repeat(30) + "\"}", true);
    assertThat(tooLong.statusCode()).isEqualTo(400);
    assertThat(error(tooLong))
        .containsEntry("param", "prompt")
        .containsEntry("code", "context_length_exceeded");
    HttpResponse<String> otherModel =
        post("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": []}", true);
    assertThat(otherModel.statusCode()).isEqualTo(404);
    assertThat(error(otherModel)).containsEntry("code", "model_not_found");
    HttpResponse<String> twoChoices =
        post("/v1/completions", "{\"prompt\": \"Once\", \"n\": 2}", true);
    assertThat(twoChoices.statusCode()).isEqualTo(400);
    assertThat(error(twoChoices)).containsEntry("param", "n");
    HttpResponse<String> health =
        http.send(
            HttpRequest.newBuilder(URI.create(cluster.httpBase() + "/q/health/ready")).build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(health.statusCode()).as("probes need no key").isEqualTo(200);
  }

  @Test
  @Order(100) // last: the pool keeps one shard afterwards
  void shardKilledMidStreamAndTheStreamFinishesWithTheSameGreedyTokens() throws Exception {
    int[] prompt = storyTokens(150);
    Generator.Result want = reference(prompt, 340);
    assertThat(want.tokens().length).as("a long undisturbed run").isGreaterThan(100);
    ProcessHandle victim = cluster.shard(1);

    Iterator<GenerateResponse> it =
        cluster.inference().generate(greedy(prompt, 340).toBuilder().setRequestId("kill").build());
    List<Integer> before = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    while (before.size() < 20) { // well into the stream
      GenerateResponse r = it.next();
      assertThat(r.hasFinal()).isFalse();
      if (r.hasTokens()) {
        before.addAll(r.getTokens().getTokenIdsList());
        text.append(r.getTokens().getText());
      }
    }
    assertThat(victim.destroyForcibly()).isTrue(); // SIGKILL
    victim.onExit().get(30, TimeUnit.SECONDS);

    Streamed rest = drain(it, new Streamed(before, text.toString(), null, List.of()));
    assertThat(rest.tokens()).isEqualTo(boxed(want.tokens()));
    assertThat(rest.text()).isEqualTo(want.text());
    assertThat(rest.last().hasFinal()).isTrue();
    assertThat(cluster.coordinatorLog())
        .as("the coordinator met the dead shard mid-request and rebuilt the KV")
        .containsPattern("(?s)request kill\\b.*rebuilding");
    Load after = awaitLoad(l -> l.getActiveRequests() == 0);
    assertThat(after.getShardsList()).filteredOn(ShardLoad::getReady).hasSize(1);
  }
}
