package dev.longctx.worker.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.json.Json;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.ChatMessage;
import dev.longctx.engine.tokenizer.ChatTemplate;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.GatedBackend;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The OpenAI-compatible HTTP API over a real loopback port, checked with {@link HttpClient} the way
 * an OpenAI client reads it: greedy completions (streamed as server-sent events and whole) equal
 * the engine's own {@link Generator}, every bad request gets its status and names its field, the
 * API key is enforced, overload is 429, and a client that goes away frees its KV.
 */
class OpenAiApiTest {

  static LoadedModel model;
  static ServingServer server;
  static HealthEndpoints http;
  static HttpClient client;

  @BeforeAll
  static void start() throws Exception {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    server =
        ServingServer.inProcess(
            model, "stories260K", 0, 4096, new EngineLoop.Limits(64, 2000), "127.0.0.1", 0);
    http = HealthEndpoints.start("127.0.0.1", 0, () -> true);
    new OpenAiApi(server.model(), List.of("stories260K.bin"), server.engine(), null).mount(http);
    client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
  }

  @AfterAll
  static void stop() {
    if (http != null) {
      http.close();
    }
    if (server != null) {
      server.close();
    }
    if (model != null) {
      model.close();
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  static HttpRequest.Builder request(HealthEndpoints on, String path) {
    return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + on.port() + path))
        .timeout(java.time.Duration.ofSeconds(120));
  }

