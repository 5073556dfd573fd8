package dev.longctx.worker.cli;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tensor.Parallel;
import dev.longctx.worker.api.HealthEndpoints;
import dev.longctx.worker.api.OpenAiApi;
import dev.longctx.worker.api.ServingServer;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.LocalShards;
import dev.longctx.worker.coordinator.ShardClient;
import dev.longctx.worker.coordinator.ShardDirectory;
import dev.longctx.worker.coordinator.ShardPool;
import dev.longctx.worker.coordinator.ShardedBackend;
import dev.longctx.worker.shard.ShardEngine;
import dev.longctx.worker.shard.ShardServer;
import dev.longctx.worker.telemetry.Telemetry;
import io.opentelemetry.api.OpenTelemetry;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Serves a model until interrupted, in one of three roles: {@code all} (a coordinator with the
 * engine in this process, or with {@code --shards N} local shard processes on loopback), {@code
 * coordinator} (driving shards found from {@code --shard-addresses} or the {@code shards.service}
 * DNS name), {@code shard} (the internal shard API). Settings come, highest first, from options,
 * the environment the operator sets ({@code LONGCTX_ROLE}, {@code LONGCTX_MODEL_PATH}, {@code
 * LONGCTX_KV_CACHE_TOKENS}, {@code POD_NAME}) and the engine.properties of {@code --config}.
 */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description =
        "Serve a model over gRPC (longctx.v1 Inference and Admin, grpc.health.v1) and HTTP (the"
            + " OpenAI-compatible /v1 API and health probes), until Ctrl-C / SIGTERM. --shards N"
            + " starts N shard processes on loopback.")
public class ServeCommand implements Callable<Integer> {

  @Option(
      names = {"-m", "--model"},
      description =
          "Model file or directory (default: LONGCTX_MODEL_PATH, or model.path of --config).")
  Path model;

  @Option(names = "--tokenizer", description = "Tokenizer when the model does not carry one.")
  Path tokenizer;

  @Option(
      names = "--config",
      description =
          "engine.properties as the operator writes it (model.path, context.maxTokens, ...).")
  Path config;

  @Option(
      names = "--role",
      description = "all, coordinator or shard (default: LONGCTX_ROLE, else all).")
  String role;

  @Option(
      names = "--shards",
      description =
          "Local mode: shard processes to start on loopback (default: 0, the engine runs in this process).")
  int shards;

  @Option(
      names = "--shard-addresses",
      split = ",",
      description =
          "Coordinator: shards as HOST:PORT,... (default: shards.service and shards.port of --config).")
  List<String> shardAddresses = new ArrayList<>();

  @Option(
      names = "--host",
      defaultValue = "0.0.0.0",
      description = "Address to bind (default: ${DEFAULT-VALUE}).")
  String host;

  @Option(
      names = "--grpc-port",
      description = "Coordinator gRPC port; 0 = a free one (default: grpc.port, else 9000).")
  Integer grpcPort;

  @Option(
      names = "--shard-port",
      description = "Shard API port; 0 = a free one (default: shards.port, else 9100).")
  Integer shardPort;

  @Option(
      names = "--http-port",
      description =
          "HTTP port of the OpenAI-compatible API (/v1/completions, /v1/chat/completions,"
              + " /v1/models) and the health probes; 0 = a free one, -1 = off (default: http.port,"
              + " else 8080). Clients send Authorization: Bearer $LONGCTX_API_KEY when that is set.")
  Integer httpPort;

  @Option(
      names = "--served-model-name",
      description =
          "The model's name in the APIs (OpenAI \"model\"; default: LONGCTX_SERVED_MODEL_NAME,"
              + " model.name of --config, else the model file's name). The file's name is"
              + " accepted too.")
  String servedModelName;

  @Option(
      names = "--shard-id",
      description = "Shard ordinal (default: the ordinal at the end of POD_NAME, else 0).")
  Integer shardId;

  @Option(
      names = {"-c", "--ctx"},
      description =
          "Context limit in tokens (default: context.maxTokens, else the model's trained context).")
  Integer ctx;

  @Option(
      names = "--kv-cache-tokens",
      description =
          "KV tokens this process may hold (default: LONGCTX_KV_CACHE_TOKENS, kv.cacheTokens, else"
              + " 4 × the context limit; a GPU shard: what fits in the device memory the weights"
              + " leave, less max(1 GiB, 5 %); a configured value that does not fit fails).")
  Long kvCacheTokens;

