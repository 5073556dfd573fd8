package dev.longctx.worker.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.TestData;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.sampling.SamplingParams;
import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.AttentionOverride;
import dev.longctx.proto.v1.FinishReason;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.GetLoadRequest;
import dev.longctx.proto.v1.GetModelInfoRequest;
import dev.longctx.proto.v1.InferenceGrpc;
import dev.longctx.proto.v1.Load;
import dev.longctx.proto.v1.ModelInfo;
import dev.longctx.proto.v1.TokenIds;
import dev.longctx.proto.v1.TokenizeRequest;
import dev.longctx.worker.coordinator.EngineLoop;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The coordinator with the in-process engine, over real gRPC on a loopback port: streamed greedy
 * output equals the engine's own {@link Generator}, every bad request gets INVALID_ARGUMENT naming
 * its limit, load and cancellation are accounted.
 */
class ServingServerTest {

  static final long CAPACITY = 4096;
  static LoadedModel model;
  static ServingServer server;
  static ManagedChannel channel;
  static InferenceGrpc.InferenceBlockingStub inference;

  @BeforeAll
  static void start() throws Exception {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    server =
        ServingServer.inProcess(
            model, "stories260K", 0, CAPACITY, new EngineLoop.Limits(64, 2000), "127.0.0.1", 0);
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    inference = InferenceGrpc.newBlockingStub(channel).withDeadlineAfter(120, TimeUnit.SECONDS);
  }

