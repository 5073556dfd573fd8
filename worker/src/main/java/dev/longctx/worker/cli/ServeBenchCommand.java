package dev.longctx.worker.cli;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tensor.Parallel;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.InferenceGrpc;
import dev.longctx.proto.v1.TokenIds;
import dev.longctx.worker.api.ServingServer;
import dev.longctx.worker.coordinator.EngineLoop.Limits;
import dev.longctx.worker.coordinator.LocalShards;
import dev.longctx.worker.coordinator.ShardClient;
import dev.longctx.worker.coordinator.ShardPool;
import dev.longctx.worker.coordinator.ShardTraffic;
import dev.longctx.worker.coordinator.ShardedBackend;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Serving latency and communication volume against prompt length and shard count: for each P (0 =
 * the engine in this process, no gRPC between coordinator and engine), a coordinator with P local
 * shard processes on loopback; for each prompt length, time to first token and inter-token latency
 * seen by a gRPC client (medians of a few requests, after a warm-up that lets the JIT compile the
 * fresh processes' decode path), and the coordinator↔shard bytes per layer of the prefill and of
 * one decode step beside the volume ALGORITHMS.md §4.6's model predicts for this protocol.
 */
@Command(
    name = "serve-bench",
    mixinStandardHelpOptions = true,
    description =
        "Time to first token, inter-token latency and shard traffic per layer against prompt"
            + " length, for P local shard processes (0 = in-process engine); prints a table.")
public class ServeBenchCommand implements Callable<Integer> {

  /** Bounds the warm-up of a run with few decode tokens (each request costs a whole prefill). */
  static final int MAX_WARMUP_REQUESTS = 16;

  @Mixin ModelOptions modelOptions;

  @Mixin AttentionOptions attentionOptions;

  @Option(
      names = "--shards",
      split = ",",
      defaultValue = "0,1,2,3",
      description = "Shard counts to test; 0 = in-process (default: ${DEFAULT-VALUE}).")
  List<Integer> shardCounts;

  @Option(
      names = {"-p", "--prompt-tokens"},
      split = ",",
      defaultValue = "256,1024,2048",
      description = "Prompt lengths in tokens (default: ${DEFAULT-VALUE}).")
  List<Integer> promptLengths;

  @Option(
      names = {"-n", "--decode-tokens"},
      defaultValue = "32",
      description = "Tokens generated per request (default: ${DEFAULT-VALUE}).")
  int decodeTokens;

  @Option(
      names = "--text",
      defaultValue = "../shared/data/text/tinystories_train_excerpt.txt",
      description = "Prompt text, repeated as needed (default: ${DEFAULT-VALUE}).")
  Path text;

  @Option(
      names = "--placement",
      defaultValue = "contiguous",
      description = "contiguous or zigzag (default: ${DEFAULT-VALUE}).")
  String placement;

  @Option(
      names = {"-r", "--repetitions"},
      defaultValue = "3",
      description =
          "Requests per row and kind (prefill only, prefill + decode); the row shows the medians"
              + " (default: ${DEFAULT-VALUE}).")
  int repetitions;

  @Option(
      names = "--warmup-tokens",
      defaultValue = "512",
      description =
          "Tokens generated for each shard count before its rows are measured, in requests of the"
              + " shortest prompt and the decode tokens (at most "
              + MAX_WARMUP_REQUESTS
              + "): the shards are fresh JVMs, and their inter-token latency settles only after a"
              + " few hundred steps have been compiled by the JIT (default: ${DEFAULT-VALUE}).")
  int warmupTokens;

  @Option(names = "--run-dir", description = "Shard logs (default: a new folder under ./runs).")
  Path runDir;

  @Option(names = "--json", description = "One JSON object per row instead of a table.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    try (LoadedModel model = modelOptions.load()) {
      LlamaConfig c = model.config();
      AttentionPolicy policy = attentionOptions.transformer(model).attentionPolicy();
      ShardedBackend.Placement split = ShardedBackend.Placement.parse(placement);
      if (repetitions < 1) {
        throw new IllegalArgumentException("--repetitions must be >= 1, got " + repetitions);
      }
      if (warmupTokens < 0) {
        throw new IllegalArgumentException("--warmup-tokens must be >= 0, got " + warmupTokens);
      }
      int longest = promptLengths.stream().mapToInt(Integer::intValue).max().orElse(1);
      int shortest = promptLengths.stream().mapToInt(Integer::intValue).min().orElse(1);
      int context = longest + decodeTokens + 1;
      policy.checkContext(context, c.contextLength());
      int[] corpus = corpus(model, longest);
      int cores = Runtime.getRuntime().availableProcessors();
      Path dir =
          runDir != null ? runDir : Path.of("runs", "serve-bench-" + System.currentTimeMillis());
      if (!json) {
        System.out.printf(
            "model %s (%s, %d layers, q %d, kv %d), attention %s, placement %s, %d cores%n%n",
            modelOptions.model.getFileName(),
            c.architecture(),
            c.layers(),
            c.queryDim(),
            c.kvDim(),
            policy.name(),
            split.name().toLowerCase(Locale.ROOT),
            cores);
        System.out.println(
            "| P | threads/shard | prompt | TTFT s | prefill tok/s | ITL ms | decode tok/s |"
                + " prefill KiB/layer | model KiB/layer | decode B/layer/token | model B |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
      }
      List<String> warmups = new ArrayList<>();
      for (int p : shardCounts) {
        int threads = p == 0 ? cores : Math.max(1, cores / p);
        LocalShards local = null;
        ServingServer server;
        if (p == 0) {
          Parallel.setThreads(threads);
          server =
              ServingServer.inProcess(
                  model,
                  "bench",
                  context,
                  4L * context,
                  Limits.queueTimeout(600_000),
                  "127.0.0.1",
                  0);
        } else {
          local =
              LocalShards.start(
                  p,
                  modelOptions.model,
                  dir.resolve("p" + p),
                  java.util.stream.Stream.concat(
                          java.util.stream.Stream.of(
                              "--kv-cache-tokens",
                              Long.toString(4L * context),
                              "--threads",
                              Integer.toString(threads)),
                          AttentionOptions.forShards(policy).stream())
                      .toList(),
                  300_000);
          List<ShardClient> clients = ShardPool.connect(local.addresses(), 600_000, 300_000);
          server =
              ServingServer.sharded(
                  model,
                  "bench",
                  context,
                  clients,
                  1,
                  p,
                  Limits.queueTimeout(600_000),
                  "127.0.0.1",
                  0,
                  policy,
                  split);
        }
        try (ServingServer s = server) {
          ManagedChannel channel =
              NettyChannelBuilder.forAddress("127.0.0.1", s.port())
                  .usePlaintext()
                  .maxInboundMessageSize(64 << 20)
                  .build();
          try {
            warmups.add(warmUp(channel, p, Arrays.copyOf(corpus, shortest)));
            for (int length : promptLengths) {
              int[] prompt = Arrays.copyOf(corpus, length);
              ShardTraffic.Snapshot before = ShardTraffic.snapshot();
              Timing prefillOnly = run(channel, prompt, 1);
              ShardTraffic.Snapshot afterPrefill = ShardTraffic.snapshot();
              Timing full = run(channel, prompt, decodeTokens);
              ShardTraffic.Snapshot afterFull = ShardTraffic.snapshot();
              long prefillBytes = afterPrefill.minus(before).totalBytes();
              long decodeBytes = afterFull.minus(afterPrefill).totalBytes() - prefillBytes;
              int steps = Math.max(1, full.tokens - 1);
              // The traffic is the same every time; the timings are medians over the repetitions.
              List<Timing> prefills = new ArrayList<>(List.of(prefillOnly));
              List<Timing> fulls = new ArrayList<>(List.of(full));
              for (int r = 1; r < repetitions; r++) {
                prefills.add(run(channel, prompt, 1));
                fulls.add(run(channel, prompt, decodeTokens));
              }
              report(
                  p,
                  threads,
                  length,
                  Timing.median(prefills),
                  Timing.median(fulls),
                  p == 0 ? 0 : prefillBytes / (double) c.layers(),
                  p == 0 ? 0 : modelBytesPerLayer(c, policy, p, 0, length),
                  p == 0 ? 0 : decodeBytes / (double) c.layers() / steps,
                  p == 0 ? 0 : modelBytesPerLayer(c, policy, p, length, 1));
            }
          } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
          }
        } finally {
          if (local != null) {
            local.close();
          }
        }
      }
      if (!json && warmupTokens > 0) {
        System.out.printf("%nWarm-up before each shard count's rows:%n");
        warmups.forEach(w -> System.out.println("- " + w));
      }
      return 0;
    }
  }

  /**
   * The protocol's bytes per layer for a step of {@code n} tokens at positions {@code start..} over
   * {@code p > 1} shards (coordinator-centred all-gather of Q with LSE partials back, ALGORITHMS.md
   * §4.6 "All-gather-Q + LSE all-to-all"): the owners get their rows' attention output and return
   * their queries (n rows each way), every shard gets all n queries and returns n partial outputs
   * and n·heads LSEs. SelfExtend doubles the queries. The last row's logits come back once per step
   * (counted here per layer). Indexer top-k adds its selection ({@link #indexerSelectionBytes}).
   * One shard alone runs the step in one call: only tokens and logits travel.
   */
  static double modelBytesPerLayer(LlamaConfig c, AttentionPolicy policy, int p, int start, int n) {
    double q = 4.0 * c.queryDim();
    double queries = policy.positions() != null ? 2 * q : q;
    double logits = 4.0 * c.vocabSize() / c.layers(); // the last row's logits, spread per layer
    if (p == 1) {
      return 4.0 * n / c.layers() + logits;
    }
    double dense = n * (q + queries) + p * n * (queries + q + 4.0 * c.heads()) + logits;
    return policy instanceof AttentionPolicy.IndexerTopK t
        ? dense + indexerSelectionBytes(c, t, p, start, n)
        : dense;
  }

  /**
   * Indexer top-k's selection bytes per layer for the step (ALGORITHMS.md §4.6, keys spread
   * evenly): every query past the dense bound sends its k positions to the shards holding them in
   * Attend. Before that, a trained indexer scored by the shards (§4.5) brings the rows' indexer
   * queries and head weights back from their owners and sends the sparse queries' to every shard;
   * each shard answers its local top-k, min(k, keys it holds) candidates of 8 bytes — or, for a
   * step of several sparse queries, the threshold exchange: sampled scores of its list (4 bytes
   * each), one threshold per query back, then only the entries above it (about k + P·k / samples in
   * all). The own-heads selector instead brings the rows' keys back (replicated index-K;
   * SelfExtend's grouped keys too).
   */
  static double indexerSelectionBytes(
      LlamaConfig c, AttentionPolicy.IndexerTopK t, int p, int start, int n) {
    LightningIndexer ix = t.lightningIndexer();
    // the rows' indexer queries and weights from their owners, or (replicated) their keys
    double indexRow = ix == null ? 0 : 4.0 * (ix.heads() * ix.headDim() + ix.heads());
    double bytes =
        ix != null ? n * indexRow : n * 4.0 * c.kvDim() * (t.positions() != null ? 2 : 1);
    // the step's queries past the dense bound: positions [from, start + n)
    int from = Math.max(start, Math.max(t.k(), t.denseBelowTokens()));
    int sparse = Math.max(0, start + n - from);
    int points = ShardedBackend.SUMMARY_POINTS;
    for (int i = from; i < start + n; i++) {
      bytes += 4.0 * t.k(); // the selected positions, each to its shard
      if (ix == null) {
        continue;
      }
      bytes += p * (indexRow + 4);
      double local = Math.min(t.k(), Math.ceil((i + 1.0) / p)); // each shard's list
      if (sparse == 1) {
        bytes += 8.0 * p * local;
      } else {
        double samples = Math.min(points, local);
        bytes +=
            p * (4.0 * samples + 4 + 4) // sampled scores, the list's size, the threshold
                + 8.0 * Math.min(p * local, t.k() + p * Math.ceil(local / samples));
      }
    }
    return bytes;
  }

  /** The first {@code tokens} tokens of the text (BOS first), the text repeated if short. */
  private int[] corpus(LoadedModel model, int tokens) throws java.io.IOException {
    String all = Files.readString(text, StandardCharsets.UTF_8);
    // About 4 characters per token in English; take a margin and cut the ids.
    String head = all.substring(0, Math.min(all.length(), 8 * tokens + 64));
    StringBuilder source = new StringBuilder(head);
    int[] ids = Prompts.encode(model.tokenizer(), source.toString(), true, false);
    while (ids.length < tokens) {
      source.append(' ').append(head);
      ids = Prompts.encode(model.tokenizer(), source.toString(), true, false);
    }
    return Arrays.copyOf(ids, tokens);
  }

  /** Client-side timings of one streamed request. */
  record Timing(double ttftSeconds, double interTokenSeconds, int tokens) {

    /** The latencies' medians over {@code runs} (the upper one of an even count). */
    static Timing median(List<Timing> runs) {
      return new Timing(
          median(runs, Timing::ttftSeconds),
          median(runs, Timing::interTokenSeconds),
          runs.getFirst().tokens());
    }

    private static double median(List<Timing> runs, ToDoubleFunction<Timing> f) {
      double[] v = runs.stream().mapToDouble(f).sorted().toArray();
      return v[v.length / 2];
    }
  }

  /**
   * Requests before the measured ones until {@link #warmupTokens} tokens were generated (or {@link
   * #MAX_WARMUP_REQUESTS} requests ran); returns how the inter-token latency settled, for the note
   * under the table (the first request of fresh shard processes runs largely interpreted: several
   * times the settled latency).
   */
  private String warmUp(ManagedChannel channel, int p, int[] prompt) {
    int requests = 0;
    int generated = 0;
    double first = 0;
    double last = 0;
    while (generated < warmupTokens && requests < MAX_WARMUP_REQUESTS) {
      Timing t = run(channel, prompt, decodeTokens);
      last = t.interTokenSeconds();
      first = requests == 0 ? last : first;
      requests++;
      generated += Math.max(1, t.tokens());
    }
    return String.format(
        Locale.ROOT,
        "P = %d: %d requests of %d + %d tokens, inter-token latency %.1f -> %.1f ms",
        p,
        requests,
        prompt.length,
        decodeTokens,
        first * 1e3,
        last * 1e3);
  }

  private static Timing run(ManagedChannel channel, int[] prompt, int maxTokens) {
    GenerateRequest request =
        GenerateRequest.newBuilder()
            .setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(prompt).boxed().toList()))
            .setMaxTokens(maxTokens)
            .setSampling(
                dev.longctx.proto.v1.SamplingParams.newBuilder()
                    .setTemperature(0)
                    .setTopK(0)
                    .setTopP(1)
                    .setMinP(0))
            .build();
    long t0 = System.nanoTime();
    long first = 0;
    long last = 0;
    int tokens = 0;
    Iterator<GenerateResponse> it =
        InferenceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(3600, TimeUnit.SECONDS)
            .generate(request);
    while (it.hasNext()) {
      GenerateResponse r = it.next();
      if (r.hasTokens() && r.getTokens().getTokenIdsCount() > 0) {
        long now = System.nanoTime();
        if (first == 0) {
          first = now;
        }
        last = now;
        tokens += r.getTokens().getTokenIdsCount();
      }
    }
    long end = System.nanoTime();
    double ttft = ((first == 0 ? end : first) - t0) / 1e9;
    double itl = tokens > 1 ? (last - first) / 1e9 / (tokens - 1) : 0;
    return new Timing(ttft, itl, tokens);
  }

  private void report(
      int p,
      int threads,
      int length,
      Timing prefill,
      Timing full,
      double prefillBytesPerLayer,
      double prefillModel,
      double decodeBytesPerLayerToken,
      double decodeModel) {
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("shards", p);
      o.put("threads_per_shard", threads);
      o.put("prompt_tokens", length);
      o.put("ttft_seconds", prefill.ttftSeconds());
      o.put("inter_token_seconds", full.interTokenSeconds());
      o.put("completion_tokens", full.tokens());
      o.put("prefill_bytes_per_layer", prefillBytesPerLayer);
      o.put("prefill_model_bytes_per_layer", prefillModel);
      o.put("decode_bytes_per_layer_token", decodeBytesPerLayerToken);
      o.put("decode_model_bytes_per_layer_token", decodeModel);
      System.out.println(JsonText.write(o));
      return;
    }
    System.out.printf(
        Locale.ROOT,
        "| %d | %d | %d | %.3f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |%n",
        p,
        threads,
        length,
        prefill.ttftSeconds(),
        length / prefill.ttftSeconds(),
        full.interTokenSeconds() * 1e3,
        full.interTokenSeconds() > 0 ? 1 / full.interTokenSeconds() : 0,
        prefillBytesPerLayer / 1024,
        prefillModel / 1024,
        decodeBytesPerLayerToken,
        decodeModel);
  }
}