  @Option(
      names = "--min-tokens-per-shard",
      description =
          "A prompt is spread over ceil(tokens / this) shards (default: sharding.minTokensPerShard, else 256).")
  Integer minTokensPerShard;

  @Option(
      names = "--max-shards-per-request",
      description =
          "Most shards one request uses (default: sharding.maxShardsPerRequest, else all).")
  Integer maxShardsPerRequest;

  @Option(
      names = "--queue-timeout",
      defaultValue = "60000",
      description =
          "Milliseconds a request may wait in the admission queue (for KV capacity or a free"
              + " concurrency slot) before RESOURCE_EXHAUSTED / HTTP 429 (default: ${DEFAULT-VALUE}).")
  long queueTimeoutMillis;

  @Option(
      names = "--max-concurrent-requests",
      defaultValue = "256",
      description =
          "Requests run at once; more wait in the admission queue (default: ${DEFAULT-VALUE}).")
  int maxConcurrentRequests;

  @Option(
      names = "--call-timeout",
      defaultValue = "120000",
      description =
          "Deadline of each coordinator → shard call in milliseconds (default: ${DEFAULT-VALUE}).")
  long callTimeoutMillis;

  @Option(
      names = "--run-dir",
      description = "Local mode: where shard logs go (default: a new folder under ./runs).")
  Path runDir;

  @Option(
      names = "--port-file",
      hidden = true,
      description = "Write the bound port here once serving.")
  Path portFile;

  @Option(
      names = "--http-port-file",
      hidden = true,
      description = "Write the bound HTTP port here once serving.")
  Path httpPortFile;

  @Option(
      names = "--exit-with-parent",
      hidden = true,
      description = "Exit when the parent process does.")
  boolean exitWithParent;

  @Option(
      names = {"-t", "--threads"},
      description = "Compute threads (default: all cores).")
  Integer threads;

  @Mixin AttentionOptions attentionOptions;

  @Mixin GpuOptions gpuOptions;

  @Option(
      names = "--backend",
      description =
          "Where the model runs: cpu, cuda or auto (CUDA when a GPU is usable) (default:"
              + " engine.backend, else cpu). Applies to a shard (every attention method: the"
              + " coordinator selects, the shard attends), to the shards --shards starts, and to"
              + " an in-process server, whose GPU model runs every attention method (top-k keys"
              + " selected on the GPU; a top-k past the GPU's limit runs on an in-process GPU"
              + " shard with cuda, on the CPU with auto). A coordinator itself computes no"
              + " layers.")
  String backendOption;

  @Option(
      names = "--placement",
      description =
          "How each step's tokens are split over a request's shards: contiguous or zigzag"
              + " (default: sharding.placement, else contiguous).")
  String placementOption;

  private final Properties conf = new Properties();

  /**
   * The engine an in-process server runs: the CPU transformer, or the GPU model when {@code
   * --backend} (engine.backend) picks CUDA. {@code auto} falls back to the CPU for a policy the GPU
   * does not run; {@code cuda} fails naming it. The GPU model is freed with the server.
   */
  private Decoder<?> inProcessDecoder(
      LoadedModel loaded, AttentionPolicy policy, List<Runnable> stops) {
    Backend requested = requestedBackend();
    Backend chosen = requested.select();
    if (chosen == Backend.CUDA && requested == Backend.AUTO && !CudaModel.supports(policy)) {
      System.err.printf(
          "longctx serve: %s attention runs on the CPU (%s)%n",
          policy.name(), CudaModel.unsupportedReason(policy));
      chosen = Backend.CPU;
    }
    if (chosen == Backend.CPU) {
      checkKvCacheTypeOnCpu();
      return loaded.transformer().withAttention(policy);
    }
    CudaModel.requireSupported(policy);
    CudaModel gpu = openGpu(loaded);
    CudaModel withPolicy = gpu.withAttention(policy);
    stops.add(
        () -> {
          withPolicy.close();
          gpu.close();
        });
    return withPolicy;
  }

  /**
   * The model uploaded to device 0, its KV caches of --kv-cache-type (else kv.cacheType), its
   * decode steps as CUDA graphs under --cuda-graphs (else cuda.graphs).
   */
  private CudaModel openGpu(LoadedModel loaded) {
    return gpuOptions.openGpu(loaded, GpuOptions.Configured.of(conf));
  }

