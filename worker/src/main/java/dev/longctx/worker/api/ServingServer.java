package dev.longctx.worker.api;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.InferenceGrpc;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.LocalBackend;
import dev.longctx.worker.coordinator.ShardClient;
import dev.longctx.worker.coordinator.ShardDirectory;
import dev.longctx.worker.coordinator.ShardPool;
import dev.longctx.worker.coordinator.ShardedBackend;
import dev.longctx.worker.telemetry.Telemetry;
import io.grpc.BindableService;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The coordinator's gRPC endpoint: {@code longctx.v1.Inference}, {@code longctx.v1.Admin}, the
 * standard {@code grpc.health.v1.Health} (SERVING once the engine is up, NOT_SERVING while
 * draining) and server reflection (for grpcurl).
 */
public final class ServingServer implements AutoCloseable {

  private final Server server;
  private final HealthStatusManager health;
  private final ServedModel model;
  private final EngineLoop engine;

  private final AutoCloseable gauges;

  private ServingServer(
      Server server,
      HealthStatusManager health,
      ServedModel model,
      EngineLoop engine,
      AutoCloseable gauges) {
    this.server = server;
    this.health = health;
    this.model = model;
    this.engine = engine;
    this.gauges = gauges;
  }

  /** Starts serving {@code model} from {@code engine} on {@code host:port} (0 = a free port). */
  public static ServingServer start(
      String host, int port, ServedModel model, EngineLoop engine, BindableService admin)
      throws IOException {
    HealthStatusManager health = new HealthStatusManager();
    List<BindableService> services =
        List.of(new InferenceService(model, engine), admin, ProtoReflectionServiceV1.newInstance());
    NettyServerBuilder b =
        NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
            .addService(health.getHealthService())
            .maxInboundMessageSize(64 << 20);
    // Incoming trace context (W3C traceparent) becomes each request's parent span.
    services.forEach(
        service -> b.addService(ServerInterceptors.intercept(service, Telemetry.get().join())));
    Server server = b.build().start();
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus(InferenceGrpc.SERVICE_NAME, ServingStatus.SERVING);
    health.setStatus(AdminGrpc.SERVICE_NAME, ServingStatus.SERVING);
    AutoCloseable gauges =
        Telemetry.get()
            .observeLoad(
                () -> {
                  EngineLoop.Snapshot load = engine.snapshot();
                  return new Telemetry.Load(
                      load.residentTokens(),
                      load.capacityTokens(),
                      load.queuedTokens(),
                      load.activeRequests());
                });
    return new ServingServer(server, health, model, engine, gauges);
  }

  /**
   * A coordinator running every request on the in-process engine (one shard; role {@code all}).
   *
   * @param contextLimit tokens a sequence may hold; 0 = the model's trained context
   * @param kvCapacityTokens KV tokens all requests together may hold
   * @param limits concurrency and queue deadline of admission
   */
  public static ServingServer inProcess(
      LoadedModel loaded,
      String name,
      int contextLimit,
      long kvCapacityTokens,
      EngineLoop.Limits limits,
      String host,
      int port)
      throws IOException {
    return inProcess(
        loaded, name, contextLimit, kvCapacityTokens, limits, host, port, AttentionPolicy.dense());
  }

  /** {@link #inProcess} with every request under {@code policy}. */
  public static ServingServer inProcess(
      LoadedModel loaded,
      String name,
      int contextLimit,
      long kvCapacityTokens,
      EngineLoop.Limits limits,
      String host,
      int port,
      AttentionPolicy policy)
      throws IOException {
    return inProcess(
        loaded,
        name,
        contextLimit,
        kvCapacityTokens,
        limits,
        host,
        port,
        policy,
        loaded.transformer().withAttention(policy));
  }

  /**
   * {@link #inProcess} on {@code decoder}, which runs {@code loaded} under {@code policy}: the CPU
   * transformer or the GPU's model.
   */
  public static ServingServer inProcess(
      LoadedModel loaded,
      String name,
      int contextLimit,
      long kvCapacityTokens,
      EngineLoop.Limits limits,
      String host,
      int port,
      AttentionPolicy policy,
      Decoder<?> decoder)
      throws IOException {
    EngineLoop engine = new EngineLoop(new LocalBackend(decoder), kvCapacityTokens, limits);
    long epoch = new java.security.SecureRandom().nextLong() & Long.MAX_VALUE;
    return start(
        host,
        port,
        servedModel(loaded, name, contextLimit, policy),
        engine,
        new AdminService(engine, AdminService.inProcess(engine, name, epoch)));
  }

