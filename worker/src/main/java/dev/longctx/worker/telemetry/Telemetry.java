package dev.longctx.worker.telemetry;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.metrics.DoubleHistogram;
import io.opentelemetry.api.metrics.Meter;
import io.opentelemetry.api.metrics.ObservableLongGauge;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.context.propagation.TextMapSetter;
import java.util.List;
import java.util.function.Supplier;

/**
 * Traces and metrics of the serving path (DESIGN.md §8). One trace per request: the coordinator's
 * {@code longctx.generate} span, its placement, prefill layer phases and decode steps, and the
 * shards' calls, joined across processes by W3C trace context in the gRPC metadata. Metrics carry
 * the names DESIGN.md §8 gives (a Prometheus exporter keeps them as they are).
 *
 * <p>The process installs the OpenTelemetry it was configured with ({@code quarkus.otel.*}: off
 * unless an exporter endpoint is set) once at start; until then, and in unit tests that do not
 * install one, everything is a no-op.
 */
public final class Telemetry {

  /** Instrumentation scope of every span and instrument. */
  public static final String SCOPE = "dev.longctx.worker";

  private static volatile Telemetry current = new Telemetry(OpenTelemetry.noop());

  private final OpenTelemetry otel;
  private final Tracer tracer;
  private final Meter meter;
  private final DoubleHistogram timeToFirstToken;
  private final DoubleHistogram interToken;
  private final DoubleHistogram prefillRate;

  private Telemetry(OpenTelemetry otel) {
    this.otel = otel;
    this.tracer = otel.getTracer(SCOPE);
    this.meter = otel.getMeter(SCOPE);
    this.timeToFirstToken =
        meter
            .histogramBuilder("longctx_time_to_first_token_seconds")
            .setDescription("Time from a request's arrival to its first generated token")
            .setUnit("s")
            .build();
    this.interToken =
        meter
            .histogramBuilder("longctx_inter_token_seconds")
            .setDescription("Time between consecutive generated tokens of a stream")
            .setUnit("s")
            .build();
    this.prefillRate =
        meter
            .histogramBuilder("longctx_prefill_tokens_per_second")
            .setDescription("Prompt tokens per second of each request's prefill")
            .setUnit("{token}/s")
            .build();
  }

  /** The telemetry installed in this process (a no-op one until {@link #install}). */
  public static Telemetry get() {
    return current;
  }

  /** Makes {@code otel} this process's telemetry; returns it. */
  public static Telemetry install(OpenTelemetry otel) {
    Telemetry t = new Telemetry(otel);
    current = t;
    return t;
  }

  public Tracer tracer() {
    return tracer;
  }

  /** A span that is a child of the current context's span. */
  public Span startSpan(String name) {
    return tracer.spanBuilder(name).startSpan();
  }

  /** A span that is a child of {@code parent}'s span. */
  public Span startSpan(String name, Context parent, SpanKind kind) {
    return tracer.spanBuilder(name).setParent(parent).setSpanKind(kind).startSpan();
  }

  /** Marks {@code span} failed with {@code error} (status ERROR and the exception event). */
  public static void fail(Span span, Throwable error) {
    span.recordException(error);
    span.setStatus(StatusCode.ERROR, String.valueOf(error.getMessage()));
  }

  public void recordTimeToFirstToken(double seconds) {
    timeToFirstToken.record(seconds);
  }

  public void recordInterToken(double seconds) {
    interToken.record(seconds);
  }

  public void recordPrefillRate(double tokensPerSecond) {
    prefillRate.record(tokensPerSecond);
  }

  /** What the load gauges read. */
  public record Load(
      long residentTokens, long capacityTokens, long queuedPrefillTokens, long activeRequests) {}

