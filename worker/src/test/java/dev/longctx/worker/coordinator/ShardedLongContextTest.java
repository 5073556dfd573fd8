package dev.longctx.worker.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.worker.coordinator.ShardedBackend.Placement;
import dev.longctx.worker.shard.ShardEngine;
import dev.longctx.worker.shard.ShardService;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Sequence-sharded execution past the model's trained context (stories260K: 512 tokens): for P =
 * 1..4 shards, contiguous and zig-zag placement, dense, SelfExtend, indexer top-k (the own-heads
 * selector at the coordinator, and a model-file lightning indexer scored by the shards, both with
 * SelfExtend positions) and block top-k attention, the logits after every prompt position and after
 * each greedy decode step equal the single-process engine's under the same policy (max relative
 * difference ≤ 1e-4), and greedy generation gives the same tokens.
 */
class ShardedLongContextTest {

  /** SelfExtend G = 4, w = 64 stretches 512 trained tokens to (512 − 64)·4 + 64 = 1856. */
  static final AttentionPolicy SELF_EXTEND = new AttentionPolicy.SelfExtend(4, 64);

  static LoadedModel model;
  static final List<Server> servers = new ArrayList<>();

  /** Shard calls by method name, over every shard these tests start. */
  static final Map<String, LongAdder> SHARD_CALLS = new ConcurrentHashMap<>();

  /**
   * Indexer top-k over a lightning indexer (random weights: the real models carry none) with
   * SelfExtend positions: the shards index their keys and score every query (ALGORITHMS.md §4.5).
   */
  static AttentionPolicy modelIndexer;

  @BeforeAll
  static void load() {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    modelIndexer =
        new AttentionPolicy.IndexerTopK(
            96,
            0,
            new IndexerSource.ModelFile(TestModels.randomIndexer(model.config(), 12)),
            (AttentionPolicy.SelfExtend) SELF_EXTEND);
  }

  static long shardCalls(String method) {
    return SHARD_CALLS.computeIfAbsent(method, m -> new LongAdder()).sum();
  }

