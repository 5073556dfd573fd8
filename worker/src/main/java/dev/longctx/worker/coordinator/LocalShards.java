package dev.longctx.worker.coordinator;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Local mode: N shard processes of this same application on loopback, each on a free port it writes
 * to a file in the run directory, each logging to {@code shard-<i>.log} there. The shards exit with
 * this process.
 */
public final class LocalShards implements AutoCloseable {

  private final List<Process> processes;
  private final List<String> addresses;
  private final Path runDir;

  private LocalShards(List<Process> processes, List<String> addresses, Path runDir) {
    this.processes = processes;
    this.addresses = addresses;
    this.runDir = runDir;
  }

  /**
   * Starts {@code count} shards serving {@code model} and waits until each has its port.
   *
   * @param extraArgs further {@code serve} options for every shard (tokenizer, threads, KV)
   */
  public static LocalShards start(
      int count, Path model, Path runDir, List<String> extraArgs, long timeoutMillis)
      throws IOException, InterruptedException {
    Files.createDirectories(runDir);
    List<String> base = new ArrayList<>();
    base.add(ProcessHandle.current().info().command().orElse("java"));
    base.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    String classPath = System.getProperty("java.class.path");
    if (classPath.endsWith(".jar") && !classPath.contains(java.io.File.pathSeparator)) {
      base.add("-jar");
      base.add(classPath);
    } else {
      throw new IllegalStateException(
          "local mode starts shards from the packaged application (quarkus-run.jar); run it through"
              + " ./longctx");
    }
    List<Process> processes = new ArrayList<>();
    List<Path> portFiles = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      Path portFile = runDir.resolve("shard-" + i + ".port");
      Files.deleteIfExists(portFile);
      portFiles.add(portFile);
      List<String> cmd = new ArrayList<>(base);
      cmd.addAll(
          List.of(
              "serve",
              "--role",
              "shard",
              "--model",
              model.toString(),
              "--shard-id",
              Integer.toString(i),
              "--host",
              "127.0.0.1",
              "--shard-port",
              "0",
              "--http-port",
              "-1",
              "--port-file",
              portFile.toString(),
              "--exit-with-parent"));
      cmd.addAll(extraArgs);
      Path log = runDir.resolve("shard-" + i + ".log");
      processes.add(
          new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start());
    }
    LocalShards shards = new LocalShards(processes, new ArrayList<>(), runDir);
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    try {
      for (int i = 0; i < count; i++) {
        Path portFile = portFiles.get(i);
        while (!Files.exists(portFile) || Files.readString(portFile).isBlank()) {
          if (!processes.get(i).isAlive()) {
            throw new IllegalStateException(
                "shard "
                    + i
                    + " exited with "
                    + processes.get(i).exitValue()
                    + "; see "
                    + runDir.resolve("shard-" + i + ".log"));
          }
          if (System.nanoTime() > deadline) {
            throw new IllegalStateException(
                "shard "
                    + i
                    + " did not start within "
                    + timeoutMillis
                    + " ms; see "
                    + runDir.resolve("shard-" + i + ".log"));
          }
          Thread.sleep(50);
        }
        shards.addresses.add("127.0.0.1:" + Files.readString(portFile).strip());
      }
    } catch (RuntimeException | IOException | InterruptedException e) {
      shards.close();
      throw e;
    }
    return shards;
  }

  public List<String> addresses() {
    return List.copyOf(addresses);
  }

  public Path runDir() {
    return runDir;
  }

  /** The shard processes, for tests that kill one. */
  public List<Process> processes() {
    return List.copyOf(processes);
  }

  @Override
  public void close() {
    for (Process p : processes) {
      p.destroy();
    }
    for (Process p : processes) {
      try {
        if (!p.waitFor(10, TimeUnit.SECONDS)) {
          p.destroyForcibly();
        }
      } catch (InterruptedException e) {
        p.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }
}
