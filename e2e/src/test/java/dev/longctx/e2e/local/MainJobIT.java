package dev.longctx.e2e.local;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The README's main job as a user runs it: {@code longctx generate --shards N} starts N shard
 * processes and a coordinator on loopback and streams the completion over gRPC. Its text equals the
 * in-process {@code generate} of the same prompt (greedy), for dense attention, for indexer top-k
 * with SelfExtend positions past the model's trained context (zig-zag placement), and for a trained
 * lightning indexer in the model file, whose keys the shard processes index and score themselves.
 */
class MainJobIT {

  static final Path MODEL = TestData.file("models/stories260K/stories260K.bin");

  /** Runs the packaged CLI; returns its stdout (the completion), failing on a non-zero exit. */
  static String run(String... args) throws IOException, InterruptedException {
    String app = System.getProperty("longctx.app", "../worker/target/quarkus-app/quarkus-run.jar");
    Path dir = Path.of("target", "e2e-local", "main-" + System.nanoTime()).toAbsolutePath();
    Files.createDirectories(dir);
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.addAll(Arrays.asList(System.getProperty("longctx.jvmArgs", "").split("\\s+")));
    cmd.removeIf(String::isBlank);
    cmd.addAll(List.of("-Xmx384m", "-XX:+UseSerialGC", "-jar", app));
    cmd.addAll(Arrays.asList(args));
    if (Arrays.asList(args).contains("--shards")) {
      cmd.addAll(List.of("--run-dir", dir.resolve("shards").toString()));
    }
    Process p =
        new ProcessBuilder(cmd)
            .redirectOutput(dir.resolve("stdout").toFile())
            .redirectError(dir.resolve("stderr").toFile())
            .start();
    if (!p.waitFor(240, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("timed out: " + cmd);
    }
    String err = Files.readString(dir.resolve("stderr"), StandardCharsets.UTF_8);
    assertThat(p.exitValue()).as("exit of %s; stderr:%n%s", cmd, err).isZero();
    return Files.readString(dir.resolve("stdout"), StandardCharsets.UTF_8);
  }

  @Test
  void threeShardsStreamWhatOneProcessGenerates() throws Exception {
    String[] job = {
      "generate",
      "--model",
      MODEL.toString(),
      "--prompt",
      "Once upon a time",
      "--temperature",
      "0",
      "--max-tokens",
      "80"
    };
    String single = run(job);
    List<String> sharded = new ArrayList<>(Arrays.asList(job));
    sharded.addAll(List.of("--shards", "3"));
    assertThat(run(sharded.toArray(String[]::new))).isEqualTo(single);
    assertThat(single).startsWith("Once upon a time").hasSizeGreaterThan(100);
  }

  @Test
  void sparseSelfExtendPastTheTrainedContextOverTwoZigZagShards() throws Exception {
    String text =
        Files.readString(
                TestData.file("text/tinystories_train_excerpt.txt"), StandardCharsets.UTF_8)
            .substring(0, 2600); // ≈ 1270 tokens, past the 512 the model was trained on
    String[] job = {
      "generate",
      "--model",
      MODEL.toString(),
      "--prompt",
      text,
      "--temperature",
      "0",
      "--max-tokens",
      "30",
      "--attention",
      "indexer-topk",
      "--index-top-k",
      "64",
      "--group-size",
      "4",
      "--neighbor-window",
      "64"
    };
    String single = run(job);
    List<String> sharded = new ArrayList<>(Arrays.asList(job));
    sharded.addAll(List.of("--shards", "2", "--placement", "zigzag"));
    assertThat(run(sharded.toArray(String[]::new))).isEqualTo(single);
  }

  /**
   * {@code --indexer model}: {@code synth} writes a model with a (random) lightning indexer; each
   * shard process reads it from the file, keeps the indexer keys of its positions and answers the
   * coordinator's Score calls (ALGORITHMS.md §4.5).
   */
  @Test
  void aModelFilesIndexerScoredByThreeShardProcesses() throws Exception {
    Path model = Path.of("target", "e2e-local", "tiny-indexer.gguf").toAbsolutePath();
    run(
        "synth",
        "--shape",
        "tiny",
        "--type",
        "Q8_0",
        "--indexer-heads",
        "4",
        "--indexer-dim",
        "32",
        "--out",
        model.toString());
    String text =
        Files.readString(
                TestData.file("text/tinystories_train_excerpt.txt"), StandardCharsets.UTF_8)
            .substring(0, 700); // ≈ 970 byte tokens of the synthetic vocabulary
    String[] job = {
      "generate",
      "--model",
      model.toString(),
      "--prompt",
      text,
      "--temperature",
      "0",
      "--max-tokens",
      "20",
      "--attention",
      "indexer-topk",
      "--indexer",
      "model",
      "--index-top-k",
      "32"
    };
    String single = run(job);
    List<String> sharded = new ArrayList<>(Arrays.asList(job));
    sharded.addAll(List.of("--shards", "3"));
    assertThat(run(sharded.toArray(String[]::new))).isEqualTo(single);
    assertThat(single).startsWith(text);
  }

  /**
   * ALGORITHMS.md §5.3 end to end: {@code distill-indexer} trains a lightning indexer on
   * stories260K's own attention and writes it to a file; {@code generate --indexer FILE} selects
   * with it, alone and over three shard processes that read the same file and answer Score.
   */
  @Test
  void aDistilledIndexerFileSelectsAloneAndOverThreeShardProcesses() throws Exception {
    Path indexer = Path.of("target", "e2e-local", "stories260K-indexer.gguf").toAbsolutePath();
    String report =
        run(
            "distill-indexer",
            "--model",
            MODEL.toString(),
            "--file",
            TestData.file("text/tinystories_train_excerpt.txt").toString(),
            "--ctx",
            "256",
            "--windows",
            "6",
            "--held-out",
            "1",
            "--steps",
            "30",
            "--indexer-heads",
            "2",
            "--indexer-dim",
            "16",
            "--recall-k",
            "32",
            "--out",
            indexer.toString());
    assertThat(report).contains("| k | recall before | recall after | oracle |").contains("| 32 |");
    assertThat(indexer).isRegularFile();
    String prompt =
        Files.readString(
                TestData.file("text/tinystories_train_excerpt.txt"), StandardCharsets.UTF_8)
            .substring(0, 900); // ≈ 250 tokens: past k, so the indexer selects
    String[] job = {
      "generate",
      "--model",
      MODEL.toString(),
      "--prompt",
      prompt,
      "--temperature",
      "0",
      "--max-tokens",
      "24",
      "--attention",
      "indexer-topk",
      "--indexer",
      indexer.toString(),
      "--index-top-k",
      "32"
    };
    String single = run(job);
    List<String> sharded = new ArrayList<>(Arrays.asList(job));
    sharded.addAll(List.of("--shards", "3"));
    assertThat(run(sharded.toArray(String[]::new))).isEqualTo(single);
    assertThat(single).startsWith(prompt);
  }
}
