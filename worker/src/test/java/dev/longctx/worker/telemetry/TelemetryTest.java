package dev.longctx.worker.telemetry;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.InferenceGrpc;
import dev.longctx.proto.v1.TokenIds;
import dev.longctx.worker.api.ServingServer;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.ShardClient;
import dev.longctx.worker.shard.ShardEngine;
import dev.longctx.worker.shard.ShardService;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.NettyChannelBuilder;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.metrics.SdkMeterProvider;
import io.opentelemetry.sdk.metrics.data.MetricData;
import io.opentelemetry.sdk.testing.exporter.InMemoryMetricReader;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * One request served by a coordinator over two shards leaves one trace: the client's span is the
 * parent of {@code longctx.generate}, under which placement, the prefill layer phases, the decode
 * steps and every shard call hang (propagated through gRPC metadata); and the metrics DESIGN.md §8
 * names are recorded with the request's numbers.
 */
class TelemetryTest {

  InMemorySpanExporter spans;
  InMemoryMetricReader metrics;
  OpenTelemetrySdk sdk;
  final List<Server> servers = new ArrayList<>();

  @BeforeEach
  void install() {
    spans = InMemorySpanExporter.create();
    metrics = InMemoryMetricReader.create();
    sdk =
        OpenTelemetrySdk.builder()
            .setTracerProvider(
                SdkTracerProvider.builder()
                    .addSpanProcessor(SimpleSpanProcessor.create(spans))
                    .build())
            .setMeterProvider(SdkMeterProvider.builder().registerMetricReader(metrics).build())
            .setPropagators(ContextPropagators.create(W3CTraceContextPropagator.getInstance()))
            .build();
    Telemetry.install(sdk);
  }

  @AfterEach
  void uninstall() {
    servers.forEach(Server::shutdownNow);
    Telemetry.install(io.opentelemetry.api.OpenTelemetry.noop());
    sdk.close();
  }

