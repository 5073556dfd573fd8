package dev.longctx.worker.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.gguf.GgufTensorInfo;
import dev.longctx.engine.tensor.GgmlType;
import io.quarkus.test.junit.main.LaunchResult;
import io.quarkus.test.junit.main.QuarkusMainLauncher;
import io.quarkus.test.junit.main.QuarkusMainTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLI as a user runs it: output, exit codes, and one-line errors for bad input. */
@QuarkusMainTest
class CliTest {

  @TempDir Path tmp;

  private static String stories() {
    return TestData.file("models/stories260K/stories260K.bin").toString();
  }

  @Test
  void tokenizePrintsIdsWithBos(QuarkusMainLauncher launcher) {
    LaunchResult r = launcher.launch("tokenize", "--model", stories(), "Once upon a time");
    assertThat(r.exitCode()).isZero();
    assertThat(r.getOutput()).isEqualTo("[1, 403, 407, 261, 378]");
  }

  @Test
  void serveBenchWarmsUpThenReportsARowPerPromptLength(QuarkusMainLauncher launcher) {
    String text = TestData.file("text/tinystories_train_excerpt.txt").toString();
    LaunchResult r =
        launcher.launch(
            "serve-bench",
            "--model",
            stories(),
            "--text",
            text,
            "--shards",
            "0",
            "-p",
            "16,32",
            "-n",
            "4",
            "-r",
            "3",
            "--warmup-tokens",
            "8");
    assertThat(r.exitCode()).as(r.getErrorOutput()).isZero();
    List<String> rows = r.getOutputStream().stream().filter(l -> l.startsWith("| 0 | ")).toList();
    assertThat(rows).hasSize(2);
    assertThat(rows.get(0))
        .startsWith("| 0 | " + Runtime.getRuntime().availableProcessors() + " | 16 |");
    assertThat(rows.get(1)).contains(" | 32 | ");
    // 8 warm-up tokens in requests of the shortest prompt and 4 decode tokens: two requests
    assertThat(r.getOutput()).contains("- P = 0: 2 requests of 16 + 4 tokens, inter-token latency");

    LaunchResult bad =
        launcher.launch("serve-bench", "--model", stories(), "--text", text, "-r", "0");
    assertThat(bad.exitCode()).isNotZero();
    assertThat(bad.getErrorOutput()).contains("--repetitions must be >= 1, got 0");
  }

  @Test
  void generateStreamsTheGreedyCompletionAndReportsSpeed(QuarkusMainLauncher launcher) {
    LaunchResult r = launcher.launch(greedyStories());
    assertThat(r.exitCode()).isZero();
    assertThat(r.getOutput()).startsWith("Once upon a time, there was a little girl named Lily.");
    assertThat(r.getErrorOutput())
        .containsPattern("prefill: 5 tokens, [0-9.]+ tokens/s")
        .containsPattern("decode: 24 tokens, [0-9.]+ tokens/s");
  }

  /**
   * A top-k method on {@code --backend cuda} runs in the GPU model (keys selected on the GPU) and
   * streams the CPU's greedy text; past the GPU selection's limit it runs through an in-process GPU
   * shard (keys selected on the CPU), again the CPU's text. Needs a GPU (or the CPU emulation of
   * docs/tools/cuda-emulate/java-check.sh).
   */
  @Test
  void aTopKMethodOnCudaStreamsTheCpusGreedyText(QuarkusMainLauncher launcher) {
    assumeGpu();
    String[] greedy = {"--temperature", "0", "--max-tokens", "12"};
    LaunchResult cpu = launcher.launch(blockTopK("2", "cpu", greedy));
    LaunchResult gpu = launcher.launch(blockTopK("2", "cuda", greedy));
    assertThat(cpu.exitCode()).isZero();
    assertThat(gpu.exitCode()).as(gpu.getErrorOutput()).isZero();
    assertThat(gpu.getErrorOutput()).doesNotContain("as an in-process shard");
    assertThat(gpu.getOutput()).isEqualTo(cpu.getOutput()).startsWith("Once upon a time");
    LaunchResult cpuAll = launcher.launch(blockTopK("5000", "cpu", greedy));
    LaunchResult gpuShard = launcher.launch(blockTopK("5000", "cuda", greedy));
    assertThat(gpuShard.exitCode()).as(gpuShard.getErrorOutput()).isZero();
    assertThat(gpuShard.getErrorOutput()).contains("as an in-process shard");
    assertThat(gpuShard.getOutput()).isEqualTo(cpuAll.getOutput());
  }

