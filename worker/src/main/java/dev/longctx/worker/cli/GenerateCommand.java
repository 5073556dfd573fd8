package dev.longctx.worker.cli;

import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.engine.tokenizer.ChatMessage;
import dev.longctx.engine.tokenizer.ChatTemplate;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.TokenIds;
import dev.longctx.worker.api.ServingServer;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.LocalShards;
import dev.longctx.worker.coordinator.ShardClient;
import dev.longctx.worker.coordinator.ShardPool;
import dev.longctx.worker.coordinator.ShardedBackend;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Streams a completion of a prompt to stdout. */
@Command(
    name = "generate",
    mixinStandardHelpOptions = true,
    description =
        "Stream a completion of --prompt to stdout; a last line on stderr gives prefill and decode"
            + " tokens/s.")
public class GenerateCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Mixin AttentionOptions attentionOptions;

  @Mixin GpuOptions gpuOptions;

  @Option(
      names = {"-p", "--prompt"},
      required = true,
      description = "Prompt text.")
  String prompt;

  @Option(
      names = {"-n", "--max-tokens"},
      defaultValue = "256",
      description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
  int maxTokens;

  @Option(
      names = "--temperature",
      defaultValue = "0.8",
      description = "Sampling temperature; 0 = greedy (default: ${DEFAULT-VALUE}).")
  float temperature;

  @Option(
      names = "--top-k",
      defaultValue = "40",
      description = "Keep the k most likely tokens; 0 = off (default: ${DEFAULT-VALUE}).")
  int topK;

  @Option(
      names = "--top-p",
      defaultValue = "0.95",
      description = "Nucleus sampling mass in (0, 1]; 1 = off (default: ${DEFAULT-VALUE}).")
  float topP;

  @Option(
      names = "--min-p",
      defaultValue = "0.05",
      description =
          "Drop tokens below min-p × the top probability; 0 = off (default: ${DEFAULT-VALUE}).")
  float minP;

  @Option(
      names = "--repeat-penalty",
      defaultValue = "1.0",
      description = "Repetition penalty ≥ 1; 1 = off (default: ${DEFAULT-VALUE}).")
  float repeatPenalty;

  @Option(
      names = "--repeat-last-n",
      defaultValue = "64",
      description = "Tokens the repetition penalty looks back over (default: ${DEFAULT-VALUE}).")
  int repeatLastN;

  @Option(
      names = {"-s", "--seed"},
      description = "Random seed (default: a new one each run, printed on stderr).")
  Long seed;

  @Option(names = "--stop", description = "Stop when this string is generated (repeatable).")
  List<String> stop = new ArrayList<>();

  @Option(
      names = "--chat",
      description = "Wrap the prompt in the model's chat template as a user turn.")
  boolean chat;

  @Option(names = "--system", description = "System message for --chat.")
  String system;

  @Option(
      names = {"-c", "--ctx"},
      description = "Context limit in tokens (default: the model's trained context).")
  Integer ctx;

  @Option(
      names = "--shards",
      description =
          "Run through the serving stack instead of in this process: start N shard processes on"
              + " loopback and a coordinator here, stream the completion over gRPC, stop them"
              + " (default: 0, in-process).")
  int shards;

  @Option(
      names = "--placement",
      defaultValue = "contiguous",
      description =
          "With --shards: how each step's tokens are split over the shards, contiguous or zigzag"
              + " (default: ${DEFAULT-VALUE}).")
  String placement;

  @Option(
      names = "--min-tokens-per-shard",
      defaultValue = "1",
      description =
          "With --shards: spread the prompt over ceil(tokens / this) shards (default:"
              + " ${DEFAULT-VALUE}, every shard).")
  int minTokensPerShard;

  @Option(
      names = "--run-dir",
      description = "With --shards: where the shard logs go (default: a new folder under ./runs).")
  java.nio.file.Path runDir;

  @Option(
      names = "--json",
      description =
          "Print one JSON object (text, tokens, usage, timings) instead of streaming text.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    long actualSeed = seed != null ? seed : System.nanoTime();
    SamplingParams sampling =
        new SamplingParams(temperature, topK, topP, minP, repeatPenalty, repeatLastN, actualSeed);
    // Resolve the backend first: `--backend cuda` without a GPU fails before anything is printed.
    boolean cuda = modelOptions.backend() == dev.longctx.engine.cuda.Backend.CUDA;
    boolean auto =
        dev.longctx.engine.cuda.Backend.parse(modelOptions.backend)
            == dev.longctx.engine.cuda.Backend.AUTO;
    try (LoadedModel model = modelOptions.load()) {
      Tokenizer tok = model.tokenizer();
      int[] ids;
      if (chat) {
        List<ChatMessage> messages = new ArrayList<>();
        if (system != null) {
          messages.add(new ChatMessage("system", system));
        }
        messages.add(new ChatMessage("user", prompt));
        ids = ChatTemplate.forTokenizer(tok).encode(tok, messages);
      } else {
        ids = Prompts.encode(tok, prompt, true, false);
      }
      Transformer tr = attentionOptions.transformer(model);
      int context = ctx != null ? ctx : AttentionOptions.defaultContext(tr);
      if (shards > 0) {
        return throughShards(model, tr, ids, context, cuda);
      }
      if (cuda && !dev.longctx.engine.cuda.CudaModel.supports(tr.attentionPolicy())) {
        if (!auto) {
          // A top-k past the GPU selection's limit: the GPU keeps the KV and attends as a shard in
          // this process, the coordinator here selects the keys on the CPU (as for remote shards).
          return throughGpuShard(model, tr, ids, context);
        }
        System.err.printf(
            "longctx generate: %s attention runs on the CPU (%s; --backend cuda runs it on a GPU"
                + " shard)%n",
            tr.attentionPolicy().name(),
            dev.longctx.engine.cuda.CudaModel.unsupportedReason(tr.attentionPolicy()));
        cuda = false;
      }
      // An f16 cache on the CPU fails here, before the prompt is echoed.
      gpuOptions.resolve(
          cuda ? dev.longctx.engine.cuda.Backend.CUDA : dev.longctx.engine.cuda.Backend.CPU,
          GpuOptions.Configured.NONE);
      Generator.Request request = new Generator.Request(ids, sampling, maxTokens, stop, context);
      PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
      // Like llama.cpp and llama2.c, echo the prompt so the completion reads on from it (once the
      // model is ready to continue it).
      Runnable echo =
          () -> {
            if (!json && !chat) {
              out.print(prompt);
            }
          };
      Generator.Result r;
      if (cuda) {
        // Every policy the GPU selects for runs in the GPU model (checked before the upload).
        dev.longctx.engine.cuda.CudaModel.requireSupported(tr.attentionPolicy());
        try (var gpu = gpuOptions.openGpu(model, GpuOptions.Configured.NONE);
            var withPolicy = gpu.withAttention(tr.attentionPolicy())) {
          // The sequence (prompt + completion, at most the context) must fit in the device memory
          // the weights left: else an error now naming both numbers, not out-of-memory midway.
          long need = Math.min((long) context, (long) ids.length + maxTokens);
          gpu.tokensThatFit(tr.attentionPolicy(), need);
          echo.run();
          r = Generator.generate(withPolicy, tok, request, json ? t -> {} : out::print);
        }
      } else {
        echo.run();
        r = Generator.generate(tr, tok, request, json ? t -> {} : out::print);
      }
      if (json) {
        Map<String, Object> usage = new LinkedHashMap<>();
        usage.put("prompt_tokens", r.promptTokens());
        usage.put("completion_tokens", r.completionTokens());
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("text", r.text());
        o.put("tokens", r.tokens());
        o.put("finish_reason", r.finishReason().name().toLowerCase());
        o.put("seed", actualSeed);
        o.put("usage", usage);
        o.put("prefill_tokens_per_second", r.prefillTokensPerSecond());
        o.put("decode_tokens_per_second", r.decodeTokensPerSecond());
        out.println(JsonText.write(o));
      } else {
        out.println();
        System.err.printf(
            "prefill: %d tokens, %.2f tokens/s | decode: %d tokens, %.2f tokens/s | finish: %s | seed %d%n",
            r.promptTokens(),
            r.prefillTokensPerSecond(),
            r.completionTokens(),
            r.decodeTokensPerSecond(),
            r.finishReason().name().toLowerCase(),
            actualSeed);
      }
      return 0;
    }
  }

  /**
   * Local mode in one command (DESIGN.md §1): {@code --shards} shard processes on loopback, a
   * coordinator in this process on a free loopback port, the completion streamed over the public
   * gRPC API, then everything stopped.
   */
  private int throughShards(LoadedModel model, Transformer tr, int[] ids, int context, boolean cuda)
      throws Exception {
    if (json) {
      throw new IllegalArgumentException("--json is not available with --shards");
    }
    java.nio.file.Path dir =
        runDir != null
            ? runDir
            : java.nio.file.Path.of(
                "runs",
                "generate-"
                    + java.time.LocalDateTime.now()
                        .format(java.time.format.DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
    int perShardThreads =
        modelOptions.threads != null
            ? modelOptions.threads
            : Math.max(1, Runtime.getRuntime().availableProcessors() / shards);
    List<String> extra =
        new ArrayList<>(
            List.of(
                "--kv-cache-tokens",
                Long.toString(2L * context),
                "--threads",
                Integer.toString(perShardThreads)));
    if (modelOptions.tokenizer != null) {
      extra.addAll(List.of("--tokenizer", modelOptions.tokenizer.toString()));
    }
    // The shards compute on the backend chosen here (resolved already, so `cuda` without a GPU
    // has failed before any process starts); the coordinator in this process computes no layers.
    dev.longctx.engine.cuda.Backend backend =
        cuda ? dev.longctx.engine.cuda.Backend.CUDA : dev.longctx.engine.cuda.Backend.CPU;
    extra.addAll(List.of("--backend", cuda ? "cuda" : "cpu"));
    extra.addAll(gpuOptions.forShards(backend, GpuOptions.Configured.NONE));
    extra.addAll(AttentionOptions.forShards(tr.attentionPolicy()));
    System.err.printf("longctx generate: starting %d shard processes (logs in %s)%n", shards, dir);
    try (LocalShards local = LocalShards.start(shards, modelOptions.model, dir, extra, 300_000)) {
      return streamThrough(model, tr, ids, context, local.addresses());
    }
  }

  /**
   * A top-k method past the GPU selection's limit on {@code --backend cuda}: one shard in this
   * process whose request ranges live on the GPU, behind a loopback shard API, with the coordinator
   * (key selection on the CPU) here.
   */
  private int throughGpuShard(LoadedModel model, Transformer tr, int[] ids, int context)
      throws Exception {
    if (json) {
      throw new IllegalArgumentException(
          "--json is not available for "
              + tr.attentionPolicy().name()
              + " attention on --backend cuda (it runs through a GPU shard)");
    }
    String fingerprint = dev.longctx.worker.shard.ShardEngine.modelFingerprint(modelOptions.model);
    try (var gpu = gpuOptions.openGpu(model, GpuOptions.Configured.NONE)) {
      // Room for twice the context in the device memory the weights left, checked as serve
      // checks a configured --kv-cache-tokens: else an error now naming both numbers.
      var engine =
          dev.longctx.worker.shard.ShardEngine.cuda(
                  0, gpu, tr.attentionPolicy(), 2L * context, fingerprint)
              .withIndexer(AttentionOptions.indexerFor(tr.attentionPolicy(), model));
      var shard = dev.longctx.worker.shard.ShardServer.start("127.0.0.1", 0, engine);
      try {
        System.err.printf(
            "longctx generate: %s attention on %s as an in-process shard; keys are selected on"
                + " the CPU%n",
            tr.attentionPolicy().name(), engine.backend());
        return streamThrough(model, tr, ids, context, List.of("127.0.0.1:" + shard.port()));
      } finally {
        shard.shutdown(10);
      }
    }
  }

  /** The completion streamed over the public gRPC API of a coordinator here over the shards. */
  private int streamThrough(
      LoadedModel model, Transformer tr, int[] ids, int context, List<String> addresses)
      throws Exception {
    ShardedBackend.Placement split = ShardedBackend.Placement.parse(placement);
    List<ShardClient> clients = ShardPool.connect(addresses, 120_000, 300_000);
    try (ServingServer server =
        ServingServer.sharded(
            model,
            modelOptions.model.getFileName().toString(),
            context,
            clients,
            minTokensPerShard,
            addresses.size(),
            EngineLoop.Limits.queueTimeout(60_000),
            "127.0.0.1",
            0,
            tr.attentionPolicy(),
            split)) {
      dev.longctx.proto.v1.SamplingParams.Builder sampling =
          dev.longctx.proto.v1.SamplingParams.newBuilder()
              .setTemperature(temperature)
              .setTopK(topK)
              .setTopP(topP)
              .setMinP(minP)
              .setRepetitionPenalty(repeatPenalty)
              .setRepetitionLastN(repeatLastN);
      if (seed != null) {
        sampling.setSeed(seed);
      }
      GenerateRequest request =
          GenerateRequest.newBuilder()
              .setTokenIds(
                  TokenIds.newBuilder().addAllIds(java.util.Arrays.stream(ids).boxed().toList()))
              .setSampling(sampling)
              .setMaxTokens(Math.min(maxTokens, context - ids.length))
              .addAllStop(stop)
              .build();
      PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
      return GrpcStream.stream(
          "127.0.0.1:" + server.port(), request, chat ? null : prompt, out, 3600);
    }
  }
}