  @AfterAll
  static void stop() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (server != null) {
      server.close();
    }
    if (model != null) {
      model.close();
    }
  }

  record Streamed(List<Integer> tokens, String text, GenerateResponse last) {}

  static Streamed stream(GenerateRequest request) {
    Iterator<GenerateResponse> it = inference.generate(request);
    List<Integer> tokens = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    GenerateResponse last = null;
    while (it.hasNext()) {
      last = it.next();
      if (last.hasTokens()) {
        tokens.addAll(last.getTokens().getTokenIdsList());
        text.append(last.getTokens().getText());
      }
    }
    return new Streamed(tokens, text.toString(), last);
  }

  static GenerateRequest greedy(String prompt, int maxTokens, String... stop) {
    return GenerateRequest.newBuilder()
        .setPrompt(prompt)
        .setMaxTokens(maxTokens)
        .addAllStop(List.of(stop))
        .setSampling(
            dev.longctx.proto.v1.SamplingParams.newBuilder()
                .setTemperature(0)
                .setTopK(0)
                .setTopP(1)
                .setMinP(0))
        .build();
  }

  static Generator.Result reference(String prompt, int maxTokens, String... stop) {
    int[] ids = model.tokenizer().encodePrompt(prompt);
    return Generator.generate(
        model.transformer(),
        model.tokenizer(),
        new Generator.Request(
            ids, SamplingParams.greedy(), maxTokens, List.of(stop), model.config().contextLength()),
        t -> {});
  }

  static List<Integer> boxed(int[] a) {
    List<Integer> l = new ArrayList<>();
    for (int x : a) {
      l.add(x);
    }
    return l;
  }

  @Test
  void greedyStreamEqualsTheEnginesOwnGreedyOutput() {
    String prompt = "Once upon a time";
    Generator.Result want = reference(prompt, 80);
    Streamed got = stream(greedy(prompt, 80).toBuilder().setRequestId("greedy-1").build());

    assertThat(got.tokens()).isEqualTo(boxed(want.tokens()));
    assertThat(got.text()).isEqualTo(want.text());
    assertThat(got.last().getRequestId()).isEqualTo("greedy-1");
    assertThat(got.last().hasFinal()).isTrue();
    var usage = got.last().getFinal().getUsage();
    assertThat(usage.getPromptTokens()).isEqualTo(model.tokenizer().encodePrompt(prompt).length);
    assertThat(usage.getCompletionTokens()).isEqualTo(want.tokens().length);
    assertThat(usage.getShardsUsed()).isEqualTo(1);
    assertThat(usage.getTimeToFirstTokenSeconds()).isPositive();
    assertThat(got.last().getFinal().getFinishReason())
        .isEqualTo(InferenceService.finishReason(want.finishReason()));
  }

  @Test
  void stopStringEndsTheStreamLikeTheEngine() {
    String prompt = "Once upon a time";
    Generator.Result want = reference(prompt, 80, "Lily");
    Streamed got = stream(greedy(prompt, 80, "Lily"));
    assertThat(want.finishReason()).isEqualTo(Generator.FinishReason.STOP);
    assertThat(got.tokens()).isEqualTo(boxed(want.tokens()));
    assertThat(got.text()).isEqualTo(want.text()).doesNotContain("Lily");
    assertThat(got.last().getFinal().getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_STOP);
  }

  @Test
  void concurrentStreamsAreNeitherLostNorMixedUp() throws Exception {
    String[] prompts = {
      "Once upon a time",
      "The little dog",
      "Tom and Sue went",
      "One day, a bird",
      "The sun was",
      "Lily had a red",
      "There was a big",
      "Ben liked to"
    };
    ExecutorService pool = Executors.newFixedThreadPool(prompts.length);
    try {
      List<Future<Streamed>> futures = new ArrayList<>();
      for (String p : prompts) {
        futures.add(pool.submit(() -> stream(greedy(p, 50))));
      }
      for (int i = 0; i < prompts.length; i++) {
        Generator.Result want = reference(prompts[i], 50);
        Streamed got = futures.get(i).get(120, TimeUnit.SECONDS);
        assertThat(got.tokens()).as(prompts[i]).isEqualTo(boxed(want.tokens()));
        assertThat(got.text()).as(prompts[i]).isEqualTo(want.text());
      }
    } finally {
      pool.shutdownNow();
    }
  }

  static void assertInvalid(GenerateRequest request, String... messageParts) {
    assertThatThrownBy(() -> stream(request))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription()).contains(messageParts);
            });
  }

  static GenerateRequest withSampling(
      Consumer<dev.longctx.proto.v1.SamplingParams.Builder> change) {
    GenerateRequest.Builder b = greedy("Once upon a time", 5).toBuilder();
    change.accept(b.getSamplingBuilder());
    return b.build();
  }

  @Test
  void emptyPromptIsInvalid() {
    assertInvalid(GenerateRequest.newBuilder().setPrompt("").build(), "prompt is empty");
    assertInvalid(GenerateRequest.newBuilder().build(), "prompt is empty");
    assertInvalid(
        GenerateRequest.newBuilder().setTokenIds(TokenIds.getDefaultInstance()).build(),
        "prompt is empty");
  }

  @Test
  void promptOverTheContextIsInvalidAndNamesTheLimit() {
    String longPrompt = "Once upon a time there was a little girl. ".repeat(100);
    assertInvalid(greedy(longPrompt, 5), "context limit of 512 tokens");
    GenerateRequest.Builder ids = GenerateRequest.newBuilder().setMaxTokens(1);
    for (int i = 0; i < 513; i++) {
      ids.getTokenIdsBuilder().addIds(1);
    }
    assertInvalid(ids.build(), "513 tokens", "context limit of 512 tokens");
  }

  @Test
  void maxTokensBelowOneIsInvalid() {
    assertInvalid(greedy("Once", 0), "max_tokens must be >= 1", "got 0");
    assertInvalid(greedy("Once", -3), "max_tokens must be >= 1", "got -3");
  }

  @Test
  void negativeTemperatureIsInvalid() {
    assertInvalid(withSampling(s -> s.setTemperature(-0.5f)), "temperature must be >= 0", "-0.5");
  }

  @Test
  void topPOutsideZeroOneIsInvalid() {
    assertInvalid(withSampling(s -> s.setTopP(0f)), "top_p must be in (0, 1]", "got 0.0");
    assertInvalid(withSampling(s -> s.setTopP(1.5f)), "top_p must be in (0, 1]", "got 1.5");
    assertInvalid(withSampling(s -> s.setTopP(-1f)), "top_p must be in (0, 1]");
  }

  @Test
  void unknownAttentionMethodIsInvalid() {
    GenerateRequest r =
        greedy("Once", 5).toBuilder()
            .setAttention(AttentionOverride.newBuilder().setMethod("ring-magic"))
            .build();
    assertInvalid(r, "attention.method \"ring-magic\" is unknown", "available: dense");
  }

  @Test
  void tokenIdOutsideTheVocabularyIsInvalid() {
    GenerateRequest r =
        GenerateRequest.newBuilder()
            .setTokenIds(TokenIds.newBuilder().addIds(1).addIds(100_000))
            .build();
    assertInvalid(r, "token id 100000 is outside the vocabulary [0, 512)");
  }

  @Test
  void tokenizeAndModelInfo() {
    var t = inference.tokenize(TokenizeRequest.newBuilder().setText("Once upon a time").build());
    assertThat(t.getTokenIdsList())
        .isEqualTo(boxed(model.tokenizer().encodePrompt("Once upon a time")));
    assertThat(t.getPiecesCount()).isEqualTo(t.getTokenIdsCount());
    ModelInfo info = inference.getModelInfo(GetModelInfoRequest.getDefaultInstance());
    assertThat(info.getArchitecture()).isEqualTo(model.config().architecture());
    assertThat(info.getTrainedContext()).isEqualTo(512);
    assertThat(info.getExtendedContext()).isEqualTo(512);
    assertThat(info.getVocabSize()).isEqualTo(512);
    assertThat(info.getAttentionMethodsList()).containsExactly("dense");
  }

  @Test
  void standardHealthServiceReportsServing() {
    var health = HealthGrpc.newBlockingStub(channel);
    assertThat(health.check(HealthCheckRequest.getDefaultInstance()).getStatus())
        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    assertThat(
            health
                .check(
                    HealthCheckRequest.newBuilder().setService(InferenceGrpc.SERVICE_NAME).build())
                .getStatus())
        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
  }

  @Test
  void cancelledStreamFreesItsKvAndLoadIsReported() throws Exception {
    var async = InferenceGrpc.newStub(channel);
    var cancellable = io.grpc.Context.current().withCancellation();
    var firstToken = new java.util.concurrent.CountDownLatch(1);
    cancellable.run(
        () ->
            async.generate(
                greedy("Once upon a time", 400),
                new io.grpc.stub.StreamObserver<>() {
                  @Override
                  public void onNext(GenerateResponse r) {
                    firstToken.countDown();
                  }

                  @Override
                  public void onError(Throwable t) {}

                  @Override
                  public void onCompleted() {}
                }));
    assertThat(firstToken.await(60, TimeUnit.SECONDS)).isTrue();
    cancellable.cancel(null);

    var admin = AdminGrpc.newBlockingStub(channel);
    Load load = null;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (System.nanoTime() < deadline) {
      load = admin.getLoad(GetLoadRequest.getDefaultInstance());
      if (load.getActiveRequests() == 0 && load.getResidentTokens() == 0) {
        break;
      }
      Thread.sleep(20);
    }
    assertThat(load.getActiveRequests()).isZero();
    assertThat(load.getResidentTokens()).isZero();
    assertThat(load.getQueuedTokens()).isZero();
    assertThat(load.getCapacityTokens()).isEqualTo(CAPACITY);
    assertThat(load.getShardsCount()).isEqualTo(1);
    assertThat(load.getShards(0).getCapacityTokens()).isEqualTo(CAPACITY);
    assertThat(load.getShards(0).getReady()).isTrue();
  }

  @Test
  void requestLargerThanThePoolIsResourceExhausted() throws Exception {
    try (ServingServer small =
        ServingServer.inProcess(
            model, "small", 0, 100, new EngineLoop.Limits(64, 500), "127.0.0.1", 0)) {
      ManagedChannel ch =
          NettyChannelBuilder.forAddress("127.0.0.1", small.port()).usePlaintext().build();
      try {
        var stub = InferenceGrpc.newBlockingStub(ch).withDeadlineAfter(60, TimeUnit.SECONDS);
        assertThatThrownBy(() -> stub.generate(greedy("Once upon a time", 200)).hasNext())
            .isInstanceOfSatisfying(
                StatusRuntimeException.class,
                e -> {
                  assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                  assertThat(e.getStatus().getDescription()).contains("capacity of 100 tokens");
                });
        // A request that fits is served.
        Iterator<GenerateResponse> ok = stub.generate(greedy("Once upon a time", 20));
        GenerateResponse last = null;
        while (ok.hasNext()) {
          last = ok.next();
        }
        assertThat(last.getFinal().getUsage().getCompletionTokens()).isPositive();
      } finally {
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }
}