  /**
   * {@code --cuda-graphs}: decode steps as CUDA graph launches stream the CPU's greedy text too;
   * bench says it ran them. Needs a GPU (or the CPU emulation).
   */
  @Test
  void cudaGraphsStreamTheCpusGreedyText(QuarkusMainLauncher launcher) {
    assumeGpu();
    LaunchResult cpu = launcher.launch(greedyStories("--backend", "cpu"));
    LaunchResult graphs = launcher.launch(greedyStories("--backend", "cuda", "--cuda-graphs"));
    assertThat(cpu.exitCode()).isZero();
    assertThat(graphs.exitCode()).as(graphs.getErrorOutput()).isZero();
    assertThat(graphs.getOutput()).isEqualTo(cpu.getOutput()).startsWith("Once upon a time");
    LaunchResult bench = launcher.launch(gpuBench(stories(), "--cuda-graphs"));
    assertThat(bench.exitCode()).as(bench.getErrorOutput()).isZero();
    assertThat(bench.getOutput())
        .containsPattern("\\(cuda, f32 KV, CUDA graphs\\) \\|.*\\| tg4 \\| [0-9.]+ ± ");
    // --profile: each test once more by kernel, the graph's launches seen one by one
    LaunchResult profiled = launcher.launch(gpuBench(stories(), "--cuda-graphs", "--profile"));
    assertThat(profiled.exitCode()).as(profiled.getErrorOutput()).isZero();
    int layers = 5; // stories260K
    assertThat(profiled.getOutput())
        .contains("pp8: device time by kernel")
        .contains("tg4: device time by kernel")
        .containsPattern("\\| kernel \\| launches / token \\| µs / token \\|")
        // per token: the layers' attention, and their stacked q/k/v, o, gate/up, down products
        // and the logits'
        .containsPattern("\\| attention\\S* \\| " + layers + " \\| [0-9.]+ \\|")
        .containsPattern("\\| matvec \\| " + (4 * layers + 1) + " \\| [0-9.]+ \\|")
        .containsPattern("\\| whole token \\| [0-9]+ \\| [0-9.]+ \\| 100 % \\|");
  }

  /**
   * {@code --int8-activations} on stories260K converted to Q8_0: greedy generation on the GPU
   * starts as with float activations (the rounding moves logits by about 1 % of their range), and
   * bench says it ran them. Needs a GPU (or the CPU emulation).
   */
  @Test
  void int8ActivationsRunAQuantizedModel(QuarkusMainLauncher launcher, @TempDir Path tmp) {
    assumeGpu();
    Path q8 = tmp.resolve("stories-q8_0.gguf");
    LaunchResult convert =
        launcher.launch("convert", "--model", stories(), "--type", "Q8_0", "-o", q8.toString());
    assertThat(convert.exitCode()).as(convert.getErrorOutput()).isZero();
    String[] generate = {
      "generate",
      "--model",
      q8.toString(),
      "--prompt",
      "Once upon a time",
      "--temperature",
      "0",
      "--max-tokens",
      "24",
      "--backend",
      "cuda"
    };
    LaunchResult plain = launcher.launch(generate);
    LaunchResult int8 = launcher.launch(append(generate, new String[] {"--int8-activations"}));
    assertThat(plain.exitCode()).as(plain.getErrorOutput()).isZero();
    assertThat(int8.exitCode()).as(int8.getErrorOutput()).isZero();
    assertThat(int8.getOutput()).startsWith(plain.getOutput().substring(0, 40));
    LaunchResult bench = launcher.launch(gpuBench(q8.toString(), "--int8-activations"));
    assertThat(bench.exitCode()).as(bench.getErrorOutput()).isZero();
    assertThat(bench.getOutput())
        .containsPattern("\\(cuda, f32 KV, int8 activations\\) \\|.*\\| tg4 \\| [0-9.]+ ± ");
  }

  /** {@code bench} of {@code model} on the GPU, pp8 and tg4 once, then extra. */
  private static String[] gpuBench(String model, String... extra) {
    return append(
        new String[] {
          "bench", "--model", model, "-p", "8", "-n", "4", "-r", "1", "--backend", "cuda"
        },
        extra);
  }

  /** {@code generate} of 24 greedy tokens of stories260K after "Once upon a time", then extra. */
  private static String[] greedyStories(String... extra) {
    return storiesPrompt(append(new String[] {"--temperature", "0", "--max-tokens", "24"}, extra));
  }

