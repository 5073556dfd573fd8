package dev.longctx.worker.api;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.GenerationSink;
import dev.longctx.worker.coordinator.GenerationTask;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import org.jboss.logging.Logger;

/**
 * The OpenAI-compatible HTTP API of the coordinator: {@code POST /v1/completions}, {@code POST
 * /v1/chat/completions} (with {@code "stream": true} a server-sent event per text piece, ending
 * with {@code data: [DONE]}) and {@code GET /v1/models}. Requests become the gRPC API's {@link
 * GenerateRequest} ({@link OpenAiRequests}), pass the same {@link RequestValidator} and run on the
 * same {@link EngineLoop}; the answers carry OpenAI's shapes and status codes: 400 for a bad
 * request (naming the field and the limit), 401 without the API key, 404 for another model, 429
 * when no capacity freed up within the queue deadline, 503 while shutting down.
 *
 * <p>A streamed answer's status line waits for the request's admission, so a request refused by the
 * queue still gets its 429; from then on errors arrive as an {@code error} event. A client that
 * goes away is noticed at the next write and its request cancelled, which frees its KV on every
 * shard.
 */
public final class OpenAiApi {

  private static final Logger LOG = Logger.getLogger(OpenAiApi.class);
  private static final JsonFactory JSON = new JsonFactory();

  /** Largest request body read (as the gRPC server's inbound message limit). */
  static final int MAX_BODY_BYTES = 64 << 20;

  private final ServedModel model;
  private final Set<String> names;
  private final EngineLoop engine;
  private final RequestValidator validator;
  private final byte[] apiKey;
  private final long created = Instant.now().getEpochSecond();

  /**
   * @param aliases further names a client may use for the model (besides {@code model.name()})
   * @param apiKey the key clients must send as {@code Authorization: Bearer}, or null for none
   */
  public OpenAiApi(ServedModel model, List<String> aliases, EngineLoop engine, String apiKey) {
    this.model = model;
    this.names = new LinkedHashSet<>();
    names.add(model.name());
    names.addAll(aliases);
    this.engine = engine;
    this.validator = new RequestValidator(model);
    this.apiKey = apiKey == null ? null : apiKey.getBytes(StandardCharsets.UTF_8);
  }

  /** Serves the API on {@code http}'s port. */
  public void mount(HealthEndpoints http) {
    http.route("/v1/models", guarded(this::models));
    http.route("/v1/completions", guarded(ex -> generate(ex, false)));
    http.route("/v1/chat/completions", guarded(ex -> generate(ex, true)));
    http.route("/v1/", guarded(OpenAiApi::notServed)); // the longest matching path wins
  }

  private static void notServed(HttpExchange ex) {
    throw new OpenAiError(
        404,
        "invalid_request_error",
        null,
        "not_found",
        ex.getRequestURI().getPath()
            + " is not served here; this server serves /v1/completions, /v1/chat/completions and"
            + " /v1/models");
  }

  private interface Handler {
    void handle(HttpExchange ex) throws IOException, InterruptedException;
  }

  /** Checks the API key, answers errors in OpenAI's shape, always ends the exchange. */
  private HttpHandler guarded(Handler h) {
    return ex -> {
      try (ex) {
        try {
          authorize(ex);
          h.handle(ex);
        } catch (OpenAiError e) {
          sendError(ex, e);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        } catch (IOException e) {
          LOG.debugf("HTTP client went away: %s", e);
        } catch (RuntimeException e) {
          LOG.errorf(e, "%s %s failed", ex.getRequestMethod(), ex.getRequestURI());
          sendError(ex, new OpenAiError(500, "server_error", null, null, e.toString()));
        }
      }
    };
  }

