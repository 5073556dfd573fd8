package dev.longctx.worker.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import io.grpc.Server;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Dense sequence-sharded execution through the internal shard API (shards in this JVM, in-process
 * gRPC): for P = 1..4 shards the logits equal the single-process engine's and greedy generation
 * gives the same tokens.
 */
class ShardedBackendTest {

  static LoadedModel model;
  static final List<Server> servers = new ArrayList<>();

  @BeforeAll
  static void load() {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
  }

  @AfterAll
  static void stop() {
    servers.forEach(Server::shutdownNow);
    if (model != null) {
      model.close();
    }
  }

  /** P in-process shards of stories260K, dense, contiguous (the shared builder). */
  static ShardedBackend backend(int p) throws Exception {
    ShardedBackend backend =
        ShardedLongContextTest.backend(
            model,
            p,
            dev.longctx.engine.attention.AttentionPolicy.dense(),
            ShardedBackend.Placement.CONTIGUOUS);
    // The fault test stops one of these servers: keep them in this class's list too.
    servers.addAll(
        ShardedLongContextTest.servers.subList(
            ShardedLongContextTest.servers.size() - p, ShardedLongContextTest.servers.size()));
    return backend;
  }

  static int[] prompt(int tokens) {
    String text =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the"
            + " park with her dog and her friends. ";
    int[] ids = model.tokenizer().encodePrompt(text.repeat(40));
    return Arrays.copyOf(ids, tokens);
  }