  /**
   * The in-process GPU shard of a top-k method gets a KV capacity of twice the context, checked
   * against the device memory at start as serve checks a configured capacity: a context whose KV
   * cannot fit fails with one line naming both numbers; so does a sequence (prompt + completion)
   * the GPU model itself cannot hold. More top blocks than the GPU selects itself
   * (CudaModel.supports), so the method runs through that shard wherever the GPU selects keys too.
   * Needs a GPU (or the CPU emulation).
   */
  @Test
  void aTopKMethodOnCudaWithAContextPastTheDeviceMemoryFailsAtStart(QuarkusMainLauncher launcher) {
    assumeGpu();
    LaunchResult r = launcher.launch(blockTopK("5000", "cuda", "--ctx", "1000000000"));
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(r.getErrorOutput())
        .contains("a KV cache of 2000000000 tokens needs")
        .contains("tokens fit");
    // in the GPU model itself (selection on the device): the sequence, prompt + completion
    LaunchResult model =
        launcher.launch(blockTopK("2", "cuda", "--ctx", "1000000000", "--max-tokens", "999999990"));
    assertThat(model.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(model.getErrorOutput())
        .contains("a KV cache of 999999995 tokens needs")
        .contains("tokens fit");
  }

  /**
   * An in-process server on the GPU sizes its KV admission budget by the device memory the weights
   * leave: a configured capacity that cannot fit fails at start naming both numbers. Needs a GPU
   * (or the CPU emulation).
   */
  @Test
  void anInProcessGpuServerChecksItsKvCapacityAtStart(QuarkusMainLauncher launcher) {
    assumeGpu();
    LaunchResult r =
        launcher.launch(serveStories("--backend", "cuda", "--kv-cache-tokens", "1000000000"));
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(r.getErrorOutput())
        .contains("a KV cache of 1000000000 tokens needs")
        .contains("tokens fit");
  }

  /**
   * engine.properties as the operator writes it for block top-k (attention.topK counts blocks, as
   * the CR documents) gives serve a whole block-top-k policy: the start gets past the policy and
   * fails only at the bogus placement given to stop it there.
   */
  @Test
  void serveTakesBlockTopKFromTheOperatorsProperties(QuarkusMainLauncher launcher)
      throws Exception {
    Path props = tmp.resolve("block-topk.properties");
    Files.writeString(
        props, "attention.method=block-topk\nattention.topK=4\nattention.blockSize=16\n");
    LaunchResult r =
        launcher.launch(serveStories("--config", props.toString(), "--placement", "bogus"));
    assertThat(r.exitCode()).isNotZero();
    assertThat(r.getErrorOutput())
        .contains("unknown placement 'bogus'")
        .doesNotContain("needs --block-size and --top-blocks");
  }

  /** The CR's attention.indexer reaches the engine: a model-file indexer needs a GGUF with one. */
  @Test
  void serveTakesTheIndexerSourceFromTheOperatorsProperties(QuarkusMainLauncher launcher)
      throws Exception {
    Path props = tmp.resolve("indexer-model.properties");
    Files.writeString(
        props, "attention.method=indexer-topk\nattention.topK=16\nattention.indexer=model\n");
    // (a bad placement too, failing after the attention is read, so the server never starts)
    LaunchResult r =
        launcher.launch(serveStories("--config", props.toString(), "--placement", "bogus"));
    assertThat(r.exitCode()).isNotZero();
    assertThat(r.getErrorOutput())
        .contains("--indexer model needs a GGUF model file with indexer tensors");
  }

  /** Tests that need a GPU (or the CPU emulation of docs/tools/cuda-emulate) skip without one. */
  private static void assumeGpu() {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        dev.longctx.engine.cuda.CudaProbe.probe().available(), "no CUDA device");
  }

  /** serve on stories260K with {@code more}, on an ephemeral gRPC port and no HTTP. */
  private static String[] serveStories(String... more) {
    String[] head = {"serve", "--model", stories()};
    String[] tail = {"--grpc-port", "0", "--http-port", "-1"};
    String[] out = Arrays.copyOf(head, head.length + more.length + tail.length);
    System.arraycopy(more, 0, out, head.length, more.length);
    System.arraycopy(tail, 0, out, head.length + more.length, tail.length);
    return out;
  }

  /**
   * generate on stories260K under block top-k ({@code topBlocks} blocks of 4) on {@code backend},
   * then {@code more}.
   */
  private static String[] blockTopK(String topBlocks, String backend, String... more) {
    return storiesPrompt(
        append(
            new String[] {
              "--attention",
              "block-topk",
              "--top-blocks",
              topBlocks,
              "--block-size",
              "4",
              "--backend",
              backend
            },
            more));
  }

