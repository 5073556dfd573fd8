package dev.longctx.e2e.local;

import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.InferenceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * {@code longctx serve --shards N} as the README runs it: a coordinator JVM from the packaged
 * application, which starts N shard JVMs on loopback; free ports, logs in a run directory under
 * {@code target/}. Every JVM exits with the test JVM ({@code --exit-with-parent}).
 */
final class LocalCluster implements AutoCloseable {

  private final Process coordinator;
  private final Path runDir;
  private final ManagedChannel channel;
  private final int httpPort;

  private LocalCluster(Process coordinator, Path runDir, int grpcPort, int httpPort) {
    this.coordinator = coordinator;
    this.runDir = runDir;
    this.httpPort = httpPort;
    this.channel = NettyChannelBuilder.forAddress("127.0.0.1", grpcPort).usePlaintext().build();
  }

  /**
   * Starts a coordinator with {@code shards} shard processes serving {@code model}.
   *
   * @param env extra environment of the coordinator (e.g. {@code LONGCTX_API_KEY})
   * @param options further {@code serve} options
   */
  static LocalCluster start(Path model, int shards, Map<String, String> env, String... options)
      throws IOException, InterruptedException {
    String app = System.getProperty("longctx.app", "../worker/target/quarkus-app/quarkus-run.jar");
    if (!Files.isRegularFile(Path.of(app))) {
      throw new IllegalStateException(
          app
              + " is missing: the e2e tests run the packaged worker; run them through"
              + " ./mvnw verify (or ./mvnw -pl worker -am package first)");
    }
    Path runDir =
        Path.of("target", "e2e-local", "run-" + System.currentTimeMillis()).toAbsolutePath();
    Files.createDirectories(runDir);
    Path grpcPortFile = runDir.resolve("grpc.port");
    Path httpPortFile = runDir.resolve("http.port");
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.addAll(Arrays.asList(System.getProperty("longctx.jvmArgs", "").split("\\s+")));
    cmd.removeIf(String::isBlank);
    // The shards inherit these flags from the coordinator (LocalShards); the model is tiny.
    cmd.addAll(List.of("-Xmx384m", "-XX:+UseSerialGC", "-jar", app));
    cmd.addAll(
        List.of(
            "serve",
            "--model",
            model.toString(),
            "--shards",
            Integer.toString(shards),
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--port-file",
            grpcPortFile.toString(),
            "--http-port-file",
            httpPortFile.toString(),
            "--run-dir",
            runDir.toString(),
            "--exit-with-parent"));
    cmd.addAll(Arrays.asList(options));
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(runDir.resolve("coordinator.log").toFile());
    for (String inherited : List.of("LONGCTX_ROLE", "LONGCTX_MODEL_PATH", "POD_NAME")) {
      pb.environment().remove(inherited);
    }
    pb.environment().putAll(env);
    Process p = pb.start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
    while (!Files.exists(grpcPortFile) || !Files.exists(httpPortFile)) {
      if (!p.isAlive()) {
        throw new IllegalStateException(
            "the coordinator exited with " + p.exitValue() + ":\n" + tail(runDir));
      }
      if (System.nanoTime() > deadline) {
        p.destroyForcibly();
        throw new IllegalStateException("the coordinator did not start in 240 s:\n" + tail(runDir));
      }
      Thread.sleep(50);
    }
    return new LocalCluster(
        p,
        runDir,
        Integer.parseInt(Files.readString(grpcPortFile).strip()),
        Integer.parseInt(Files.readString(httpPortFile).strip()));
  }

  InferenceGrpc.InferenceBlockingStub inference() {
    return InferenceGrpc.newBlockingStub(channel).withDeadlineAfter(120, TimeUnit.SECONDS);
  }

  InferenceGrpc.InferenceStub inferenceAsync() {
    return InferenceGrpc.newStub(channel);
  }

  AdminGrpc.AdminBlockingStub admin() {
    return AdminGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
  }

  String httpBase() {
    return "http://127.0.0.1:" + httpPort;
  }

  /** The shard JVM started with {@code --shard-id id}, a child of the coordinator. */
  ProcessHandle shard(int id) {
    Optional<ProcessHandle> shard =
        coordinator
            .children()
            .filter(
                c -> {
                  List<String> args = Arrays.asList(c.info().arguments().orElse(new String[0]));
                  int at = args.indexOf("--shard-id");
                  return at >= 0 && at + 1 < args.size() && args.get(at + 1).equals("" + id);
                })
            .findFirst();
    return shard.orElseThrow(() -> new IllegalStateException("no shard " + id + " is running"));
  }

  String coordinatorLog() throws IOException {
    return Files.readString(runDir.resolve("coordinator.log"));
  }

  private static String tail(Path runDir) {
    try {
      List<String> lines = Files.readAllLines(runDir.resolve("coordinator.log"));
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  @Override
  public void close() throws InterruptedException {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    coordinator.destroy(); // SIGTERM: the coordinator stops its shards
    if (!coordinator.waitFor(30, TimeUnit.SECONDS)) {
      coordinator.descendants().forEach(ProcessHandle::destroyForcibly);
      coordinator.destroyForcibly();
    }
  }
}