  /**
   * Fails when --kv-cache-type (else kv.cacheType) asks for f16, or --cuda-graphs (else
   * cuda.graphs) for graphs, on the CPU.
   */
  private void checkKvCacheTypeOnCpu() {
    gpuOptions.resolve(Backend.CPU, GpuOptions.Configured.of(conf));
  }

  /** The backend asked for: --backend, else engine.backend, else cpu. */
  private Backend requestedBackend() {
    return Backend.parse(first(backendOption, conf.getProperty("engine.backend"), "cpu"));
  }

  /**
   * A shard on the chosen backend: the CPU's ranges, or a GPU model's ({@link CudaModel#newRange}).
   * A shard runs every attention method on either (the coordinator selects sparse keys; a shard
   * only attends), so {@code auto} is simply CUDA when a GPU is usable. The GPU model is freed when
   * the shard stops.
   */
  private ShardEngine shardEngine(
      int id,
      LoadedModel loaded,
      long capacity,
      boolean capacityConfigured,
      AttentionPolicy policy,
      String fingerprint,
      List<Runnable> stops) {
    // The model file's lightning indexer, for requests that select with it (indexer "model").
    var indexer = AttentionOptions.indexerFor(policy, loaded);
    if (requestedBackend().select() == Backend.CPU) {
      checkKvCacheTypeOnCpu();
      return new ShardEngine(id, loaded.config(), loaded.weights(), capacity, fingerprint)
          .withIndexer(indexer);
    }
    CudaModel gpu = openGpu(loaded);
    try {
      // A configured capacity must fit in the device memory the weights left (checked there);
      // unset, it is what fits.
      ShardEngine engine =
          ShardEngine.cuda(id, gpu, policy, capacityConfigured ? capacity : 0, fingerprint)
              .withIndexer(indexer);
      stops.add(gpu::close);
      return engine;
    } catch (RuntimeException e) {
      gpu.close();
      throw e;
    }
  }

  /**
   * Attention from engine.properties (the operator writes the CR's attention and context.selfExtend
   * there) where no {@code --attention} option was given.
   */
  private void attentionFromConfig() {
    if (!attentionOptions.attention.equals("dense") || attentionOptions.groupSize != null) {
      return;
    }
    String method = conf.getProperty("attention.method", "dense").strip();
    boolean selfExtend =
        Boolean.parseBoolean(conf.getProperty("context.selfExtend.enabled", "false").strip());
    attentionOptions.attention = method.equals("dense") && selfExtend ? "self-extend" : method;
    if (selfExtend) {
      attentionOptions.groupSize = intConf("context.selfExtend.groupSize", 1);
      attentionOptions.neighborWindow = intConf("context.selfExtend.neighborWindow", 1);
    }
    if (method.equals("indexer-topk")) {
      attentionOptions.topK = intConf("attention.topK", 2048);
      attentionOptions.denseBelow = intConf("attention.denseBelowTokens", 0);
      // own-heads, model (the lightning indexer in the model file), or the path of an indexer file
      // (the CR's attention.indexer, indexerFile)
      attentionOptions.indexer = conf.getProperty("attention.indexer", "own-heads").strip();
    } else if (method.equals("block-topk")) {
      attentionOptions.blockSize = intConf("attention.blockSize", 64);
      // the CR's attention.topK: "keys (indexer-topk) or blocks (block-topk) each query attends to"
      attentionOptions.topBlocks = intConf("attention.topK", 8);
    }
  }

  /**
   * The SDK quarkus-opentelemetry configured (a no-op unless enabled, see application.properties).
   */
  @Inject OpenTelemetry openTelemetry;