  /** {@code generate} on stories260K after "Once upon a time", then {@code more}. */
  private static String[] storiesPrompt(String... more) {
    return append(
        new String[] {"generate", "--model", stories(), "--prompt", "Once upon a time"}, more);
  }

  private static String[] append(String[] head, String[] more) {
    String[] out = Arrays.copyOf(head, head.length + more.length);
    System.arraycopy(more, 0, out, head.length, more.length);
    return out;
  }

  @Test
  void generateJsonCarriesTextUsageAndFinishReason(QuarkusMainLauncher launcher) {
    LaunchResult r =
        launcher.launch(
            "generate",
            "--model",
            stories(),
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--max-tokens",
            "40",
            "--stop",
            "Lily",
            "--json");
    assertThat(r.exitCode()).isZero();
    assertThat(r.getOutput())
        .contains("\"text\":\", there was a little girl named \"")
        .contains("\"finish_reason\":\"stop\"")
        .contains("\"prompt_tokens\":5");
  }

  @Test
  void distillIndexerWritesAnIndexerFileAndReportsAsJson(
      QuarkusMainLauncher launcher, @TempDir Path dir) {
    Path out = dir.resolve("ix.gguf");
    LaunchResult r =
        launcher.launch(
            "distill-indexer",
            "--model",
            stories(),
            "--file",
            TestData.file("text/tinystories_train_excerpt.txt").toString(),
            "--chars",
            "20000",
            "--ctx",
            "128",
            "--windows",
            "4",
            "--held-out",
            "1",
            "--steps",
            "5",
            "--indexer-heads",
            "2",
            "--indexer-dim",
            "8",
            "--recall-k",
            "8,32",
            "--out",
            out.toString(),
            "--json");
    assertThat(r.exitCode()).as(r.getErrorOutput()).isZero();
    assertThat(r.getOutput())
        .startsWith("{\"file\":")
        .contains("\"train_windows\":4")
        .contains("\"held_out_kl_after\":")
        .contains("{\"k\":8,")
        .contains("{\"k\":32,");
    assertThat(r.getErrorOutput()).contains("step     5");
    var c = dev.longctx.engine.model.LoadedModel.load(Path.of(stories()), null);
    try (c) {
      var ix =
          dev.longctx.engine.attention.IndexerSource.IndexerFile.read(
              out, c.config().layers(), c.config().dim(), c.config().ropeTheta());
      assertThat(ix.indexer().heads()).isEqualTo(2);
      assertThat(ix.indexer().headDim()).isEqualTo(8);
    }
  }

  @Test
  void distillIndexerRefusesWindowsPastWhatItsTeacherCanRun(QuarkusMainLauncher launcher) {
    LaunchResult tooLong = distillRefused(launcher, "--ctx", "1024");
    assertThat(tooLong.getErrorOutput())
        .contains("--ctx 1024 is past the model's trained context 512")
        .contains("teach with SelfExtend");
    assertThat(distillRefused(launcher, "--group-size", "4").getErrorOutput())
        .contains("--group-size and --neighbor-window go together");
    assertThat(distillRefused(launcher, "--indexer-dim", "30", "--chars", "20000").getErrorOutput())
        .contains("multiple of 4, got 30");
  }

  /** distill-indexer on stories260K with {@code extra} options, expected to fail as bad input. */
  private static LaunchResult distillRefused(QuarkusMainLauncher launcher, String... extra) {
    List<String> args =
        new ArrayList<>(
            List.of(
                "distill-indexer",
                "--model",
                stories(),
                "--file",
                TestData.file("text/tinystories_train_excerpt.txt").toString(),
                "--out",
                "ix.gguf"));
    args.addAll(List.of(extra));
    LaunchResult r = launcher.launch(args.toArray(String[]::new));
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    return r;
  }

  @Test
  void perplexityJsonMatchesTheReferenceValue(QuarkusMainLauncher launcher) {
    LaunchResult r =
        launcher.launch(
            "perplexity",
            "--model",
            stories(),
            "--file",
            TestData.file("text/tinystories_train_excerpt.txt").toString(),
            "--chars",
            "4000",
            "--ctx",
            "512",
            "--bos",
            "--chunks",
            "1",
            "--json");
    assertThat(r.exitCode()).isZero();
    assertThat(r.getOutput())
        .containsPattern("\"perplexity\":4\\.34[56]")
        .contains("\"predictions\":511");
  }