  /** A coordinator driving {@code shards} (sequence-sharded, dense, contiguous ranges). */
  public static ServingServer sharded(
      LoadedModel loaded,
      String name,
      int contextLimit,
      List<ShardClient> shards,
      int minTokensPerShard,
      int maxShardsPerRequest,
      EngineLoop.Limits limits,
      String host,
      int port)
      throws IOException {
    return sharded(
        loaded,
        name,
        contextLimit,
        shards,
        minTokensPerShard,
        maxShardsPerRequest,
        limits,
        host,
        port,
        AttentionPolicy.dense(),
        ShardedBackend.Placement.CONTIGUOUS);
  }

  /**
   * A coordinator driving {@code shards} with every request under {@code policy} (dense or
   * SelfExtend), steps split by {@code placement}.
   */
  public static ServingServer sharded(
      LoadedModel loaded,
      String name,
      int contextLimit,
      List<ShardClient> shards,
      int minTokensPerShard,
      int maxShardsPerRequest,
      EngineLoop.Limits limits,
      String host,
      int port,
      AttentionPolicy policy,
      ShardedBackend.Placement placement)
      throws IOException {
    if (shards.isEmpty()) {
      throw new IllegalArgumentException("a sharded coordinator needs at least one shard");
    }
    return sharded(
        loaded,
        name,
        contextLimit,
        ShardDirectory.fixed(shards),
        minTokensPerShard,
        maxShardsPerRequest,
        limits,
        host,
        port,
        policy,
        placement);
  }

  /**
   * A coordinator placing requests on the shards {@code directory} holds (which may follow a
   * headless Service as the pool scales).
   */
  public static ServingServer sharded(
      LoadedModel loaded,
      String name,
      int contextLimit,
      ShardDirectory directory,
      int minTokensPerShard,
      int maxShardsPerRequest,
      EngineLoop.Limits limits,
      String host,
      int port,
      AttentionPolicy policy,
      ShardedBackend.Placement placement)
      throws IOException {
    EngineLoop engine =
        new EngineLoop(
            new ShardedBackend(
                directory,
                loaded.config(),
                minTokensPerShard,
                maxShardsPerRequest,
                policy,
                placement),
            directory.capacityTokens(),
            limits);
    return start(
        host,
        port,
        servedModel(loaded, name, contextLimit, policy),
        engine,
        new AdminService(engine, ShardPool.loads(directory::current)));
  }

  static ServedModel servedModel(LoadedModel loaded, String name, int contextLimit) {
    return servedModel(loaded, name, contextLimit, AttentionPolicy.dense());
  }

  /**
   * What is served under {@code policy}: the context limit is the configured one, else the policy's
   * (SelfExtend's extended context) capped by nothing else, else the trained context.
   */
  static ServedModel servedModel(
      LoadedModel loaded, String name, int contextLimit, AttentionPolicy policy) {
    int trained = loaded.config().contextLength();
    int policyLimit = policy.maxContext(trained);
    int limit =
        contextLimit > 0
            ? Math.min(contextLimit, policyLimit)
            : policyLimit == Integer.MAX_VALUE ? trained : policyLimit;
    return new ServedModel(
        name, loaded.config(), loaded.tokenizer(), limit, List.of(policy.name()));
  }

  public int port() {
    return server.getPort();
  }

  /** What is served: the model, its limits and attention methods. */
  public ServedModel model() {
    return model;
  }

  /** The scheduler behind the gRPC API, which the OpenAI-compatible HTTP API shares. */
  public EngineLoop engine() {
    return engine;
  }

  /** Blocks until the server has stopped. */
  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  /** Drains: health NOT_SERVING, no new calls, running streams get {@code graceSeconds}. */
  public void shutdown(long graceSeconds) {
    health.enterTerminalState();
    server.shutdown();
    try {
      if (!server.awaitTermination(graceSeconds, TimeUnit.SECONDS)) {
        server.shutdownNow();
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    }
    engine.close();
    try {
      gauges.close();
    } catch (Exception e) {
      // Unregistering instruments cannot fail in a way that matters at shutdown.
    }
  }

  @Override
  public void close() {
    shutdown(0);
  }
}