  @Test
  void aShardedRequestIsOneTraceAndItsMetricsAreRecorded() throws Exception {
    try (LoadedModel model =
        LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null)) {
      List<ShardClient> clients = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        String name = "otel-shard-" + r + "-" + System.nanoTime();
        ShardEngine engine = new ShardEngine(r, model.config(), model.weights(), 1 << 16, "s");
        servers.add(
            InProcessServerBuilder.forName(name)
                .addService(
                    ServerInterceptors.intercept(new ShardService(engine), Telemetry.get().join()))
                .build()
                .start());
        clients.add(new ShardClient(name, InProcessChannelBuilder.forName(name).build(), 60_000));
      }
      int[] prompt = model.tokenizer().encodePrompt("Once upon a time, there was a little dog.");
      int maxTokens = 8;
      try (ServingServer server =
          ServingServer.sharded(
              model,
              "stories260K",
              0,
              clients,
              4,
              2,
              EngineLoop.Limits.queueTimeout(10_000),
              "127.0.0.1",
              0)) {
        ManagedChannel channel =
            NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        Span client = sdk.getTracer("test").spanBuilder("client").startSpan();
        List<GenerateResponse> stream = new ArrayList<>();
        try (Scope ignored = client.makeCurrent()) {
          InferenceGrpc.newBlockingStub(channel)
              .withInterceptors(Telemetry.get().propagate())
              .withDeadlineAfter(60, TimeUnit.SECONDS)
              .generate(
                  GenerateRequest.newBuilder()
                      .setRequestId("traced-1")
                      .setTokenIds(
                          TokenIds.newBuilder().addAllIds(Arrays.stream(prompt).boxed().toList()))
                      .setMaxTokens(maxTokens)
                      .setSampling(
                          dev.longctx.proto.v1.SamplingParams.newBuilder()
                              .setTemperature(0)
                              .setTopK(0)
                              .setTopP(1)
                              .setMinP(0))
                      .build())
              .forEachRemaining(stream::add);
        } finally {
          client.end();
          channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        var usage = stream.getLast().getFinal().getUsage();
        assertThat(usage.getShardsUsed()).isEqualTo(2);
        int generated = usage.getCompletionTokens();
        assertThat(generated).isPositive();

        // Describe calls while the coordinator connects belong to no request.
        List<SpanData> finished =
            spans.getFinishedSpanItems().stream()
                .filter(s -> !s.getName().equals("shard.describe"))
                .toList();
        String trace = client.getSpanContext().getTraceId();
        assertThat(finished).allSatisfy(s -> assertThat(s.getTraceId()).isEqualTo(trace));
        SpanData generate = only(finished, "longctx.generate");
        assertThat(generate.getParentSpanId()).isEqualTo(client.getSpanContext().getSpanId());
        assertThat(generate.getAttributes().get(Telemetry.REQUEST_ID)).isEqualTo("traced-1");
        assertThat(only(finished, "longctx.placement").getParentSpanId())
            .isEqualTo(generate.getSpanId());
        Map<String, Long> counts =
            finished.stream()
                .collect(Collectors.groupingBy(SpanData::getName, Collectors.counting()));
        int layers = model.config().layers();
        assertThat(counts.get("longctx.prefill.step")).isEqualTo(1L);
        assertThat(counts.get("longctx.prefill.advance")).isEqualTo((long) layers);
        assertThat(counts.get("longctx.prefill.attend")).isEqualTo((long) layers);
        // A decode step per generated token, except a last one that hit max_tokens (its logits
        // are never needed); an end-of-text token is sampled after the last decode.
        boolean hitLength =
            stream.getLast().getFinal().getFinishReason()
                == dev.longctx.proto.v1.FinishReason.FINISH_REASON_LENGTH;
        long decodes = counts.getOrDefault("longctx.decode.step", 0L);
        assertThat(decodes).isEqualTo(hitLength ? generated - 1 : generated);
        // Both shards attend every layer of the prefill: their spans hang under the phase span.
        SpanData attendPhase =
            finished.stream()
                .filter(s -> s.getName().equals("longctx.prefill.attend"))
                .findFirst()
                .orElseThrow();
        assertThat(
                finished.stream()
                    .filter(s -> s.getName().equals("shard.attend"))
                    .filter(s -> s.getParentSpanId().equals(attendPhase.getSpanId())))
            .hasSize(2);

        Collection<MetricData> collected = metrics.collectAllMetrics();
        assertThat(histogramCount(collected, "longctx_time_to_first_token_seconds")).isEqualTo(1);
        assertThat(histogramCount(collected, "longctx_prefill_tokens_per_second")).isEqualTo(1);
        // One gap per sampled token after the first: one per decode step.
        assertThat(histogramCount(collected, "longctx_inter_token_seconds")).isEqualTo(decodes);
        assertThat(gauge(collected, "longctx_kv_tokens_capacity")).isEqualTo(2L << 16);
        assertThat(gauge(collected, "longctx_kv_tokens_resident")).isZero();
        assertThat(gauge(collected, "longctx_requests_active")).isZero();
        assertThat(gauge(collected, "longctx_prefill_tokens_queued")).isZero();
      }
    }
  }

  static SpanData only(List<SpanData> spans, String name) {
    List<SpanData> named = spans.stream().filter(s -> s.getName().equals(name)).toList();
    assertThat(named).as("spans named %s", name).hasSize(1);
    return named.getFirst();
  }

  static long histogramCount(Collection<MetricData> metrics, String name) {
    return metrics.stream()
        .filter(m -> m.getName().equals(name))
        .flatMap(m -> m.getHistogramData().getPoints().stream())
        .mapToLong(p -> p.getCount())
        .sum();
  }

  static long gauge(Collection<MetricData> metrics, String name) {
    return metrics.stream()
        .filter(m -> m.getName().equals(name))
        .flatMap(m -> m.getLongGaugeData().getPoints().stream())
        .mapToLong(p -> p.getValue())
        .findFirst()
        .orElseThrow(() -> new AssertionError("no gauge " + name));
  }
}