  @Test
  void perplexityUnderSelfExtendAndSparsePoliciesReportsThePolicy(QuarkusMainLauncher launcher) {
    String text = TestData.file("text/tinystories_train_excerpt.txt").toString();
    LaunchResult se =
        launcher.launch(
            "perplexity",
            "--model",
            stories(),
            "--file",
            text,
            "--chars",
            "6000",
            "--ctx",
            "1024",
            "--bos",
            "--chunks",
            "1",
            "--json",
            "--attention",
            "self-extend",
            "--group-size",
            "4",
            "--neighbor-window",
            "128");
    assertThat(se.exitCode()).isZero();
    assertThat(se.getOutput()).contains("\"ctx\":1024").contains("SelfExtend[groupSize=4");
    LaunchResult sparse =
        launcher.launch(
            "perplexity",
            "--model",
            stories(),
            "--file",
            text,
            "--chars",
            "4000",
            "--ctx",
            "512",
            "--bos",
            "--chunks",
            "1",
            "--json",
            "--attention",
            "indexer-topk",
            "--top-k",
            "512");
    assertThat(sparse.exitCode()).isZero();
    // k ≥ every query's causal keys: the dense value.
    assertThat(sparse.getOutput()).containsPattern("\"perplexity\":4\\.34[56]");
  }

  @Test
  void attentionOptionErrorsAreOneLineNamingTheLimit(QuarkusMainLauncher launcher) {
    String text = TestData.file("text/tinystories_train_excerpt.txt").toString();
    LaunchResult tooLong =
        launcher.launch(
            "perplexity",
            "--model",
            stories(),
            "--file",
            text,
            "--ctx",
            "4096",
            "--attention",
            "self-extend",
            "--group-size",
            "4",
            "--neighbor-window",
            "128");
    assertThat(tooLong.exitCode()).isNotZero();
    assertThat(tooLong.getErrorOutput())
        .contains("4096 tokens exceed SelfExtend's maximum context 1664");
    LaunchResult misplaced =
        launcher.launch(
            "perplexity",
            "--model",
            stories(),
            "--file",
            text,
            "--attention",
            "dense",
            "--top-k",
            "8");
    assertThat(misplaced.exitCode()).isNotZero();
    assertThat(misplaced.getErrorOutput()).contains("--top-k does not apply to --attention dense");
  }

  /**
   * {@code synth --type Q4_K_M}: Q6_K for the vocabulary projection (tiny ties it to token_embd,
   * which then gets the output's type, as in llama.cpp), every attn_v and every ffn_down; Q4_K for
   * the other matrices; F32 norms. Every row of tiny is whole 256-blocks, so nothing falls back.
   * The file reads back and decodes greedily on the CPU.
   */
  @Test
  void synthQ4_K_MWritesTheMixAndDecodes(QuarkusMainLauncher launcher) {
    Path model = tmp.resolve("tiny-q4_k_m.gguf");
    LaunchResult s =
        launcher.launch(
            "synth", "--shape", "tiny", "--type", "q4_k_m", "--out", model.toString(), "--json");
    assertThat(s.exitCode()).as(s.getErrorOutput()).isZero();
    assertThat(s.getOutput())
        .contains("\"type\":\"Q4_K_M\"")
        .contains("\"matrices\":29,\"fallbacks\":0,\"fallbackTypes\":{}");
    Map<String, GgmlType> types = tensorTypes(model);
    assertThat(types).containsEntry("token_embd.weight", GgmlType.Q6_K);
    assertThat(types).doesNotContainKey("output.weight");
    assertThat(types).containsEntry("output_norm.weight", GgmlType.F32);
    for (int l = 0; l < 4; l++) {
      String p = "blk." + l + ".";
      for (String m : List.of("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up")) {
        assertThat(types).containsEntry(p + m + ".weight", GgmlType.Q4_K);
      }
      assertThat(types).containsEntry(p + "attn_v.weight", GgmlType.Q6_K);
      assertThat(types).containsEntry(p + "ffn_down.weight", GgmlType.Q6_K);
      assertThat(types).containsEntry(p + "attn_norm.weight", GgmlType.F32);
      assertThat(types).containsEntry(p + "ffn_norm.weight", GgmlType.F32);
    }
    assertThat(types).hasSize(1 + 1 + 4 * 9);
    LaunchResult g = greedyOnCpu(launcher, model);
    assertThat(g.exitCode()).as(g.getErrorOutput()).isZero();
    assertThat(g.getErrorOutput()).containsPattern("decode: [1-9][0-9]* tokens");
  }