  /** Counts the calls each shard serves, by method. */
  static final ServerInterceptor COUNTING =
      new ServerInterceptor() {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
          SHARD_CALLS
              .computeIfAbsent(call.getMethodDescriptor().getBareMethodName(), m -> new LongAdder())
              .increment();
          return next.startCall(call, headers);
        }
      };

  @AfterAll
  static void stop() {
    servers.forEach(Server::shutdownNow);
    if (model != null) {
      model.close();
    }
  }

  static ShardedBackend backend(int p, AttentionPolicy policy, Placement placement)
      throws Exception {
    return backend(model, p, policy, placement);
  }

  static ShardedBackend backend(
      LoadedModel model, int p, AttentionPolicy policy, Placement placement) throws Exception {
    return backend(model, p, policy, placement, r -> null);
  }

  /**
   * P in-process shards counting their calls; shard r's service also goes through {@code
   * interceptors.apply(r)} where that is not null.
   */
  static ShardedBackend backend(
      LoadedModel model,
      int p,
      AttentionPolicy policy,
      Placement placement,
      java.util.function.IntFunction<ServerInterceptor> interceptors)
      throws Exception {
    List<ShardClient> clients = new ArrayList<>();
    for (int r = 0; r < p; r++) {
      String name = "lc-shard-" + p + "-" + r + "-" + System.nanoTime();
      ShardEngine engine =
          new ShardEngine(r, model.config(), model.weights(), 1 << 20, "stories260K")
              .withIndexer(policy.lightningIndexer());
      ServerInterceptor extra = interceptors.apply(r);
      servers.add(
          InProcessServerBuilder.forName(name)
              .addService(
                  extra == null
                      ? ServerInterceptors.intercept(new ShardService(engine), COUNTING)
                      : ServerInterceptors.intercept(new ShardService(engine), extra, COUNTING))
              .build()
              .start());
      clients.add(new ShardClient(name, InProcessChannelBuilder.forName(name).build(), 60_000));
    }
    return new ShardedBackend(clients, model.config(), 1, p, policy, placement);
  }

  /** A real story prompt of {@code tokens} tokens (the text repeats past its length). */
  static int[] prompt(int tokens) {
    String text =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the"
            + " park with her dog Max. One day, Lily saw a big red ball under a tree. ";
    int[] ids = model.tokenizer().encodePrompt(text.repeat(80));
    assertThat(ids.length).isGreaterThanOrEqualTo(tokens);
    return Arrays.copyOf(ids, tokens);
  }

  static double maxRelativeDifference(float[] want, float[] got) {
    assertThat(got).hasSameSizeAs(want);
    double scale = 0;
    for (float w : want) {
      scale = Math.max(scale, Math.abs(w));
    }
    double worst = 0;
    for (int i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(want[i] - got[i]) / scale);
    }
    return worst;
  }

  /** Indexer top-k (own-heads selector) with SelfExtend positions, k well below the prompt. */
  static final AttentionPolicy INDEXER =
      new AttentionPolicy.IndexerTopK(
          96,
          0,
          dev.longctx.engine.attention.IndexerSource.ownHeads(),
          (AttentionPolicy.SelfExtend) SELF_EXTEND);

  /** Block top-k (Quest bounds), one selection per KV head, plain positions. */
  static final AttentionPolicy BLOCKS =
      new AttentionPolicy.BlockTopK(32, 4, AttentionPolicy.BlockScore.QUEST, null);

  /**
   * Every row's logits of {@code ids} fed in two uneven steps split at {@code cut} (so the second
   * step's queries see keys placed by the first), [ids.length, vocab].
   */
  static float[] allLogitsInTwoSteps(ShardedBackend.Runner runner, int[] ids, int cut, int vocab) {
    float[] got = new float[ids.length * vocab];
    System.arraycopy(runner.prefillAllLogits(Arrays.copyOf(ids, cut)), 0, got, 0, cut * vocab);
    System.arraycopy(
        runner.prefillAllLogits(Arrays.copyOfRange(ids, cut, ids.length)),
        0,
        got,
        cut * vocab,
        (ids.length - cut) * vocab);
    return got;
  }

  static Stream<Arguments> configurations() {
    List<Arguments> out = new ArrayList<>();
    for (AttentionPolicy policy : List.of(AttentionPolicy.dense(), SELF_EXTEND, INDEXER, BLOCKS)) {
      for (Placement placement : Placement.values()) {
        for (int p = 1; p <= 4; p++) {
          out.add(Arguments.of(p, placement, policy));
        }
      }
    }
    return out.stream();
  }

  @ParameterizedTest(name = "P={0} {1} {2}")
  @MethodSource("configurations")
  void everyPositionsLogitsEqualTheEngine(int p, Placement placement, AttentionPolicy policy)
      throws Exception {
    int[] ids = prompt(900); // past the trained 512
    int capacity = 960;
    Transformer transformer = model.transformer();
    Sequence seq = transformer.newSequence(capacity, policy);
    int vocab = model.config().vocabSize();
    float[] want = new float[ids.length * vocab];
    transformer.forwardAll(
        seq,
        ids,
        0,
        ids.length,
        128,
        (first, rows, logits) -> System.arraycopy(logits, 0, want, first * vocab, rows * vocab));
    try (ShardedBackend backend = backend(p, policy, placement)) {
      ShardedBackend.Runner runner =
          (ShardedBackend.Runner) backend.open("all-" + p, capacity, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(p);
      float[] got = allLogitsInTwoSteps(runner, ids, 517, vocab);
      for (int pos = 0; pos < ids.length; pos += 37) {
        int at = pos;
        assertThat(
                maxRelativeDifference(
                    Arrays.copyOfRange(want, at * vocab, (at + 1) * vocab),
                    Arrays.copyOfRange(got, at * vocab, (at + 1) * vocab)))
            .as("position %d", at)
            .isLessThanOrEqualTo(1e-4);
      }
      assertThat(maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);
      float[] last = Arrays.copyOfRange(want, (ids.length - 1) * vocab, ids.length * vocab);
      for (int step = 0; step < 12; step++) {
        int token = Ops.argmax(last, 0, vocab);
        last = transformer.decode(seq, token);
        assertThat(maxRelativeDifference(last, runner.decode(token)))
            .as("decode step %d", step)
            .isLessThanOrEqualTo(1e-4);
      }
      assertThat(runner.length()).isEqualTo(seq.length());
      runner.close();
    }
  }

  /**
   * The shards' distributed top-k (ALGORITHMS.md §4.5) selects exactly what the coordinator selects
   * from every key (replicated index-K) given the same layer inputs, so every logit is bit for bit
   * the same, prefill and decode. (Against the single-process engine a trained indexer's selection
   * can flip at a near-tie when the layer input differs in its last bits — the engine's attention
   * and the shards' merged partials round differently — as it does for one query of this prompt
   * even on one shard selecting in Forward; greedy generation below still matches the engine.)
   */
  @ParameterizedTest(name = "P={0} {1} dense below {2}")
  @MethodSource("shardedPlacements")
  void shardScoredSelectionEqualsReplicatedIndexKeysBitForBit(
      int p, Placement placement, int denseBelow) throws Exception {
    var base = (AttentionPolicy.IndexerTopK) modelIndexer;
    AttentionPolicy policy =
        new AttentionPolicy.IndexerTopK(
            base.k(), denseBelow, base.indexer(), (AttentionPolicy.SelfExtend) SELF_EXTEND);
    int[] ids = prompt(900);
    int vocab = model.config().vocabSize();
    float[][] logits = new float[2][];
    for (int mode = 0; mode < 2; mode++) {
      boolean replicated = mode == 1;
      try (ShardedBackend backend = backend(p, policy, placement)) {
        backend.replicateIndexKeys(replicated);
        ShardedBackend.Runner runner =
            (ShardedBackend.Runner) backend.open("scored-" + p + "-" + mode, 960, ids.length);
        long scored = shardCalls("Score");
        float[] all = allLogitsInTwoSteps(runner, ids, 517, vocab);
        float[] out = Arrays.copyOf(all, all.length + 6 * vocab);
        float[] last = Arrays.copyOfRange(all, all.length - vocab, all.length);
        for (int step = 0; step < 6; step++) {
          last = runner.decode(Ops.argmax(last, 0, vocab));
          System.arraycopy(last, 0, out, all.length + step * vocab, vocab);
        }
        // Per layer and shard: two Score calls (the threshold exchange) for each of the two
        // prefill steps, none for a step whose queries all attend densely (the first, below
        // 600), one for each of the six decode steps.
        long calls = (denseBelow >= 517 ? 2 : 4) + 6;
        assertThat(shardCalls("Score") - scored)
            .as("Score calls, replicated index keys: %s", replicated)
            .isEqualTo(replicated ? 0 : calls * p * model.config().layers());
        logits[mode] = out;
        runner.close();
      }
    }
    assertThat(logits[0]).isEqualTo(logits[1]);
  }

  /**
   * A shard dying while it answers Score (mid-decode, inside a layer) does not change the stream:
   * the coordinator rebuilds the request's keys — indexer keys included — on the two shards left
   * and the greedy tokens are the engine's.
   */
  @Test
  void aShardDyingInScoreDoesNotChangeTheGreedyTokens() throws Exception {
    int[] ids = prompt(700);
    Generator.Result want =
        Generator.generate(
            model.transformer().withAttention(modelIndexer),
            model.tokenizer(),
            new Generator.Request(ids, SamplingParams.greedy(), 30, List.of(), 1856),
            t -> {});
    // Armed (≥ 0): the victim answers that many more Score calls, then dies in the next one.
    java.util.concurrent.atomic.AtomicInteger fuse =
        new java.util.concurrent.atomic.AtomicInteger(-1);
    Server[] victim = new Server[1];
    ServerInterceptor dying =
        new ServerInterceptor() {
          @Override
          public <Q, A> ServerCall.Listener<Q> interceptCall(
              ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
            if (call.getMethodDescriptor().getBareMethodName().equals("Score")
                && fuse.get() >= 0
                && fuse.getAndDecrement() == 0) {
              call.close(Status.UNAVAILABLE.withDescription("shard died"), new Metadata());
              victim[0].shutdownNow();
              return new ServerCall.Listener<>() {};
            }
            return next.startCall(call, headers);
          }
        };
    int before = servers.size();
    try (ShardedBackend backend =
        backend(model, 3, modelIndexer, Placement.ZIGZAG, r -> r == 1 ? dying : null)) {
      victim[0] = servers.get(before + 1);
      try (EngineLoop loop = new EngineLoop(backend, 1 << 20, 10_000)) {
        RecordingSink sink =
            new RecordingSink() {
              @Override
              public void onTokens(int[] tokenIds, String t) {
                super.onTokens(tokenIds, t);
                if (tokens.size() == 10) {
                  fuse.set(2); // the third Score call of a later decode step kills the shard
                }
              }
            };
        loop.submit(
            new GenerationTask(
                new GenerationTask.Spec(
                    "dies-in-score", ids, SamplingParams.greedy(), 30, List.of(), 1856),
                model.tokenizer(),
                sink));
        assertThat(sink.finished.get(120, java.util.concurrent.TimeUnit.SECONDS))
            .isEqualTo(want.finishReason());
        assertThat(sink.tokens).isEqualTo(Arrays.stream(want.tokens()).boxed().toList());
        assertThat(victim[0].isShutdown()).isTrue();
        assertThat(fuse.get()).as("the fuse burnt").isNegative();
        assertThat(sink.shardsUsed).isEqualTo(2);
      }
    }
  }

  static Stream<Arguments> shardedPlacements() {
    List<Arguments> out = new ArrayList<>();
    for (Placement placement : Placement.values()) {
      for (int p = 2; p <= 4; p++) {
        out.add(Arguments.of(p, placement, 0));
      }
    }
    out.add(Arguments.of(3, Placement.ZIGZAG, 600)); // queries below 600 attend densely
    return out.stream();
  }

  @Test
  void selfExtendGreedyGenerationPastTheTrainedContextEqualsTheEngine() throws Exception {
    assertGreedyEqualsTheEngine(SELF_EXTEND, Placement.ZIGZAG, 60);
  }

  @Test
  void indexerTopKGreedyGenerationPastTheTrainedContextEqualsTheEngine() throws Exception {
    assertGreedyEqualsTheEngine(INDEXER, Placement.CONTIGUOUS, 40);
  }

  @Test
  void shardScoredIndexerGreedyGenerationPastTheTrainedContextEqualsTheEngine() throws Exception {
    long scored = shardCalls("Score");
    assertGreedyEqualsTheEngine(modelIndexer, Placement.ZIGZAG, 40);
    assertThat(shardCalls("Score") - scored).isGreaterThan(0);
  }

  /** A 700-token prompt on 3 shards streams the engine's greedy tokens and text. */
  static void assertGreedyEqualsTheEngine(AttentionPolicy policy, Placement placement, int tokens)
      throws Exception {
    int[] ids = prompt(700);
    Generator.Result want =
        Generator.generate(
            model.transformer().withAttention(policy),
            model.tokenizer(),
            new Generator.Request(ids, SamplingParams.greedy(), tokens, List.of(), 1856),
            t -> {});
    ShardedBackend backend = backend(3, policy, placement);
    try (EngineLoop loop = new EngineLoop(backend, 1 << 20, 10_000)) {
      RecordingSink sink = new RecordingSink();
      loop.submit(
          new GenerationTask(
              new GenerationTask.Spec(
                  "greedy-" + policy.name(), ids, SamplingParams.greedy(), tokens, List.of(), 1856),
              model.tokenizer(),
              sink));
      assertThat(sink.finished.get(120, java.util.concurrent.TimeUnit.SECONDS))
          .isEqualTo(want.finishReason());
      assertThat(sink.tokens).isEqualTo(Arrays.stream(want.tokens()).boxed().toList());
      assertThat(sink.text.toString()).isEqualTo(want.text());
      assertThat(sink.shardsUsed).isEqualTo(3);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("tinyStoriesPolicies")
  void tinyStories656KLogitsEqualTheEngineOnThreeZigZagShards(AttentionPolicy policy)
      throws Exception {
    try (LoadedModel tiny = dev.longctx.engine.model.TestModels.tinyStories656K()) {
      int[] text =
          tiny.tokenizer()
              .encodePrompt(
                  "Once upon a time, there was a little girl named Lily. She loved to play"
                      + " outside in the park with her dog Max. ".repeat(60));
      int[] ids = Arrays.copyOf(text, 800); // past the trained 512
      int vocab = tiny.config().vocabSize();
      Sequence seq = tiny.transformer().newSequence(800, policy);
      float[] want = new float[ids.length * vocab];
      tiny.transformer()
          .forwardAll(
              seq,
              ids,
              0,
              ids.length,
              128,
              (first, rows, logits) ->
                  System.arraycopy(logits, 0, want, first * vocab, rows * vocab));
      try (ShardedBackend backend = backend(tiny, 3, policy, Placement.ZIGZAG)) {
        ShardedBackend.Runner runner =
            (ShardedBackend.Runner) backend.open("tiny", 800, ids.length);
        float[] got = runner.prefillAllLogits(ids);
        assertThat(maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);
        runner.close();
      }
    }
  }

  static Stream<AttentionPolicy> tinyStoriesPolicies() {
    return Stream.of(AttentionPolicy.dense(), SELF_EXTEND, INDEXER, BLOCKS);
  }

  @Test
  void zigZagGivesEveryShardTwoMirroredChunks() {
    int[][] owned = ShardedBackend.split(16, 4, Placement.ZIGZAG);
    assertThat(owned[0]).containsExactly(0, 1, 14, 15);
    assertThat(owned[1]).containsExactly(2, 3, 12, 13);
    assertThat(owned[3]).containsExactly(6, 7, 8, 9);
    // Every row exactly once, for awkward sizes too.
    for (int n : new int[] {1, 2, 7, 9, 1023}) {
      for (int p = 1; p <= 4; p++) {
        for (Placement placement : Placement.values()) {
          int[] all =
              Arrays.stream(ShardedBackend.split(n, p, placement))
                  .flatMapToInt(Arrays::stream)
                  .sorted()
                  .toArray();
          assertThat(all).as("n=%d p=%d %s", n, p, placement).hasSize(n);
          for (int i = 0; i < n; i++) {
            assertThat(all[i]).isEqualTo(i);
          }
        }
      }
    }
  }

  /** Collects a generation's stream. */
  static class RecordingSink implements GenerationSink {
    final java.util.concurrent.CompletableFuture<Generator.FinishReason> finished =
        new java.util.concurrent.CompletableFuture<>();
    final List<Integer> tokens = new ArrayList<>();
    final StringBuilder text = new StringBuilder();
    int shardsUsed;

    @Override
    public void onPrefillProgress(int done, int total) {}

    @Override
    public void onTokens(int[] tokenIds, String t) {
      for (int id : tokenIds) {
        tokens.add(id);
      }
      text.append(t);
    }

    @Override
    public void onFinish(Generator.FinishReason reason, Usage usage) {
      shardsUsed = usage.shardsUsed();
      finished.complete(reason);
    }

    @Override
    public void onError(Throwable error) {
      finished.completeExceptionally(error);
    }
  }
}