  /**
   * Registers the context-load gauges ({@code longctx_kv_tokens_resident}, {@code
   * longctx_kv_tokens_capacity}, {@code longctx_prefill_tokens_queued}, {@code
   * longctx_requests_active}), read from {@code load} at each collection. Close to unregister.
   */
  public AutoCloseable observeLoad(Supplier<Load> load) {
    List<ObservableLongGauge> gauges =
        List.of(
            meter
                .gaugeBuilder("longctx_kv_tokens_resident")
                .ofLongs()
                .setDescription("KV cache tokens held by the shards")
                .setUnit("{token}")
                .buildWithCallback(m -> m.record(load.get().residentTokens())),
            meter
                .gaugeBuilder("longctx_kv_tokens_capacity")
                .ofLongs()
                .setDescription("KV cache tokens the ready shards can hold")
                .setUnit("{token}")
                .buildWithCallback(m -> m.record(load.get().capacityTokens())),
            meter
                .gaugeBuilder("longctx_prefill_tokens_queued")
                .ofLongs()
                .setDescription("Prompt tokens waiting for prefill")
                .setUnit("{token}")
                .buildWithCallback(m -> m.record(load.get().queuedPrefillTokens())),
            meter
                .gaugeBuilder("longctx_requests_active")
                .ofLongs()
                .setDescription("Requests being served")
                .setUnit("{request}")
                .buildWithCallback(m -> m.record(load.get().activeRequests())));
    return () -> gauges.forEach(ObservableLongGauge::close);
  }

  private static final TextMapSetter<Metadata> SET =
      (carrier, key, value) ->
          carrier.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);

  private static final TextMapGetter<Metadata> GET =
      new TextMapGetter<>() {
        @Override
        public Iterable<String> keys(Metadata carrier) {
          return carrier.keys();
        }

        @Override
        public String get(Metadata carrier, String key) {
          return carrier == null
              ? null
              : carrier.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER));
        }
      };

  /** Puts the caller's trace context into every outgoing call's metadata (coordinator side). */
  public ClientInterceptor propagate() {
    return new ClientInterceptor() {
      @Override
      public <Q, A> ClientCall<Q, A> interceptCall(
          MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
        Context context = Context.current();
        return new ForwardingClientCall.SimpleForwardingClientCall<>(
            next.newCall(method, options)) {
          @Override
          public void start(Listener<A> listener, Metadata headers) {
            otel.getPropagators().getTextMapPropagator().inject(context, headers, SET);
            super.start(listener, headers);
          }
        };
      }
    };
  }

  /**
   * Runs every incoming call inside the trace context its metadata carries (shard side), so the
   * spans a handler starts join the coordinator's trace.
   */
  public ServerInterceptor join() {
    return new ServerInterceptor() {
      @Override
      public <Q, A> ServerCall.Listener<Q> interceptCall(
          ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        Context context =
            otel.getPropagators().getTextMapPropagator().extract(Context.root(), headers, GET);
        ServerCall.Listener<Q> delegate;
        try (Scope ignored = context.makeCurrent()) {
          delegate = next.startCall(call, headers);
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(delegate) {
          @Override
          public void onMessage(Q message) {
            try (Scope ignored = context.makeCurrent()) {
              super.onMessage(message);
            }
          }

          @Override
          public void onHalfClose() {
            try (Scope ignored = context.makeCurrent()) {
              super.onHalfClose();
            }
          }

          @Override
          public void onCancel() {
            try (Scope ignored = context.makeCurrent()) {
              super.onCancel();
            }
          }

          @Override
          public void onComplete() {
            try (Scope ignored = context.makeCurrent()) {
              super.onComplete();
            }
          }

          @Override
          public void onReady() {
            try (Scope ignored = context.makeCurrent()) {
              super.onReady();
            }
          }
        };
      }
    };
  }

  /** Attributes naming a request (the span attribute the traces are searched by). */
  public static Attributes request(String requestId) {
    return Attributes.of(REQUEST_ID, requestId);
  }

  public static final io.opentelemetry.api.common.AttributeKey<String> REQUEST_ID =
      io.opentelemetry.api.common.AttributeKey.stringKey("longctx.request_id");
}