  /**
   * tiny-qwen2's 128-wide rows are not whole K-quant blocks, so in Q4_K_M every matrix but ffn_down
   * (512-wide rows: Q6_K) falls back to Q8_0 (as llama.cpp does), token_embd included; the summary
   * and --json say how many. Biases stay F32; the model decodes on the CPU.
   */
  @Test
  void synthQ4_K_MFallsBackToQ8_0WhereRowsAreNotWholeBlocks(QuarkusMainLauncher launcher) {
    Path model = tmp.resolve("tiny-qwen2-q4_k_m.gguf");
    String[] synth = {
      "synth", "--shape", "tiny-qwen2", "--type", "Q4_K_M", "--out", model.toString()
    };
    LaunchResult json = launcher.launch(append(synth, new String[] {"--json"}));
    assertThat(json.exitCode()).as(json.getErrorOutput()).isZero();
    // 15 matrices: token_embd + 2 layers × 7; all but the 2 ffn_down fall back.
    assertThat(json.getOutput())
        .contains("\"matrices\":15,\"fallbacks\":13,\"fallbackTypes\":{\"Q8_0\":13}");
    LaunchResult text = launcher.launch(synth);
    assertThat(text.exitCode()).as(text.getErrorOutput()).isZero();
    assertThat(text.getOutput())
        .contains("Q4_K_M")
        .contains("13 of 15 matrices fell back (rows not whole blocks of their type): 13 to Q8_0");
    Map<String, GgmlType> types = tensorTypes(model);
    assertThat(types).containsEntry("token_embd.weight", GgmlType.Q8_0);
    for (int l = 0; l < 2; l++) {
      String p = "blk." + l + ".";
      for (String m : List.of("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")) {
        assertThat(types).containsEntry(p + m + ".weight", GgmlType.Q8_0);
      }
      assertThat(types).containsEntry(p + "ffn_down.weight", GgmlType.Q6_K);
      assertThat(types).containsEntry(p + "attn_q.bias", GgmlType.F32);
    }
    LaunchResult g = greedyOnCpu(launcher, model);
    assertThat(g.exitCode()).as(g.getErrorOutput()).isZero();
    assertThat(g.getErrorOutput()).containsPattern("decode: [1-9][0-9]* tokens");
  }

  private static Map<String, GgmlType> tensorTypes(Path model) {
    Map<String, GgmlType> types = new LinkedHashMap<>();
    try (GgufFile f = GgufFile.open(model)) {
      for (GgufTensorInfo t : f.tensors()) {
        types.put(t.name(), t.type());
      }
    }
    return types;
  }

  private static LaunchResult greedyOnCpu(QuarkusMainLauncher launcher, Path model) {
    return launcher.launch(
        "generate",
        "--model",
        model.toString(),
        "--prompt",
        "Once upon a time",
        "--temperature",
        "0",
        "--max-tokens",
        "6",
        "--backend",
        "cpu");
  }

  @Test
  void synthThenBenchPrintsATable(QuarkusMainLauncher launcher) {
    Path model = tmp.resolve("tiny.gguf");
    LaunchResult s =
        launcher.launch("synth", "--shape", "tiny", "--type", "Q4_0", "--out", model.toString());
    assertThat(s.exitCode()).isZero();
    assertThat(model).exists();
    LaunchResult b =
        launcher.launch(
            "bench",
            "--model",
            model.toString(),
            "-p",
            "16",
            "-n",
            "8",
            "-r",
            "1",
            "-t",
            "1",
            "--backend",
            "cpu");
    assertThat(b.exitCode()).isZero();
    assertThat(b.getOutput())
        .contains("| model | type |")
        .containsPattern("\\| tiny\\.gguf \\| Q4_0 \\|.*\\| pp16 \\| [0-9.]+ ± [0-9.]+ \\|")
        .containsPattern("\\| tg8 \\| [0-9.]+ ± [0-9.]+ \\| [0-9.]+ \\|");
    // Decode at a depth built by replicating a short real prefill, under a sparse policy.
    LaunchResult d =
        launcher.launch(
            "bench",
            "--model",
            model.toString(),
            "-p",
            "0",
            "-n",
            "4",
            "-r",
            "1",
            "-d",
            "600",
            "--depth-fill",
            "replicate",
            "--attention",
            "indexer-topk",
            "--top-k",
            "64");
    assertThat(d.exitCode()).isZero();
    assertThat(d.getOutput()).containsPattern("\\| tg4 @ d600 \\(replicated\\) \\| [0-9.]+ ± ");
    LaunchResult bad =
        launcher.launch("bench", "--model", model.toString(), "--depth-fill", "copy");
    assertThat(bad.exitCode()).isNotZero();
    assertThat(bad.getErrorOutput()).contains("--depth-fill must be prefill or replicate");
  }