  static HttpResponse<String> post(HealthEndpoints on, String path, String body) throws Exception {
    return client.send(
        request(on, path)
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  static HttpResponse<String> post(String path, String body) throws Exception {
    return post(http, path, body);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> json(String text) {
    return (Map<String, Object>) Json.parse(text);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> choice(Map<String, Object> answer) {
    return (Map<String, Object>) ((List<Object>) answer.get("choices")).getFirst();
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> field(Map<String, Object> m, String key) {
    return (Map<String, Object>) m.get(key);
  }

  /** The {@code data:} payloads of an SSE body, in order (the last is {@code [DONE]}). */
  static List<String> events(String body) {
    List<String> data = new ArrayList<>();
    for (String block : body.split("\n\n")) {
      for (String line : block.split("\n")) {
        if (line.startsWith("data: ")) {
          data.add(line.substring("data: ".length()));
        }
      }
    }
    return data;
  }

  static Generator.Result reference(int[] prompt, int maxTokens, String... stop) {
    return Generator.generate(
        model.transformer(),
        model.tokenizer(),
        new Generator.Request(prompt, SamplingParams.greedy(), maxTokens, List.of(stop), 512),
        t -> {});
  }

  static Generator.Result reference(String prompt, int maxTokens, String... stop) {
    return reference(model.tokenizer().encodePrompt(prompt), maxTokens, stop);
  }

  static void assertError(
      HttpResponse<String> r, int status, String param, String... messageParts) {
    assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
    assertThat(r.headers().firstValue("Content-Type")).hasValue("application/json");
    Map<String, Object> error = field(json(r.body()), "error");
    assertThat(error).containsKeys("message", "type", "param", "code");
    assertThat(error.get("param")).as(r.body()).isEqualTo(param);
    assertThat((String) error.get("message")).contains(messageParts);
  }

  // ---- completions ----------------------------------------------------------------------

  @Test
  void streamedCompletionEqualsTheEnginesGreedyOutput() throws Exception {
    Generator.Result want = reference("Once upon a time", 80);
    HttpResponse<String> r =
        post(
            "/v1/completions",
            """
            {"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 80,
             "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}
            """);
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    assertThat(r.headers().firstValue("Content-Type")).hasValue("text/event-stream; charset=utf-8");
    List<String> data = events(r.body());
    assertThat(data.getLast()).isEqualTo("[DONE]");

    StringBuilder text = new StringBuilder();
    String id = null;
    Object created = null;
    String finish = null;
    Map<String, Object> usage = null;
    for (String d : data.subList(0, data.size() - 1)) {
      Map<String, Object> chunk = json(d);
      assertThat(chunk.get("object")).isEqualTo("text_completion");
      assertThat(chunk.get("model")).isEqualTo("stories260K");
      id = id == null ? (String) chunk.get("id") : id;
      created = created == null ? chunk.get("created") : created;
      assertThat(chunk.get("id")).isEqualTo(id);
      assertThat(chunk.get("created")).isEqualTo(created);
      List<?> choices = (List<?>) chunk.get("choices");
      if (choices.isEmpty()) { // the usage chunk, last before [DONE]
        usage = field(chunk, "usage");
        continue;
      }
      assertThat(usage).as("usage comes last").isNull();
      assertThat(chunk).containsEntry("usage", null);
      Map<String, Object> c = choice(chunk);
      assertThat(finish).as("nothing follows the finish reason but usage").isNull();
      text.append((String) c.get("text"));
      finish = (String) c.get("finish_reason");
    }
    assertThat(id).startsWith("cmpl-");
    assertThat(text.toString()).isEqualTo(want.text());
    assertThat(finish).isEqualTo(OpenAiApi.finishReason(want.finishReason()));
    assertThat(usage)
        .containsEntry(
            "prompt_tokens", (long) model.tokenizer().encodePrompt("Once upon a time").length)
        .containsEntry("completion_tokens", (long) want.tokens().length)
        .containsEntry(
            "total_tokens",
            (long)
                (model.tokenizer().encodePrompt("Once upon a time").length + want.tokens().length));
  }

  @Test
  void wholeCompletionFromTokenIdsWithStopStringEqualsTheEngine() throws Exception {
    int[] ids = model.tokenizer().encodePrompt("Once upon a time");
    Generator.Result want = reference(ids, 80, "Lily");
    assertThat(want.finishReason()).isEqualTo(Generator.FinishReason.STOP);
    StringBuilder prompt = new StringBuilder();
    for (int id : ids) {
      prompt.append(prompt.isEmpty() ? "" : ",").append(id);
    }
    HttpResponse<String> r =
        post(
            "/v1/completions",
            "{\"model\": \"stories260K.bin\", \"prompt\": ["
                + prompt
                + "], \"max_tokens\": 80, \"temperature\": 0, \"stop\": [\"Lily\"]}");
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    Map<String, Object> answer = json(r.body());
    assertThat(answer.get("object")).isEqualTo("text_completion");
    assertThat(answer.get("model")).isEqualTo("stories260K");
    assertThat(choice(answer))
        .containsEntry("text", want.text())
        .containsEntry("finish_reason", "stop")
        .containsEntry("index", 0L)
        .containsEntry("logprobs", null);
    assertThat(field(answer, "usage"))
        .containsEntry("prompt_tokens", (long) ids.length)
        .containsEntry("completion_tokens", (long) want.tokens().length);
  }

  @Test
  void completionsDefaultToSixteenTokensLikeOpenAi() throws Exception {
    HttpResponse<String> r =
        post("/v1/completions", "{\"prompt\": \"Once upon a time\", \"temperature\": 0}");
    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    Map<String, Object> answer = json(r.body());
    assertThat(choice(answer)).containsEntry("text", reference("Once upon a time", 16).text());
    assertThat(field(answer, "usage")).containsEntry("completion_tokens", 16L);
    assertThat(choice(answer)).containsEntry("finish_reason", "length");
  }

  @Test
  void seededSamplingUsesOpenAiDefaultsAndEqualsTheEngine() throws Exception {
    // OpenAI's sampling: no top-k, no min-p, no repetition penalty unless asked.
    int[] ids = model.tokenizer().encodePrompt("The little dog");
    Generator.Result want =
        Generator.generate(
            model.transformer(),
            model.tokenizer(),
            new Generator.Request(
                ids, new SamplingParams(0.9f, 0, 0.9f, 0f, 1f, 64, 42), 40, List.of(), 512),
            t -> {});
    String body =
        "{\"prompt\": \"The little dog\", \"max_tokens\": 40, \"temperature\": 0.9,"
            + " \"top_p\": 0.9, \"seed\": 42}";
    HttpResponse<String> first = post("/v1/completions", body);
    HttpResponse<String> second = post("/v1/completions", body);
    assertThat(first.statusCode()).as(first.body()).isEqualTo(200);
    assertThat(choice(json(first.body()))).containsEntry("text", want.text());
    assertThat(choice(json(second.body()))).containsEntry("text", want.text());
    assertThat(want.text()).isNotEqualTo(reference("The little dog", 40).text());
  }

  // ---- chat -----------------------------------------------------------------------------

  @Test
  void chatCompletionStreamedAndWholeEqualTheEngineOnTheChatTemplate() throws Exception {
    List<ChatMessage> messages =
        List.of(
            new ChatMessage("system", "You tell stories."),
            new ChatMessage("user", "Tell me about a cat"));
    int[] prompt = ChatTemplate.forTokenizer(model.tokenizer()).encode(model.tokenizer(), messages);
    Generator.Result want = reference(prompt, 40);
    String body =
        """
        {"model": "stories260K", "temperature": 0, "max_completion_tokens": 40, "stream": %s,
         "messages": [{"role": "developer", "content": "You tell stories."},
                      {"role": "user", "content": [{"type": "text", "text": "Tell me "},
                                                   {"type": "text", "text": "about a cat"}]}]}
        """;

    HttpResponse<String> whole = post("/v1/chat/completions", body.formatted("false"));
    assertThat(whole.statusCode()).as(whole.body()).isEqualTo(200);
    Map<String, Object> answer = json(whole.body());
    assertThat(answer.get("object")).isEqualTo("chat.completion");
    assertThat((String) answer.get("id")).startsWith("chatcmpl-");
    assertThat(field(choice(answer), "message"))
        .containsEntry("role", "assistant")
        .containsEntry("content", want.text());
    assertThat(choice(answer))
        .containsEntry("finish_reason", OpenAiApi.finishReason(want.finishReason()));
    assertThat(field(answer, "usage")).containsEntry("prompt_tokens", (long) prompt.length);

    HttpResponse<String> streamed = post("/v1/chat/completions", body.formatted("true"));
    assertThat(streamed.statusCode()).as(streamed.body()).isEqualTo(200);
    List<String> data = events(streamed.body());
    assertThat(data.getLast()).isEqualTo("[DONE]");
    List<Map<String, Object>> chunks =
        data.subList(0, data.size() - 1).stream().map(OpenAiApiTest::json).toList();
    assertThat(field(choice(chunks.getFirst()), "delta")).containsEntry("role", "assistant");
    StringBuilder text = new StringBuilder();
    for (Map<String, Object> c : chunks) {
      assertThat(c.get("object")).isEqualTo("chat.completion.chunk");
      assertThat(c).doesNotContainKey("usage"); // include_usage was not asked for
      Object content = field(choice(c), "delta").get("content");
      text.append(content == null ? "" : (String) content);
    }
    assertThat(text.toString()).isEqualTo(want.text());
    assertThat(choice(chunks.getLast()))
        .containsEntry("finish_reason", OpenAiApi.finishReason(want.finishReason()));
    assertThat(field(choice(chunks.getLast()), "delta")).isEmpty();
  }

  // ---- models ---------------------------------------------------------------------------

  @Test
  void modelsListsTheServedModel() throws Exception {
    HttpResponse<String> list =
        client.send(
            request(http, "/v1/models").GET().build(), HttpResponse.BodyHandlers.ofString());
    assertThat(list.statusCode()).isEqualTo(200);
    Map<String, Object> answer = json(list.body());
    assertThat(answer.get("object")).isEqualTo("list");
    @SuppressWarnings("unchecked")
    Map<String, Object> m = (Map<String, Object>) ((List<?>) answer.get("data")).getFirst();
    assertThat(m)
        .containsEntry("id", "stories260K")
        .containsEntry("object", "model")
        .containsEntry("max_model_len", 512L);
    HttpResponse<String> one =
        client.send(
            request(http, "/v1/models/stories260K.bin").GET().build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(json(one.body())).containsEntry("id", "stories260K");
    HttpResponse<String> other =
        client.send(
            request(http, "/v1/models/gpt-4o").GET().build(), HttpResponse.BodyHandlers.ofString());
    assertError(other, 404, "model", "`gpt-4o` does not exist", "serves `stories260K`");
  }

  // ---- bad requests ---------------------------------------------------------------------

  @Test
  void badRequestsGetTheirStatusAndNameTheField() throws Exception {
    String c = "/v1/completions";
    String chat = "/v1/chat/completions";
    String longPrompt = "Once upon a time there was a little girl. ".repeat(100);
    assertError(post(c, "{\"prompt\": \"\"}"), 400, "prompt", "prompt is empty");
    assertError(post(c, "{\"prompt\": []}"), 400, "prompt", "prompt is empty");
    assertError(post(c, "{\"max_tokens\": 5}"), 400, "prompt", "prompt is required");
    HttpResponse<String> tooLong = post(c, "{\"prompt\": \"" + longPrompt + "\"}");
    assertError(tooLong, 400, "prompt", "context limit of 512 tokens");
    assertThat(field(json(tooLong.body()), "error"))
        .containsEntry("code", "context_length_exceeded");
    assertError(
        post(c, "{\"prompt\": [1, 100000]}"), 400, "prompt", "outside the vocabulary [0, 512)");
    assertError(
        post(c, "{\"prompt\": [\"a\", \"b\"]}"),
        400,
        "prompt",
        "batched prompts are not supported");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"max_tokens\": 0}"),
        400,
        "max_tokens",
        "max_tokens must be >= 1, got 0");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"temperature\": -1}"),
        400,
        "temperature",
        "temperature must be >= 0");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"temperature\": \"hot\"}"),
        400,
        "temperature",
        "temperature must be a number, got the string \"hot\"");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"top_p\": 1.5}"), 400, "top_p", "top_p must be in (0, 1]");
    assertError(post(c, "{\"prompt\": \"Once\", \"n\": 2}"), 400, "n", "n must be 1");
    assertError(post(c, "{\"prompt\": \"Once\", \"logprobs\": 2}"), 400, "logprobs", "logprobs");
    assertError(post(c, "{\"prompt\": \"Once\", \"echo\": true}"), 400, "echo", "echo");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"presence_penalty\": 0.5}"),
        400,
        "presence_penalty",
        "use repetition_penalty");
    assertError(
        post(c, "{\"prompt\": \"Once\", \"stop\": [\"\"]}"), 400, "stop", "must not be empty");
    assertError(post(c, "{\"prompt\": \"Once\""), 400, null, "not valid JSON", "line 1");
    assertError(post(c, "[1, 2]"), 400, null, "must be a JSON object");
    assertError(
        post(c, "{\"model\": \"gpt-4o\", \"prompt\": \"Once\"}"),
        404,
        "model",
        "`gpt-4o` does not exist");

    String hello = "\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]";
    assertError(post(chat, "{\"model\": \"stories260K\"}"), 400, "messages", "messages must be");
    assertError(post(chat, "{\"messages\": []}"), 400, "messages", "prompt is empty");
    assertError(
        post(chat, "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}"),
        400,
        "messages",
        "role must be system, user or assistant");
    assertError(
        post(
            chat,
            "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}"),
        400,
        "messages[0].content[0]",
        "text only");
    assertError(
        post(chat, "{" + hello + ", \"max_completion_tokens\": 0}"),
        400,
        "max_completion_tokens",
        "max_completion_tokens must be >= 1");
    assertError(post(chat, "{" + hello + ", \"logprobs\": true}"), 400, "logprobs", "logprobs");
    assertError(
        post(chat, "{" + hello + ", \"tools\": [{\"type\": \"function\"}]}"),
        400,
        "tools",
        "tools");

    HttpResponse<String> get =
        client.send(request(http, c).GET().build(), HttpResponse.BodyHandlers.ofString());
    assertError(get, 405, null, "takes POST");
    assertThat(get.headers().firstValue("Allow")).hasValue("POST");
    assertError(post("/v1/embeddings", "{}"), 404, null, "/v1/embeddings is not served here");
    assertError(post("/v1/completions/x", "{}"), 404, null, "is not served here");
  }

  // ---- API key, overload, disconnect -----------------------------------------------------

  @Test
  void apiKeyIsRequiredWhenConfiguredAndHealthStaysOpen() throws Exception {
    try (HealthEndpoints keyed = HealthEndpoints.start("127.0.0.1", 0, () -> true)) {
      new OpenAiApi(server.model(), List.of(), server.engine(), "s3cret-key").mount(keyed);
      String body = "{\"prompt\": \"Once\", \"max_tokens\": 3, \"temperature\": 0}";
      HttpResponse<String> none = post(keyed, "/v1/completions", body);
      assertError(none, 401, null, "Authorization: Bearer");
      assertThat(field(json(none.body()), "error")).containsEntry("code", "invalid_api_key");
      HttpResponse<String> wrong =
          client.send(
              request(keyed, "/v1/completions")
                  .header("Authorization", "Bearer s3cret-kez")
                  .POST(HttpRequest.BodyPublishers.ofString(body))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertError(wrong, 401, null, "incorrect API key");
      HttpResponse<String> right =
          client.send(
              request(keyed, "/v1/completions")
                  .header("Authorization", "Bearer s3cret-key")
                  .POST(HttpRequest.BodyPublishers.ofString(body))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertThat(right.statusCode()).as(right.body()).isEqualTo(200);
      assertThat(
              client
                  .send(
                      request(keyed, "/health").GET().build(), HttpResponse.BodyHandlers.ofString())
                  .statusCode())
          .isEqualTo(200);
    }
  }

  @Test
  void requestBeyondThePoolIsHttp429NamingTheLimit() throws Exception {
    try (ServingServer small =
            ServingServer.inProcess(
                model, "small", 0, 100, new EngineLoop.Limits(4, 500), "127.0.0.1", 0);
        HealthEndpoints smallHttp = HealthEndpoints.start("127.0.0.1", 0, () -> true)) {
      new OpenAiApi(small.model(), List.of(), small.engine(), null).mount(smallHttp);
      for (String stream : List.of("false", "true")) {
        HttpResponse<String> r =
            post(
                smallHttp,
                "/v1/completions",
                "{\"prompt\": \"Once upon a time\", \"max_tokens\": 200, \"stream\": "
                    + stream
                    + "}");
        assertError(r, 429, null, "capacity of 100 tokens");
        assertThat(field(json(r.body()), "error")).containsEntry("code", "insufficient_capacity");
      }
      HttpResponse<String> fits =
          post(smallHttp, "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 20}");
      assertThat(fits.statusCode()).as(fits.body()).isEqualTo(200);
    }
  }

  @Test
  void queuedRequestIsHttp429OnlyAfterTheQueueDeadline() throws Exception {
    GatedBackend backend = new GatedBackend(model.transformer());
    // Room for one request of prompt + 40 tokens, not two; 300 ms of queueing allowed.
    try (EngineLoop engine = new EngineLoop(backend, 60, new EngineLoop.Limits(4, 300));
        HealthEndpoints gated = HealthEndpoints.start("127.0.0.1", 0, () -> true)) {
      new OpenAiApi(server.model(), List.of(), engine, null).mount(gated);
      String body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"stream\": %s}";
      var holder =
          client.sendAsync(
              request(gated, "/v1/completions")
                  .POST(HttpRequest.BodyPublishers.ofString(body.formatted("true")))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (engine.snapshot().activeRequests() == 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      var queued =
          client.sendAsync(
              request(gated, "/v1/completions")
                  .POST(HttpRequest.BodyPublishers.ofString(body.formatted("false")))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      // Once the holder has prefilled (and waits in decode), the queued load is exactly the
      // waiting request's prompt.
      int prompt = model.tokenizer().encodePrompt("Once upon a time").length;
      while ((engine.snapshot().queuedRequests() == 0 || engine.snapshot().queuedTokens() != prompt)
          && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertThat(engine.snapshot().queuedRequests()).isEqualTo(1);
      assertThat(engine.snapshot().queuedTokens()).isEqualTo(prompt);
      Thread.sleep(400); // past the deadline; the engine is held inside the holder's decode
      assertThat(queued).isNotDone();
      backend.steps.release(1); // the next admission round expires the queued request
      assertError(queued.get(60, TimeUnit.SECONDS), 429, null, "no KV capacity", "300 ms");
      backend.steps.release(1_000);
      HttpResponse<String> held = holder.get(60, TimeUnit.SECONDS);
      assertThat(held.statusCode()).isEqualTo(200);
      assertThat(events(held.body()).getLast()).isEqualTo("[DONE]");
    }
  }

  @Test
  void clientThatGoesAwayMidStreamIsCancelledAndItsKvFreed() throws Exception {
    String prompt = "Once upon a time";
    Generator.Result want = reference(prompt, 400);
    assertThat(want.tokens().length).as("the undisturbed run is long").isGreaterThan(100);
    GatedBackend backend = new GatedBackend(model.transformer());
    try (EngineLoop engine = new EngineLoop(backend, 4096, new EngineLoop.Limits(4, 10_000));
        HealthEndpoints gated = HealthEndpoints.start("127.0.0.1", 0, () -> true)) {
      new OpenAiApi(server.model(), List.of(), engine, null).mount(gated);
      backend.steps.release(3);
      HttpResponse<InputStream> r =
          client.send(
              request(gated, "/v1/completions")
                  .POST(
                      HttpRequest.BodyPublishers.ofString(
                          "{\"prompt\": \""
                              + prompt
                              + "\", \"max_tokens\": 400, \"temperature\": 0,"
                              + " \"stream\": true}"))
                  .build(),
              HttpResponse.BodyHandlers.ofInputStream());
      assertThat(r.statusCode()).isEqualTo(200);
      BufferedReader lines =
          new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8));
      assertThat(lines.readLine()).startsWith("data: {");
      r.body().close(); // the client goes away

      // Each step now writes to a closed connection; the first failed write cancels the request.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      EngineLoop.Snapshot load = engine.snapshot();
      while ((load.activeRequests() > 0 || load.residentTokens() > 0)
          && System.nanoTime() < deadline) {
        backend.steps.release(1);
        Thread.sleep(20);
        load = engine.snapshot();
      }
      assertThat(load.activeRequests()).isZero();
      assertThat(load.residentTokens()).isZero();
      assertThat(backend.decodes.get())
          .as("cancelled, not run to its end")
          .isLessThan(want.tokens().length - 1);
    }
  }
}