  private void authorize(HttpExchange ex) {
    if (apiKey == null) {
      return;
    }
    String header = ex.getRequestHeaders().getFirst("Authorization");
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      throw new OpenAiError(
          401,
          "invalid_request_error",
          null,
          "invalid_api_key",
          "this server requires an API key: send the header Authorization: Bearer <key>");
    }
    byte[] given = header.substring(7).strip().getBytes(StandardCharsets.UTF_8);
    if (!MessageDigest.isEqual(given, apiKey)) { // constant time: no timing oracle on the key
      throw new OpenAiError(
          401, "invalid_request_error", null, "invalid_api_key", "incorrect API key provided");
    }
  }

  // ---- GET /v1/models --------------------------------------------------------------------

  private void models(HttpExchange ex) throws IOException {
    requireMethod(ex, "GET");
    String path = ex.getRequestURI().getPath();
    if (path.equals("/v1/models") || path.equals("/v1/models/")) {
      send(
          ex,
          200,
          json(
              g -> {
                g.writeStringField("object", "list");
                g.writeArrayFieldStart("data");
                writeModel(g);
                g.writeEndArray();
              }));
      return;
    }
    String id = path.substring("/v1/models/".length());
    if (!names.contains(id)) {
      throw unknownModel(id);
    }
    send(ex, 200, json(this::writeModelFields));
  }

  private void writeModel(JsonGenerator g) throws IOException {
    g.writeStartObject();
    writeModelFields(g);
    g.writeEndObject();
  }

  private void writeModelFields(JsonGenerator g) throws IOException {
    g.writeStringField("id", model.name());
    g.writeStringField("object", "model");
    g.writeNumberField("created", created);
    g.writeStringField("owned_by", "longctx");
    g.writeNumberField("max_model_len", model.contextLimit()); // as vLLM reports it
  }

  private OpenAiError unknownModel(String name) {
    return new OpenAiError(
        404,
        "invalid_request_error",
        "model",
        "model_not_found",
        "the model `" + name + "` does not exist; this server serves `" + model.name() + "`");
  }

  // ---- POST /v1/completions, /v1/chat/completions -----------------------------------------

  private void generate(HttpExchange ex, boolean chat) throws IOException, InterruptedException {
    String path = ex.getRequestURI().getPath();
    if (!path.equals(chat ? "/v1/chat/completions" : "/v1/completions")) {
      notServed(ex);
    }
    requireMethod(ex, "POST");
    String body = readBody(ex);
    OpenAiRequests.Parsed req = chat ? OpenAiRequests.chat(body) : OpenAiRequests.completion(body);
    if (req.model() != null && !names.contains(req.model())) {
      throw unknownModel(req.model());
    }
    GenerateRequest generate = req.generate();
    String requestId = ex.getRequestHeaders().getFirst("X-Request-Id");
    if (requestId != null) {
      generate = generate.toBuilder().setRequestId(requestId).build();
    }
    GenerationTask.Spec spec;
    try {
      spec = validator.validate(generate);
    } catch (StatusRuntimeException e) {
      throw error(e.getStatus(), req);
    }
    Events events = new Events();
    GenerationTask task = new GenerationTask(spec, model.tokenizer(), events);
    Answer answer = new Answer(req, (chat ? "chatcmpl-" : "cmpl-") + spec.requestId());
    ex.getResponseHeaders().set("X-Request-Id", spec.requestId());
    engine.submit(task);
    boolean finished = false;
    try {
      if (req.stream()) {
        stream(ex, events, answer);
      } else {
        whole(ex, events, answer);
      }
      finished = true;
    } finally {
      if (!finished) { // the client went away, or this thread failed: free the KV
        task.cancel();
        engine.poke();
      }
    }
  }

  /** {@code "stream": false}: one JSON body once the request has finished. */
  private void whole(HttpExchange ex, Events events, Answer a)
      throws IOException, InterruptedException {
    StringBuilder text = new StringBuilder();
    while (true) {
      switch (events.queue.take()) {
        case Events.Text t -> text.append(t.text());
        case Events.Progress p -> {}
        case Events.Failed f -> throw error(Status.fromThrowable(f.error()), a.req);
        case Events.Done d -> {
          send(
              ex,
              200,
              json(
                  g -> {
                    a.header(g, a.req.chat() ? "chat.completion" : "text_completion");
                    g.writeArrayFieldStart("choices");
                    g.writeStartObject();
                    g.writeNumberField("index", 0);
                    if (a.req.chat()) {
                      g.writeObjectFieldStart("message");
                      g.writeStringField("role", "assistant");
                      g.writeStringField("content", text.toString());
                      g.writeEndObject();
                    } else {
                      g.writeStringField("text", text.toString());
                    }
                    g.writeNullField("logprobs");
                    g.writeStringField("finish_reason", finishReason(d.reason()));
                    g.writeEndObject();
                    g.writeEndArray();
                    usage(g, d.usage());
                  }));
          return;
        }
        default -> throw new IllegalStateException("unexpected event");
      }
    }
  }

  /**
   * {@code "stream": true}: server-sent events, one per text piece, then one with the finish
   * reason, one with usage when {@code stream_options.include_usage}, and {@code [DONE]}.
   */
  private void stream(HttpExchange ex, Events events, Answer a)
      throws IOException, InterruptedException {
    Object event = events.queue.take();
    if (event instanceof Events.Failed f) { // refused before admission: a real status code
      throw error(Status.fromThrowable(f.error()), a.req);
    }
    ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
    ex.getResponseHeaders().set("Cache-Control", "no-cache");
    ex.sendResponseHeaders(200, 0);
    OutputStream out = ex.getResponseBody();
    if (a.req.chat()) {
      a.chunk(out, "", null, true);
    }
    while (true) {
      switch (event) {
        case Events.Progress p ->
            // An SSE comment: clients skip it; it keeps proxies from closing an idle stream during
            // a long prefill, and shows a departed client by failing.
            out.write(
                (": prefill " + p.done() + "/" + p.total() + "\n\n")
                    .getBytes(StandardCharsets.UTF_8));
        case Events.Text t -> a.chunk(out, t.text(), null, false);
        case Events.Done d -> {
          a.chunk(out, "", finishReason(d.reason()), false);
          if (a.req.includeUsage()) {
            a.event(
                out,
                g -> {
                  a.header(g, a.req.chat() ? "chat.completion.chunk" : "text_completion");
                  g.writeArrayFieldStart("choices");
                  g.writeEndArray();
                  usage(g, d.usage());
                });
          }
          out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
          out.flush();
          return;
        }
        case Events.Failed f -> {
          OpenAiError e = error(Status.fromThrowable(f.error()), a.req);
          a.event(out, g -> errorFields(g, e));
          out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
          out.flush();
          return;
        }
        default -> throw new IllegalStateException("unexpected event");
      }
      out.flush();
      event = events.queue.take();
    }
  }

  /** The fields every answer of one request shares. */
  private final class Answer {
    final OpenAiRequests.Parsed req;
    final String id;
    final long created = Instant.now().getEpochSecond();

    Answer(OpenAiRequests.Parsed req, String id) {
      this.req = req;
      this.id = id;
    }

    void header(JsonGenerator g, String object) throws IOException {
      g.writeStringField("id", id);
      g.writeStringField("object", object);
      g.writeNumberField("created", created);
      g.writeStringField("model", model.name());
    }

    /** One streamed choice: a text piece, or the end with its finish reason. */
    void chunk(OutputStream out, String text, String finish, boolean role) throws IOException {
      event(
          out,
          g -> {
            header(g, req.chat() ? "chat.completion.chunk" : "text_completion");
            g.writeArrayFieldStart("choices");
            g.writeStartObject();
            g.writeNumberField("index", 0);
            if (req.chat()) {
              g.writeObjectFieldStart("delta");
              if (role) {
                g.writeStringField("role", "assistant");
              }
              if (finish == null) {
                g.writeStringField("content", text);
              }
              g.writeEndObject();
            } else {
              g.writeStringField("text", text);
            }
            g.writeNullField("logprobs");
            if (finish == null) {
              g.writeNullField("finish_reason");
            } else {
              g.writeStringField("finish_reason", finish);
            }
            g.writeEndObject();
            g.writeEndArray();
            if (req.includeUsage()) {
              g.writeNullField("usage"); // OpenAI: null on every chunk but the usage one
            }
          });
    }

    void event(OutputStream out, JsonBody body) throws IOException {
      out.write("data: ".getBytes(StandardCharsets.UTF_8));
      out.write(json(body));
      out.write("\n\n".getBytes(StandardCharsets.UTF_8));
    }
  }

  private static void usage(JsonGenerator g, GenerationSink.Usage u) throws IOException {
    g.writeObjectFieldStart("usage");
    g.writeNumberField("prompt_tokens", u.promptTokens());
    g.writeNumberField("completion_tokens", u.completionTokens());
    g.writeNumberField("total_tokens", u.promptTokens() + u.completionTokens());
    g.writeEndObject();
  }

  /** OpenAI knows {@code stop} (the text ended or a stop string) and {@code length}. */
  static String finishReason(FinishReason r) {
    return switch (r) {
      case STOP, END_OF_TEXT -> "stop";
      case LENGTH, CONTEXT -> "length";
    };
  }

  private static OpenAiError error(Status status, OpenAiRequests.Parsed req) {
    if (status.getCode() == Status.Code.UNKNOWN || status.getCode() == Status.Code.INTERNAL) {
      LOG.errorf(status.getCause(), "request failed: %s", status);
    }
    return OpenAiError.fromStatus(status, req.promptField(), req.maxTokensField());
  }

  /** Receives the engine's events for the HTTP thread (the engine thread never blocks on I/O). */
  private static final class Events implements GenerationSink {
    record Progress(int done, int total) {}

    record Text(String text) {}

    record Done(FinishReason reason, Usage usage) {}

    record Failed(Throwable error) {}

    final BlockingQueue<Object> queue = new LinkedBlockingQueue<>();

    @Override
    public void onPrefillProgress(int done, int total) {
      queue.add(new Progress(done, total));
    }

    @Override
    public void onTokens(int[] tokenIds, String text) {
      if (!text.isEmpty()) { // text held back (a partial UTF-8 sequence, a possible stop string)
        queue.add(new Text(text));
      }
    }

    @Override
    public void onFinish(FinishReason reason, Usage usage) {
      queue.add(new Done(reason, usage));
    }

    @Override
    public void onError(Throwable error) {
      queue.add(new Failed(error));
    }
  }

  // ---- HTTP and JSON plumbing -----------------------------------------------------------

  private static void requireMethod(HttpExchange ex, String method) {
    if (!ex.getRequestMethod().equals(method)) {
      ex.getResponseHeaders().set("Allow", method);
      throw new OpenAiError(
          405,
          "invalid_request_error",
          null,
          null,
          ex.getRequestURI().getPath() + " takes " + method + ", got " + ex.getRequestMethod());
    }
  }

  private static String readBody(HttpExchange ex) throws IOException {
    try (InputStream in = ex.getRequestBody()) {
      byte[] body = in.readNBytes(MAX_BODY_BYTES + 1);
      if (body.length > MAX_BODY_BYTES) {
        throw new OpenAiError(
            413,
            "invalid_request_error",
            null,
            null,
            "the request body is larger than " + MAX_BODY_BYTES + " bytes");
      }
      return new String(body, StandardCharsets.UTF_8);
    }
  }

  private interface JsonBody {
    void write(JsonGenerator g) throws IOException;
  }

  /** A JSON object whose fields {@code body} writes. */
  private static byte[] json(JsonBody body) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (JsonGenerator g = JSON.createGenerator(out)) {
      g.writeStartObject();
      body.write(g);
      g.writeEndObject();
    }
    return out.toByteArray();
  }

  private static void errorFields(JsonGenerator g, OpenAiError e) throws IOException {
    g.writeObjectFieldStart("error");
    g.writeStringField("message", e.getMessage());
    g.writeStringField("type", e.type);
    g.writeStringField("param", e.param);
    g.writeStringField("code", e.code);
    g.writeEndObject();
  }

  private static void sendError(HttpExchange ex, OpenAiError e) {
    try {
      send(ex, e.status, json(g -> errorFields(g, e)));
    } catch (IOException | IllegalStateException gone) {
      // The client left, or the status line was already sent (then the stream carried the error).
      LOG.debugf("cannot send %d to the HTTP client: %s", e.status, gone);
    }
  }

  private static void send(HttpExchange ex, int status, byte[] body) throws IOException {
    ex.getResponseHeaders().set("Content-Type", "application/json");
    ex.sendResponseHeaders(status, body.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(body);
    }
  }
}