  static double maxRelativeDifference(float[] want, float[] got) {
    return ShardedLongContextTest.maxRelativeDifference(want, got);
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 3, 4})
  void shardedLogitsEqualSingleProcess(int p) throws Exception {
    int[] ids = prompt(301);
    var transformer = model.transformer();
    Sequence seq = transformer.newSequence(400);
    try (ShardedBackend backend = backend(p)) {
      SequenceRunner runner = backend.open("logits-" + p, 400, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(p);
      // Prefill in two uneven steps, then decode: every step's logits match.
      float[] want = transformer.prefill(seq, Arrays.copyOf(ids, 200));
      float[] got = runner.prefill(Arrays.copyOf(ids, 200));
      assertThat(maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);
      want = transformer.prefill(seq, Arrays.copyOfRange(ids, 200, ids.length));
      got = runner.prefill(Arrays.copyOfRange(ids, 200, ids.length));
      assertThat(maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);
      for (int step = 0; step < 30; step++) {
        int token = dev.longctx.engine.kernel.Ops.argmax(want, 0, want.length);
        want = transformer.decode(seq, token);
        got = runner.decode(token);
        assertThat(maxRelativeDifference(want, got))
            .as("decode step %d", step)
            .isLessThanOrEqualTo(1e-4);
      }
      assertThat(runner.length()).isEqualTo(seq.length());
      runner.close();
      assertThat(runner.length()).isZero();
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2})
  void aPromptChunkBeforeTheLastMovesNoLogits(int p) throws Exception {
    int[] ids = prompt(301);
    var transformer = model.transformer();
    Sequence seq = transformer.newSequence(400);
    transformer.prefill(seq, Arrays.copyOf(ids, 200));
    float[] want = transformer.prefill(seq, Arrays.copyOfRange(ids, 200, ids.length));
    try (ShardedBackend backend = backend(p)) {
      SequenceRunner runner = backend.open("skip-" + p, 400, ids.length);
      ShardTraffic.Snapshot before = ShardTraffic.snapshot();
      assertThat(runner.prefill(Arrays.copyOf(ids, 200), false)).isEmpty();
      long received = ShardTraffic.snapshot().minus(before).receivedBytes();
      // P = 1 is one Forward call that answers nothing but its status; P > 1 returns the step's
      // queries and partials per layer, and no Logits call is made.
      if (p == 1) {
        assertThat(received).isLessThan(model.config().vocabSize() * 4L);
      }
      before = ShardTraffic.snapshot();
      float[] got = runner.prefill(Arrays.copyOfRange(ids, 200, ids.length), true);
      assertThat(maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);
      // the last chunk's logits do come back (the counter sees this traffic)
      assertThat(ShardTraffic.snapshot().minus(before).receivedBytes())
          .isGreaterThanOrEqualTo(model.config().vocabSize() * 4L);
      assertThat(runner.length()).isEqualTo(seq.length());
      runner.close();
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 3, 4})
  void shardedGreedyGenerationEqualsTheEngine(int p) throws Exception {
    int[] ids = prompt(250);
    Generator.Result want =
        Generator.generate(
            model.transformer(),
            model.tokenizer(),
            new Generator.Request(ids, SamplingParams.greedy(), 120, List.of(), 512),
            t -> {});
    try (EngineLoop loop = new EngineLoop(backend(p), 1 << 20, 10_000)) {
      CompletableFuture<Generator.FinishReason> finished = new CompletableFuture<>();
      List<Integer> tokens = new ArrayList<>();
      StringBuilder text = new StringBuilder();
      int[] shardsUsed = new int[1];
      GenerationSink sink =
          new GenerationSink() {
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
              shardsUsed[0] = usage.shardsUsed();
              finished.complete(reason);
            }

            @Override
            public void onError(Throwable error) {
              finished.completeExceptionally(error);
            }
          };
      loop.submit(
          new GenerationTask(
              new GenerationTask.Spec(
                  "greedy-" + p, ids, SamplingParams.greedy(), 120, List.of(), 512),
              model.tokenizer(),
              sink));
      assertThat(finished.get(120, TimeUnit.SECONDS)).isEqualTo(want.finishReason());
      assertThat(tokens).isEqualTo(Arrays.stream(want.tokens()).boxed().toList());
      assertThat(text.toString()).isEqualTo(want.text());
      assertThat(shardsUsed[0]).isEqualTo(p);
    }
  }

  @org.junit.jupiter.api.Test
  void shardedServerStreamsTheEnginesGreedyTokensAndFreesKvOnEveryShard() throws Exception {
    int[] ids = prompt(250);
    Generator.Result want =
        Generator.generate(
            model.transformer(),
            model.tokenizer(),
            new Generator.Request(ids, SamplingParams.greedy(), 60, List.of(), 512),
            t -> {});
    ShardedBackend shards = backend(3);
    try (var server =
        dev.longctx.worker.api.ServingServer.sharded(
            model,
            "stories260K",
            0,
            shards.shards(),
            64,
            3,
            new EngineLoop.Limits(8, 10_000),
            "127.0.0.1",
            0)) {
      var channel =
          io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", server.port())
              .usePlaintext()
              .build();
      try {
        var request =
            dev.longctx.proto.v1.GenerateRequest.newBuilder()
                .setTokenIds(
                    dev.longctx.proto.v1.TokenIds.newBuilder()
                        .addAllIds(Arrays.stream(ids).boxed().toList()))
                .setMaxTokens(60)
                .setSampling(
                    dev.longctx.proto.v1.SamplingParams.newBuilder()
                        .setTemperature(0)
                        .setTopK(0)
                        .setTopP(1)
                        .setMinP(0))
                .build();
        var it =
            dev.longctx.proto.v1.InferenceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(120, TimeUnit.SECONDS)
                .generate(request);
        List<Integer> tokens = new ArrayList<>();
        dev.longctx.proto.v1.GenerateResponse last = null;
        while (it.hasNext()) {
          last = it.next();
          if (last.hasTokens()) {
            tokens.addAll(last.getTokens().getTokenIdsList());
          }
        }
        assertThat(tokens).isEqualTo(Arrays.stream(want.tokens()).boxed().toList());
        assertThat(last.getFinal().getUsage().getShardsUsed()).isEqualTo(3);
        var load =
            dev.longctx.proto.v1.AdminGrpc.newBlockingStub(channel)
                .getLoad(dev.longctx.proto.v1.GetLoadRequest.getDefaultInstance());
        assertThat(load.getShardsCount()).isEqualTo(3);
        for (var shard : load.getShardsList()) {
          assertThat(shard.getReady()).isTrue();
          assertThat(shard.getResidentTokens()).as("KV left on %s", shard.getAddress()).isZero();
          assertThat(shard.getActiveRequests()).isZero();
        }
        assertThat(load.getCapacityTokens()).isEqualTo(3L << 20);
      } finally {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  @org.junit.jupiter.api.Test
  void aShardDyingMidStreamDoesNotChangeTheGreedyTokens() throws Exception {
    int[] ids = prompt(250);
    Generator.Result want =
        Generator.generate(
            model.transformer(),
            model.tokenizer(),
            new Generator.Request(ids, SamplingParams.greedy(), 80, List.of(), 512),
            t -> {});
    int before = servers.size();
    ShardedBackend backend = backend(3);
    Server victim = servers.get(before + 1);
    try (EngineLoop loop = new EngineLoop(backend, 1 << 20, 10_000)) {
      CompletableFuture<Generator.FinishReason> finished = new CompletableFuture<>();
      List<Integer> tokens = new ArrayList<>();
      int[] shardsUsed = new int[1];
      GenerationSink sink =
          new GenerationSink() {
            @Override
            public void onPrefillProgress(int done, int total) {}

            @Override
            public void onTokens(int[] tokenIds, String t) {
              for (int id : tokenIds) {
                tokens.add(id);
              }
              if (tokens.size() == 20) {
                victim.shutdownNow(); // the next decode step finds the shard gone
              }
            }

            @Override
            public void onFinish(Generator.FinishReason reason, Usage usage) {
              shardsUsed[0] = usage.shardsUsed();
              finished.complete(reason);
            }

            @Override
            public void onError(Throwable error) {
              finished.completeExceptionally(error);
            }
          };
      loop.submit(
          new GenerationTask(
              new GenerationTask.Spec("fault", ids, SamplingParams.greedy(), 80, List.of(), 512),
              model.tokenizer(),
              sink));
      assertThat(finished.get(120, TimeUnit.SECONDS)).isEqualTo(want.finishReason());
      assertThat(tokens).isEqualTo(Arrays.stream(want.tokens()).boxed().toList());
      assertThat(victim.isShutdown()).isTrue();
      assertThat(shardsUsed[0]).isEqualTo(2);
    }
  }
}
