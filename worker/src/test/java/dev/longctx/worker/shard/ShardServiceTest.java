package dev.longctx.worker.shard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.TestData;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.proto.shard.v1.AdvanceRequest;
import dev.longctx.proto.shard.v1.CallTag;
import dev.longctx.proto.shard.v1.DescribeRequest;
import dev.longctx.proto.shard.v1.ForwardRequest;
import dev.longctx.proto.shard.v1.OpenRequest;
import dev.longctx.proto.shard.v1.ReleaseRequest;
import dev.longctx.proto.shard.v1.ScoreRequest;
import dev.longctx.proto.shard.v1.ShardGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The shard API's guards: epochs, unknown requests, capacity, release. */
class ShardServiceTest {

  static LoadedModel model;
  static ShardEngine engine;
  static Server server;
  static ManagedChannel channel;
  static ShardGrpc.ShardBlockingStub stub;

  @BeforeAll
  static void start() throws Exception {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    engine = new ShardEngine(7, model.config(), model.weights(), 100, "stories260K");
    server =
        InProcessServerBuilder.forName("shard-guards")
            .addService(new ShardService(engine))
            .build()
            .start();
    channel = InProcessChannelBuilder.forName("shard-guards").build();
    stub = ShardGrpc.newBlockingStub(channel);
  }

  @AfterAll
  static void stop() {
    channel.shutdownNow();
    server.shutdownNow();
    model.close();
  }

  static CallTag tag(String id, long epoch) {
    return CallTag.newBuilder().setRequestId(id).setLayer(-1).setEpoch(epoch).build();
  }

  static void assertStatus(Runnable call, Status.Code code, String message) {
    assertThatThrownBy(call::run)
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(code);
              assertThat(e.getStatus().getDescription()).contains(message);
            });
  }

  @Test
  void describesItself() {
    var d = stub.describe(DescribeRequest.getDefaultInstance());
    assertThat(d.getShardId()).isEqualTo(7);
    assertThat(d.getEpoch()).isEqualTo(engine.epoch());
    assertThat(d.getCapacityTokens()).isEqualTo(100);
    assertThat(d.getLayers()).isEqualTo(model.config().layers());
  }

  @Test
  void staleEpochIsRejected() {
    long stale = engine.epoch() + 1;
    assertStatus(
        () -> stub.open(OpenRequest.newBuilder().setTag(tag("a", stale)).setCapacity(10).build()),
        Status.Code.FAILED_PRECONDITION,
        "stale shard epoch");
  }

  @Test
  void unknownRequestIsNotFound() {
    assertStatus(
        () ->
            stub.advance(
                AdvanceRequest.newBuilder()
                    .setTag(tag("nobody", engine.epoch()).toBuilder().setLayer(0))
                    .build()),
        Status.Code.NOT_FOUND,
        "not open on shard 7");
  }

  @Test
  void capacityIsEnforcedAndReleaseFreesIt() {
    long epoch = engine.epoch();
    stub.open(OpenRequest.newBuilder().setTag(tag("big", epoch)).setCapacity(80).build());
    assertStatus(
        () ->
            stub.open(OpenRequest.newBuilder().setTag(tag("more", epoch)).setCapacity(30).build()),
        Status.Code.RESOURCE_EXHAUSTED,
        "cannot reserve 30 KV tokens");
    var logits =
        stub.forward(
            ForwardRequest.newBuilder()
                .setTag(tag("big", epoch))
                .addTokenIds(1)
                .addTokenIds(400)
                .addPositions(0)
                .addPositions(1)
                .build());
    assertThat(logits.getLogits().getShapeList())
        .containsExactly(1L, (long) model.config().vocabSize());
    assertThat(engine.residentTokens()).isEqualTo(2);
    assertThat(
            stub.release(ReleaseRequest.newBuilder().setTag(tag("big", epoch)).build())
                .getFreedTokens())
        .isEqualTo(2);
    assertThat(engine.residentTokens()).isZero();
    assertThat(engine.reservedTokens()).isZero();
    stub.open(OpenRequest.newBuilder().setTag(tag("more", epoch)).setCapacity(30).build());
    stub.release(ReleaseRequest.newBuilder().setTag(tag("more", epoch)).build());
  }

  @Test
  void aShardRefusesAnIndexerFileOtherThanTheCoordinators() {
    long epoch = engine.epoch();
    engine.withIndexer(
        new dev.longctx.engine.attention.IndexerSource.IndexerFile(
            java.nio.file.Path.of("ix.gguf"),
            dev.longctx.engine.model.TestModels.randomIndexer(model.config(), 3),
            "id-a"));
    try {
      OpenRequest.Builder sparse =
          OpenRequest.newBuilder()
              .setCapacity(8)
              .setAttentionMethod("indexer-topk")
              .setTopK(4)
              .setIndexer("file");
      assertStatus(
          () -> stub.open(sparse.clone().setTag(tag("other", epoch)).setIndexerId("id-b").build()),
          Status.Code.FAILED_PRECONDITION,
          "the request's indexer file is id-b, this shard's ix.gguf is id-a");
      assertThat(engine.reservedTokens()).isZero();
      stub.open(sparse.clone().setTag(tag("same", epoch)).setIndexerId("id-a").build());
      assertThat(engine.reservedTokens()).isEqualTo(8);
      stub.release(ReleaseRequest.newBuilder().setTag(tag("same", epoch)).build());
    } finally {
      engine.withIndexer((dev.longctx.engine.attention.IndexerSource.Trained) null);
    }
  }

  @Test
  void scoringNeedsTheModelFilesIndexer() {
    long epoch = engine.epoch();
    OpenRequest.Builder sparse =
        OpenRequest.newBuilder()
            .setCapacity(8)
            .setAttentionMethod("indexer-topk")
            .setTopK(4)
            .setIndexer("model");
    // this shard's model (stories260K) carries no lightning-indexer tensors
    assertStatus(
        () -> stub.open(sparse.clone().setTag(tag("indexed", epoch)).build()),
        Status.Code.FAILED_PRECONDITION,
        "this shard's model has none");
    // a distilled indexer's file: the shard needs to have been started with it
    assertStatus(
        () -> stub.open(sparse.clone().setIndexer("file").setTag(tag("filed", epoch)).build()),
        Status.Code.FAILED_PRECONDITION,
        "the same indexer file");
    assertThat(engine.reservedTokens()).isZero();
    stub.open(OpenRequest.newBuilder().setTag(tag("plain", epoch)).setCapacity(8).build());
    CallTag layer0 = tag("plain", epoch).toBuilder().setLayer(0).build();
    stub.advance(AdvanceRequest.newBuilder().setTag(layer0).addTokenIds(5).addPositions(0).build());
    assertStatus(
        () ->
            stub.score(ScoreRequest.newBuilder().setTag(layer0).setTopK(4).addPositions(0).build()),
        Status.Code.FAILED_PRECONDITION,
        "not opened with a trained indexer");
    assertStatus(
        () ->
            stub.advance(
                AdvanceRequest.newBuilder()
                    .setTag(tag("plain", epoch).toBuilder().setLayer(1))
                    .setAttentionOutput(
                        Tensors.f32(
                            new float[model.config().queryDim()], 1, model.config().queryDim()))
                    .setReturnIndexQueries(true)
                    .build()),
        Status.Code.FAILED_PRECONDITION,
        "not opened with a trained indexer");
    stub.release(ReleaseRequest.newBuilder().setTag(tag("plain", epoch)).build());
  }
}
