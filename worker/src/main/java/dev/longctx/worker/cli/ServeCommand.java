package dev.longctx.worker.cli;

import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tensor.Parallel;
import dev.longctx.worker.api.HealthEndpoints;
import dev.longctx.worker.api.ServingServer;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Serves a model over gRPC until interrupted. Settings come, highest first, from options, the
 * environment the operator sets ({@code LONGCTX_MODEL_PATH}, {@code LONGCTX_KV_CACHE_TOKENS},
 * {@code LONGCTX_ROLE}, {@code POD_NAME}) and the engine.properties file of {@code --config}.
 */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description =
        "Serve a model over gRPC (longctx.v1: Inference, Admin, grpc.health.v1) with HTTP health"
            + " probes, until Ctrl-C / SIGTERM.")
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
      description =
          "all (coordinator with the engine in this process), coordinator, or shard (default:"
              + " LONGCTX_ROLE, else all).")
  String role;

  @Option(
      names = "--shards",
      description = "Local mode: shard processes to start on loopback (default: none, in-process).")
  Integer shards;

  @Option(
      names = "--host",
      defaultValue = "0.0.0.0",
      description = "Address to bind (default: ${DEFAULT-VALUE}).")
  String host;

  @Option(
      names = "--grpc-port",
      description = "gRPC port; 0 = a free one (default: grpc.port, else 9000).")
  Integer grpcPort;

  @Option(
      names = "--http-port",
      description = "HTTP health port; 0 = a free one, -1 = off (default: http.port, else 8080).")
  Integer httpPort;

  @Option(
      names = {"-c", "--ctx"},
      description =
          "Context limit in tokens (default: context.maxTokens, else the model's trained context).")
  Integer ctx;

  @Option(
      names = "--kv-cache-tokens",
      description =
          "KV tokens all requests may hold together (default: LONGCTX_KV_CACHE_TOKENS, kv.cacheTokens, else 4 × the context limit).")
  Long kvCacheTokens;

  @Option(
      names = "--queue-timeout",
      defaultValue = "60000",
      description =
          "Milliseconds a request may wait for KV capacity before RESOURCE_EXHAUSTED (default: ${DEFAULT-VALUE}).")
  long queueTimeoutMillis;

  @Option(
      names = {"-t", "--threads"},
      description = "Compute threads (default: all cores).")
  Integer threads;

  @Override
  public Integer call() throws Exception {
    Properties conf = new Properties();
    if (config != null) {
      try (Reader r = Files.newBufferedReader(config)) {
        conf.load(r);
      }
    }
    String actualRole = first(role, System.getenv("LONGCTX_ROLE"), "all").toLowerCase(Locale.ROOT);
    if (!actualRole.equals("all") && !actualRole.equals("coordinator")) {
      throw new IllegalArgumentException(
          "--role "
              + actualRole
              + " is not served yet: use all or coordinator (in-process engine)");
    }
    if (shards != null && shards > 1) {
      throw new IllegalArgumentException(
          "--shards "
              + shards
              + ": local mode with shard processes is not built yet; omit --shards");
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
    int grpc =
        grpcPort != null ? grpcPort : Integer.parseInt(conf.getProperty("grpc.port", "9000"));
    int http =
        httpPort != null ? httpPort : Integer.parseInt(conf.getProperty("http.port", "8080"));
    if (threads != null) {
      Parallel.setThreads(threads);
    }

    AtomicBoolean ready = new AtomicBoolean();
    HealthEndpoints health = http >= 0 ? HealthEndpoints.start(host, http, ready::get) : null;
    long t0 = System.nanoTime();
    LoadedModel loaded = LoadedModel.load(Path.of(modelPath), tokenizer);
    int limit = ctx != null ? ctx : Integer.parseInt(conf.getProperty("context.maxTokens", "0"));
    int contextLimit = limit > 0 ? limit : loaded.config().contextLength();
    String kvEnv = System.getenv("LONGCTX_KV_CACHE_TOKENS");
    long capacity =
        kvCacheTokens != null
            ? kvCacheTokens
            : kvEnv != null
                ? Long.parseLong(kvEnv)
                : Long.parseLong(
                    conf.getProperty("kv.cacheTokens", Long.toString(4L * contextLimit)));
    String name = first(System.getenv("POD_NAME"), Path.of(modelPath).getFileName().toString());
    ServingServer server;
    try {
      server =
          ServingServer.inProcess(
              loaded, name, contextLimit, capacity, queueTimeoutMillis, host, grpc);
    } catch (IOException e) {
      loaded.close();
      if (health != null) {
        health.close();
      }
      throw new IllegalStateException(
          "cannot listen on " + host + ":" + grpc + ": " + e.getMessage(), e);
    }
    ready.set(true);
    System.err.printf(
        "longctx serve: %s (%s, context %d tokens, KV capacity %d tokens) loaded in %.1f s;"
            + " gRPC on %s:%d%s; role %s, 1 shard (in-process)%n",
        name,
        loaded.config().architecture(),
        contextLimit,
        capacity,
        (System.nanoTime() - t0) / 1e9,
        host,
        server.port(),
        health != null ? ", HTTP health on port " + health.port() : "",
        actualRole);

    CountDownLatch stopped = new CountDownLatch(1);
    Thread hook =
        new Thread(
            () -> {
              System.err.println("longctx serve: shutting down");
              ready.set(false);
              server.shutdown(10);
              if (health != null) {
                health.close();
              }
              stopped.countDown();
            },
            "longctx-serve-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    server.awaitTermination();
    stopped.await();
    return 0;
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