  @Override
  public Integer call() throws Exception {
    if (openTelemetry != null) {
      Telemetry.install(openTelemetry);
    }
    if (config != null) {
      try (Reader r = Files.newBufferedReader(config)) {
        conf.load(r);
      }
    }
    String actualRole = first(role, System.getenv("LONGCTX_ROLE"), "all").toLowerCase(Locale.ROOT);
    if (!List.of("all", "coordinator", "shard").contains(actualRole)) {
      throw new IllegalArgumentException(
          "--role must be all, coordinator or shard, got " + actualRole);
    }
    String apiKey = actualRole.equals("shard") ? null : apiKey();
    if (shards < 0) {
      throw new IllegalArgumentException("--shards must be >= 0, got " + shards);
    }
    String modelPath =
        first(
            model == null ? null : model.toString(),
            System.getenv("LONGCTX_MODEL_PATH"),
            conf.getProperty("model.path"));
    if (modelPath == null) {
      throw new IllegalArgumentException(
          "no model: give --model, LONGCTX_MODEL_PATH or --config with model.path");
    }
    if (threads != null) {
      Parallel.setThreads(threads);
    }
    if (exitWithParent) {
      ProcessHandle.current()
          .parent()
          .ifPresent(p -> p.onExit().thenRun(() -> Runtime.getRuntime().halt(0)));
    }
    int http = httpPort != null ? httpPort : intConf("http.port", 8080);
    AtomicBoolean ready = new AtomicBoolean();
    HealthEndpoints health = http >= 0 ? HealthEndpoints.start(host, http, ready::get) : null;
    long t0 = System.nanoTime();
    LoadedModel loaded = LoadedModel.load(Path.of(modelPath), tokenizer);
    attentionFromConfig();
    AttentionPolicy policy = attentionOptions.policy(loaded);
    ShardedBackend.Placement split =
        ShardedBackend.Placement.parse(
            placementOption != null
                ? placementOption
                : conf.getProperty("sharding.placement", "contiguous"));
    int configured = ctx != null && ctx > 0 ? ctx : intConf("context.maxTokens", 0);
    int trained = loaded.config().contextLength();
    // SelfExtend serves its extended context, (L_train − w)·G + w, unless a limit is configured.
    int contextLimit =
        configured > 0
            ? configured
            : policy.positions() != null ? policy.maxContext(trained) : trained;
    String kvEnv = System.getenv("LONGCTX_KV_CACHE_TOKENS");
    boolean capacityConfigured =
        kvCacheTokens != null || kvEnv != null || conf.getProperty("kv.cacheTokens") != null;
    long capacity =
        kvCacheTokens != null
            ? kvCacheTokens
            : kvEnv != null
                ? Long.parseLong(kvEnv)
                : Long.parseLong(
                    conf.getProperty("kv.cacheTokens", Long.toString(4L * contextLimit)));
    String fileName = Path.of(modelPath).getFileName().toString();
    String name = first(System.getenv("POD_NAME"), fileName);
    String served =
        first(
            servedModelName,
            System.getenv("LONGCTX_SERVED_MODEL_NAME"),
            conf.getProperty("model.name"),
            fileName);
    String fingerprint = ShardEngine.modelFingerprint(Path.of(modelPath));
    double loadSeconds = (System.nanoTime() - t0) / 1e9;

    List<Runnable> stops = new ArrayList<>();
    Runnable await;
    if (actualRole.equals("shard")) {
      int id = shardId != null ? shardId : ordinal(System.getenv("POD_NAME"));
      ShardEngine engine =
          shardEngine(id, loaded, capacity, capacityConfigured, policy, fingerprint, stops);
      int port = shardPort != null ? shardPort : intConf("shards.port", 9100);
      ShardServer server =
          listen(() -> ShardServer.start(host, port, engine), host, port, loaded, health);
      stops.add(0, () -> server.shutdown(10)); // before the GPU model is freed
      await = uninterruptibly(server::awaitTermination);
      writePort(server.port());
      System.err.printf(
          "longctx serve: shard %d of %s loaded in %.1f s on %s; shard API on %s:%d, KV capacity %d tokens%n",
          id, name, loadSeconds, engine.backend(), host, server.port(), engine.capacityTokens());
    } else {
      List<String> addresses = new ArrayList<>(shardAddresses);
      String dnsService = null;
      LocalShards local = null;
      if (shards > 0) {
        Path dir =
            runDir != null
                ? runDir
                : Path.of(
                    "runs",
                    "serve-"
                        + LocalDateTime.now()
                            .format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        List<String> extra = new ArrayList<>();
        if (capacityConfigured || requestedBackend() == Backend.CPU) {
          // GPU shards left unconfigured size their KV cache by the device memory they find.
          extra.addAll(List.of("--kv-cache-tokens", Long.toString(capacity)));
        }
        if (tokenizer != null) {
          extra.addAll(List.of("--tokenizer", tokenizer.toString()));
        }
        // The shards share this machine's cores: each gets its share unless told otherwise.
        int perShardThreads =
            threads != null
                ? threads
                : Math.max(1, Runtime.getRuntime().availableProcessors() / shards);
        extra.addAll(List.of("--threads", Integer.toString(perShardThreads)));
        extra.addAll(List.of("--backend", requestedBackend().name().toLowerCase(Locale.ROOT)));
        if (requestedBackend() != Backend.CPU) {
          // Each shard checks it against the backend it finds (auto may land on the CPU there).
          extra.addAll(gpuOptions.forShards(Backend.CUDA, GpuOptions.Configured.of(conf)));
        }
        System.err.printf("longctx serve: starting %d shard processes (logs in %s)%n", shards, dir);
        local = LocalShards.start(shards, Path.of(modelPath), dir, extra, 300_000);
        addresses.addAll(local.addresses());
        LocalShards toStop = local;
        stops.add(toStop::close);
      } else if (addresses.isEmpty()
          && actualRole.equals("coordinator")
          && conf.getProperty("shards.service") != null) {
        String service = conf.getProperty("shards.service");
        dnsService = service;
        int port = intConf("shards.port", 9100);
        long deadline = System.nanoTime() + 300_000_000_000L;
        while ((addresses = new ArrayList<>(ShardPool.resolve(service, port))).isEmpty()) {
          if (System.nanoTime() > deadline) {
            throw new IllegalStateException("no shard answers at " + service + " after 300 s");
          }
          Thread.sleep(1000);
        }
      }
      if (addresses.isEmpty()
          && requestedBackend() == Backend.CUDA
          && !CudaModel.supports(policy)) {
        // --backend cuda with a top-k past the GPU selection's limit: the GPU keeps the KV and
        // attends as a shard in this
        // process, the coordinator here selects the keys (on the CPU), as with remote GPU shards.
        ShardEngine engine =
            shardEngine(0, loaded, capacity, capacityConfigured, policy, fingerprint, stops);
        ShardServer gpuShard = ShardServer.start("127.0.0.1", 0, engine);
        stops.add(0, () -> gpuShard.shutdown(10)); // before the GPU model is freed
        addresses.add("127.0.0.1:" + gpuShard.port());
        System.err.printf(
            "longctx serve: %s attention on %s as an in-process shard; keys are selected on the"
                + " CPU%n",
            policy.name(), engine.backend());
      }
      int grpc = grpcPort != null ? grpcPort : intConf("grpc.port", 9000);
      EngineLoop.Limits limits = new EngineLoop.Limits(maxConcurrentRequests, queueTimeoutMillis);
      ServingServer server;
      String placement;
      if (addresses.isEmpty()) {
        Decoder<?> decoder = inProcessDecoder(loaded, policy, stops);
        if (decoder instanceof CudaModel gpu) {
          // The admission budget must fit in the device memory the weights left: a configured one
          // is checked (an error naming both numbers now, not an out-of-memory mid-request), the
          // default one capped at what fits.
          long fits = gpu.tokensThatFit(policy, capacityConfigured ? capacity : 0);
          capacity = Math.min(capacity, fits);
          System.err.printf(
              "longctx serve: KV capacity %d tokens on %s%n", capacity, gpu.context().deviceName());
        }
        long kvCapacity = capacity;
        server =
            listen(
                () ->
                    ServingServer.inProcess(
                        loaded,
                        served,
                        contextLimit,
                        kvCapacity,
                        limits,
                        host,
                        grpc,
                        policy,
                        decoder),
                host,
                grpc,
                loaded,
                health);
        placement =
            "1 shard (in-process" + (decoder instanceof CudaModel ? ", on the GPU" : "") + ")";
      } else {
        List<ShardClient> clients = ShardPool.connect(addresses, callTimeoutMillis, 300_000);
        ShardDirectory directory;
        if (dnsService != null) {
          // The pool scales: look the headless Service up again, admit new shards, drop gone ones.
          String service = dnsService;
          int port = intConf("shards.port", 9100);
          directory =
              ShardDirectory.resolving(
                      clients,
                      () -> ShardPool.resolve(service, port),
                      address -> ShardPool.client(address, callTimeoutMillis),
                      callTimeoutMillis)
                  .refreshEvery(intConf("shards.refreshMillis", 10_000));
        } else {
          directory = ShardDirectory.fixed(clients);
        }
        int minPerShard =
            minTokensPerShard != null
                ? minTokensPerShard
                : intConf("sharding.minTokensPerShard", 256);
        int maxPerRequest =
            maxShardsPerRequest != null
                ? maxShardsPerRequest
                : intConf(
                    "sharding.maxShardsPerRequest",
                    dnsService != null ? Integer.MAX_VALUE : clients.size());
        int limit = contextLimit;
        server =
            listen(
                () ->
                    ServingServer.sharded(
                        loaded,
                        served,
                        limit,
                        directory,
                        minPerShard,
                        maxPerRequest,
                        limits,
                        host,
                        grpc,
                        policy,
                        split),
                host,
                grpc,
                loaded,
                health);
        placement =
            clients.size()
                + " shards "
                + addresses
                + ", ceil(prompt / "
                + minPerShard
                + ") per request, at most "
                + maxPerRequest;
      }
      stops.add(0, () -> server.shutdown(10));
      await = uninterruptibly(server::awaitTermination);
      if (health != null) {
        new OpenAiApi(server.model(), List.of(fileName), server.engine(), apiKey).mount(health);
        writePort(httpPortFile, health.port());
      }
      writePort(server.port());
      System.err.printf(
          "longctx serve: %s (%s, context %d tokens) loaded in %.1f s; gRPC on %s:%d%s; role %s, %s%n",
          served,
          loaded.config().architecture(),
          contextLimit,
          loadSeconds,
          host,
          server.port(),
          health != null
              ? ", OpenAI-compatible HTTP on port "
                  + health.port()
                  + (apiKey != null ? " (API key required)" : "")
              : "",
          actualRole,
          placement);
    }
    ready.set(true);
    Thread hook =
        new Thread(
            () -> {
              System.err.println("longctx serve: shutting down");
              ready.set(false);
              stops.forEach(Runnable::run);
              if (health != null) {
                health.close();
              }
            },
            "longctx-serve-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    await.run();
    return 0;
  }

  private interface Starter<T> {
    T start() throws IOException;
  }

  private interface Blocking {
    void run() throws InterruptedException;
  }

  private static Runnable uninterruptibly(Blocking b) {
    return () -> {
      try {
        b.run();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
  }

  private static <T> T listen(
      Starter<T> s, String host, int port, LoadedModel loaded, HealthEndpoints health) {
    try {
      return s.start();
    } catch (IOException e) {
      loaded.close();
      if (health != null) {
        health.close();
      }
      throw new IllegalStateException(
          "cannot listen on " + host + ":" + port + ": " + e.getMessage(), e);
    }
  }

  private void writePort(int port) throws IOException {
    writePort(portFile, port);
  }

  private static void writePort(Path file, int port) throws IOException {
    if (file != null) {
      Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
      Files.writeString(tmp, Integer.toString(port));
      Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
  }

  /**
   * The key OpenAI clients must send, from {@code LONGCTX_API_KEY} (the operator fills it from
   * {@code spec.service.apiKeySecret}); none when unset, unless the config says one is required.
   */
  private String apiKey() {
    String key = System.getenv("LONGCTX_API_KEY");
    if (key != null && !key.isBlank()) {
      return key.strip();
    }
    if (Boolean.parseBoolean(conf.getProperty("auth.apiKeyRequired", "false").strip())) {
      throw new IllegalArgumentException(
          "auth.apiKeyRequired=true in the config but LONGCTX_API_KEY is not set");
    }
    return null;
  }

  private int intConf(String key, int fallback) {
    String v = conf.getProperty(key);
    return v == null || v.isBlank() ? fallback : Integer.parseInt(v.strip());
  }

  /** The ordinal at the end of a StatefulSet pod name ({@code m-worker-3} → 3), else 0. */
  static int ordinal(String podName) {
    if (podName == null) {
      return 0;
    }
    int dash = podName.lastIndexOf('-');
    try {
      return Integer.parseInt(podName.substring(dash + 1));
    } catch (NumberFormatException e) {
      return 0;
    }
  }

  private static String first(String... values) {
    for (String v : values) {
      if (v != null && !v.isBlank()) {
        return v;
      }
    }
    return null;
  }
}