  /**
   * bench on the GPU at a depth replicated on the device, under a top-k policy whose keys the GPU
   * selects. Needs a GPU (or the CPU emulation).
   */
  @Test
  void benchReplicatesADepthOnTheGpu(QuarkusMainLauncher launcher) {
    assumeGpu();
    LaunchResult d =
        launcher.launch(
            "bench",
            "--model",
            stories(),
            "-p",
            "0",
            "-n",
            "2",
            "-r",
            "1",
            "-d",
            "400",
            "--depth-fill",
            "replicate",
            "--attention",
            "indexer-topk",
            "--top-k",
            "32",
            "--backend",
            "cuda",
            "--kv-cache-type",
            "f16");
    assertThat(d.exitCode()).as(d.getErrorOutput()).isZero();
    assertThat(d.getOutput())
        .containsPattern("\\(cuda, f16 KV\\) \\|.*\\| tg2 @ d400 \\(replicated\\) \\| [0-9.]+ ± ");
  }

  /**
   * A half-precision KV cache, CUDA graphs and int8 activations are GPU options: on the CPU
   * backend, given as options or in engine.properties, they fail in a line, as unknown values do.
   */
  @Test
  void kvCacheTypeErrorsNameTheBackendAndTheAcceptedTypes(QuarkusMainLauncher launcher)
      throws IOException {
    LaunchResult cpu = launcher.launch(storiesPrompt("--backend", "cpu", "--kv-cache-type", "f16"));
    assertThat(cpu.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(cpu.getErrorOutput())
        .contains("--kv-cache-type f16 needs the cuda backend")
        .doesNotContain("Exception");
    assertThat(cpu.getOutput()).doesNotContain("Once"); // failed before the prompt's echo
    LaunchResult unknown =
        launcher.launch(
            "bench", "--model", stories(), "-p", "0", "-n", "1", "--kv-cache-type", "q8_0");
    assertThat(unknown.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(unknown.getErrorOutput()).contains("must be f32 or f16, got 'q8_0'");
    // serve reads it from engine.properties (the CR's workers.kvCacheType) too
    Path props = tmp.resolve("f16.properties");
    Files.writeString(props, "kv.cacheType=f16\nengine.backend=cpu\n");
    LaunchResult serve = launcher.launch(serveStories("--config", props.toString()));
    assertThat(serve.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(serve.getErrorOutput()).contains("kv.cacheType f16 needs the cuda backend");
    // and cuda.graphs (the CR's workers.cudaGraphs)
    Path graphsProps = tmp.resolve("graphs.properties");
    Files.writeString(graphsProps, "cuda.graphs=true\nengine.backend=cpu\n");
    LaunchResult serveGraphs = launcher.launch(serveStories("--config", graphsProps.toString()));
    assertThat(serveGraphs.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(serveGraphs.getErrorOutput()).contains("cuda.graphs needs the cuda backend");
    Files.writeString(graphsProps, "cuda.graphs=maybe\nengine.backend=cpu\n");
    LaunchResult serveBad = launcher.launch(serveStories("--config", graphsProps.toString()));
    assertThat(serveBad.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(serveBad.getErrorOutput())
        .contains("cuda.graphs must be true or false, got 'maybe'");
    LaunchResult graphs = launcher.launch(storiesPrompt("--backend", "cpu", "--cuda-graphs"));
    assertThat(graphs.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(graphs.getErrorOutput()).contains("--cuda-graphs needs the cuda backend");
    LaunchResult cpuProfile =
        launcher.launch(
            "bench", "--model", stories(), "-p", "0", "-n", "1", "--backend", "cpu", "--profile");
    assertThat(cpuProfile.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(cpuProfile.getErrorOutput()).contains("--profile needs the cuda backend");
    // and int8 activations, as an option and as cuda.int8Activations (workers.int8Activations)
    LaunchResult int8 = launcher.launch(storiesPrompt("--backend", "cpu", "--int8-activations"));
    assertThat(int8.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(int8.getErrorOutput()).contains("--int8-activations needs the cuda backend");
    Files.writeString(graphsProps, "cuda.int8Activations=true\nengine.backend=cpu\n");
    LaunchResult serveInt8 = launcher.launch(serveStories("--config", graphsProps.toString()));
    assertThat(serveInt8.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(serveInt8.getErrorOutput()).contains("cuda.int8Activations needs the cuda backend");
    Files.writeString(graphsProps, "cuda.int8Activations=yes\nengine.backend=cpu\n");
    LaunchResult serveInt8Bad = launcher.launch(serveStories("--config", graphsProps.toString()));
    assertThat(serveInt8Bad.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(serveInt8Bad.getErrorOutput())
        .contains("cuda.int8Activations must be true or false, got 'yes'");
  }

  @Test
  void benchOnCudaWithoutADeviceSaysWhy(QuarkusMainLauncher launcher) {
    org.junit.jupiter.api.Assumptions.assumeFalse(
        dev.longctx.engine.cuda.CudaProbe.probe().available(), "a CUDA device is present");
    Path model = tmp.resolve("tiny.gguf");
    assertThat(launcher.launch("synth", "--shape", "tiny", "--out", model.toString()).exitCode())
        .isZero();
    LaunchResult b =
        launcher.launch("bench", "--model", model.toString(), "-n", "2", "--backend", "cuda");
    assertThat(b.exitCode()).isNotZero();
    assertThat(b.getErrorOutput()).contains("--backend cuda was requested but");
  }

  @Test
  void serveOnCudaWithoutADeviceSaysWhyAndRejectsUnknownBackends(QuarkusMainLauncher launcher) {
    org.junit.jupiter.api.Assumptions.assumeFalse(
        dev.longctx.engine.cuda.CudaProbe.probe().available(), "a CUDA device is present");
    Path model = tmp.resolve("tiny.gguf");
    assertThat(launcher.launch("synth", "--shape", "tiny", "--out", model.toString()).exitCode())
        .isZero();
    LaunchResult cuda =
        launcher.launch(
            "serve",
            "--model",
            model.toString(),
            "--backend",
            "cuda",
            "--grpc-port",
            "0",
            "--http-port",
            "-1");
    assertThat(cuda.exitCode()).isNotZero();
    assertThat(cuda.getErrorOutput()).contains("--backend cuda was requested but");
    // a shard told to use the GPU fails the same way, before it listens
    LaunchResult shard =
        launcher.launch(
            "serve",
            "--role",
            "shard",
            "--model",
            model.toString(),
            "--backend",
            "cuda",
            "--shard-port",
            "0",
            "--http-port",
            "-1");
    assertThat(shard.exitCode()).isNotZero();
    assertThat(shard.getErrorOutput()).contains("--backend cuda was requested but");
    LaunchResult bogus =
        launcher.launch(
            "serve",
            "--model",
            model.toString(),
            "--backend",
            "tpu",
            "--grpc-port",
            "0",
            "--http-port",
            "-1");
    assertThat(bogus.exitCode()).isNotZero();
    assertThat(bogus.getErrorOutput())
        .contains("unknown backend 'tpu': expected auto, cpu or cuda");
  }

  @Test
  void truncatedGgufGivesOneLineNamingFileOffsetAndReason(QuarkusMainLauncher launcher)
      throws IOException {
    Path model = tmp.resolve("tiny.gguf");
    assertThat(launcher.launch("synth", "--shape", "tiny", "--out", model.toString()).exitCode())
        .isZero();
    byte[] bytes = Files.readAllBytes(model);
    Path cut = tmp.resolve("cut.gguf");
    Files.write(cut, Arrays.copyOf(bytes, bytes.length / 3));
    LaunchResult r = launcher.launch("generate", "--model", cut.toString(), "--prompt", "hi");
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    String err = r.getErrorOutput().strip();
    assertThat(err.lines()).hasSize(1);
    assertThat(err)
        .startsWith("longctx generate: error: " + cut)
        .contains("offset")
        .contains("truncated")
        .doesNotContain("Exception");
  }

  @Test
  void flippedMagicAndMissingFileAreOneLineErrors(QuarkusMainLauncher launcher) throws IOException {
    Path flipped = tmp.resolve("flipped.gguf");
    Files.write(flipped, new byte[] {'F', 'U', 'G', 'G', 3, 0, 0, 0, 0, 0, 0, 0});
    LaunchResult r = launcher.launch("tokenize", "--model", flipped.toString(), "x");
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(r.getErrorOutput().strip()).contains(flipped + ": offset 0").hasLineCount(1);

    Path missing = tmp.resolve("missing.bin");
    LaunchResult m = launcher.launch("tokenize", "--model", missing.toString(), "x");
    assertThat(m.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(m.getErrorOutput().strip())
        .isEqualTo("longctx tokenize: error: " + missing + ": no such file");
  }

  @Test
  void badSamplingParameterNamesTheLimit(QuarkusMainLauncher launcher) {
    LaunchResult r =
        launcher.launch("generate", "--model", stories(), "--prompt", "x", "--top-p", "1.5");
    assertThat(r.exitCode()).isEqualTo(CliSupport.EXIT_BAD_INPUT);
    assertThat(r.getErrorOutput()).contains("topP must be in (0, 1]").contains("1.5");
  }
}
