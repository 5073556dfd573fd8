package dev.longctx.worker.coordinator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.cuda.Backend.Availability;
import dev.longctx.engine.cuda.CudaKvRange;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.cuda.CudaProbe;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import dev.longctx.proto.shard.v1.DescribeRequest;
import dev.longctx.proto.shard.v1.ShardGrpc;
import dev.longctx.worker.coordinator.ShardedBackend.Placement;
import dev.longctx.worker.shard.ShardEngine;
import dev.longctx.worker.shard.ShardService;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The sharded serving path on GPU shards (issue 6): three shards whose request ranges live on the
 * GPU ({@link CudaModel#newRange}) behind the unchanged shard API and coordinator give, for every
 * attention method (dense, SelfExtend, indexer top-k, block top-k; the coordinator selects, the
 * shards attend; a trained indexer scored by the shards on their devices), the logits of the
 * single-process CPU engine, prefill and decode. Skips without a CUDA device; runs on the CPU
 * emulation through docs/tools/cuda-emulate/java-check.sh.
 */
class GpuShardsTest {

  static LoadedModel model;
  static CudaModel gpu;
  static final List<Server> servers = new ArrayList<>();
  static final List<ShardEngine> engines = new ArrayList<>();

  @BeforeAll
  static void load() {
    Availability a = CudaProbe.probe();
    assumeTrue(a.available(), () -> "no usable CUDA device (" + a.reason() + "); skipping");
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    gpu = CudaModel.open(model.config(), model.weights());
  }

  @AfterAll
  static void stop() {
    servers.forEach(Server::shutdownNow);
    if (gpu != null) {
      gpu.close();
    }
    if (model != null) {
      model.close();
    }
  }

  /** P in-process shards whose ranges are on the GPU (one device model shared by them). */
  static ShardedBackend gpuBackend(int p, AttentionPolicy policy, Placement placement)
      throws Exception {
    List<ShardClient> clients = new ArrayList<>();
    for (int r = 0; r < p; r++) {
      String name = "gpu-shard-" + p + "-" + r + "-" + System.nanoTime();
      ShardEngine engine =
          new ShardEngine(r, model.config(), gpu::newRange, "cuda", 1 << 20, "stories260K")
              .withIndexer(policy.lightningIndexer());
      engines.add(engine);
      servers.add(
          InProcessServerBuilder.forName(name)
              .addService(
                  io.grpc.ServerInterceptors.intercept(
                      new ShardService(engine), ShardedLongContextTest.COUNTING))
              .build()
              .start());
      ManagedChannel channel = InProcessChannelBuilder.forName(name).build();
      assertThat(
              ShardGrpc.newBlockingStub(channel)
                  .describe(DescribeRequest.getDefaultInstance())
                  .getBackend())
          .isEqualTo("cuda");
      clients.add(new ShardClient(name, channel, 60_000));
    }
    return new ShardedBackend(clients, model.config(), 1, p, policy, placement);
  }

  /**
   * A 200-token story prompt: long enough for SelfExtend's grouping (w = 64) and the top-k
   * selections (k = 96 keys, 4 blocks of 32) to take effect; short enough for the CPU emulation.
   */
  static int[] prompt() {
    String text =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the"
            + " park with her dog Max. One day, Lily saw a big red ball under a tree. ";
    return Arrays.copyOf(model.tokenizer().encodePrompt(text.repeat(20)), 200);
  }

  static Stream<Arguments> configurations() {
    return Stream.of(
        Arguments.of(AttentionPolicy.dense(), Placement.CONTIGUOUS),
        Arguments.of(ShardedLongContextTest.SELF_EXTEND, Placement.ZIGZAG),
        Arguments.of(ShardedLongContextTest.INDEXER, Placement.CONTIGUOUS),
        Arguments.of(ShardedLongContextTest.BLOCKS, Placement.ZIGZAG));
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("configurations")
  void threeGpuShardsGiveTheEnginesLogits(AttentionPolicy policy, Placement placement)
      throws Exception {
    int[] ids = prompt();
    int capacity = 240;
    Transformer transformer = model.transformer();
    Sequence seq = transformer.newSequence(capacity, policy);
    try (ShardedBackend backend = gpuBackend(3, policy, placement)) {
      SequenceRunner runner = backend.open("gpu-" + policy.name(), capacity, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(3);
      int cut = 131; // two uneven steps: the second one's queries see keys placed by the first
      float[] want = transformer.prefill(seq, Arrays.copyOf(ids, cut));
      float[] got = runner.prefill(Arrays.copyOf(ids, cut));
      assertThat(ShardedLongContextTest.maxRelativeDifference(want, got))
          .as("first chunk")
          .isLessThanOrEqualTo(1e-3);
      want = transformer.prefill(seq, Arrays.copyOfRange(ids, cut, ids.length));
      got = runner.prefill(Arrays.copyOfRange(ids, cut, ids.length));
      assertThat(ShardedLongContextTest.maxRelativeDifference(want, got))
          .as("second chunk")
          .isLessThanOrEqualTo(1e-3);
      assertDecodeStepsMatch(transformer, seq, runner, want);
      runner.close();
    }
  }

  /**
   * A trained lightning indexer (random weights) over three GPU shards: each keeps its positions'
   * indexer keys on the device and answers Score from there (ALGORITHMS.md §4.5); the coordinator
   * merges their lists. Greedy tokens and logits (to 1e-3) are the single-process CPU engine's.
   */
  @org.junit.jupiter.api.Test
  void threeGpuShardsScoreATrainedIndexerOnTheirDevices() throws Exception {
    AttentionPolicy policy =
        new AttentionPolicy.IndexerTopK(
            96, 0, new IndexerSource.ModelFile(TestModels.randomIndexer(model.config(), 12)), null);
    int[] ids = prompt();
    int capacity = 240;
    Transformer transformer = model.transformer();
    Sequence seq = transformer.newSequence(capacity, policy);
    try (ShardedBackend backend = gpuBackend(3, policy, Placement.ZIGZAG)) {
      String id = "gpu-scored";
      long scored = ShardedLongContextTest.shardCalls("Score");
      SequenceRunner runner = backend.open(id, capacity, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(3);
      float[] want = transformer.prefill(seq, ids);
      float[] got = runner.prefill(ids);
      assertThat(ShardedLongContextTest.maxRelativeDifference(want, got))
          .as("prefill")
          .isLessThanOrEqualTo(1e-3);
      assertDecodeStepsMatch(transformer, seq, runner, want);
      for (ShardEngine engine : engines.subList(engines.size() - 3, engines.size())) {
        assertThat(engine.get(id).indexes()).isTrue();
      }
      // the selection came from the shards: the prefill's two rounds and one a decode step, per
      // layer and shard
      assertThat(ShardedLongContextTest.shardCalls("Score") - scored)
          .isEqualTo((2L + 3) * 3 * model.config().layers());
      runner.close();
    }
  }

  /**
   * Three greedy decode steps from the last logits {@code want}: the runner's tokens and logits (to
   * 1e-3) are the single-process engine's.
   */
  static void assertDecodeStepsMatch(
      Transformer transformer, Sequence seq, SequenceRunner runner, float[] want) {
    for (int step = 0; step < 3; step++) {
      int token = Ops.argmax(want, 0, want.length);
      want = transformer.decode(seq, token);
      float[] got = runner.decode(token);
      assertThat(Ops.argmax(got, 0, got.length)).isEqualTo(Ops.argmax(want, 0, want.length));
      assertThat(ShardedLongContextTest.maxRelativeDifference(want, got))
          .as("decode step %d", step)
          .isLessThanOrEqualTo(1e-3);
    }
  }

  static Stream<AttentionPolicy> sparsePolicies() {
    return Stream.of(ShardedLongContextTest.INDEXER, ShardedLongContextTest.BLOCKS);
  }

  /**
   * A sparse method on one GPU shard: the shard holds the whole request, so it selects the keys
   * itself on the device (Open says so, the coordinator keeps no selector and steps the request by
   * Forward, every row's logits included), and the logits are the single-process CPU engine's.
   */
  @ParameterizedTest(name = "{0}")
  @MethodSource("sparsePolicies")
  void oneGpuShardSelectsTheKeysOnTheDevice(AttentionPolicy policy) throws Exception {
    int[] ids = prompt();
    int capacity = 240;
    int vocab = model.config().vocabSize();
    Transformer transformer = model.transformer();
    Sequence seq = transformer.newSequence(capacity, policy);
    float[] wantAll = new float[ids.length * vocab];
    transformer.forwardAll(
        seq,
        ids,
        0,
        ids.length,
        128,
        (first, rows, logits) -> System.arraycopy(logits, 0, wantAll, first * vocab, rows * vocab));
    try (ShardedBackend backend = gpuBackend(1, policy, Placement.CONTIGUOUS)) {
      String id = "gpu1-" + policy.name();
      ShardedBackend.Runner runner = (ShardedBackend.Runner) backend.open(id, capacity, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(1);
      assertThat(engines.getLast().get(id).selectsInForward()).isTrue();
      float[] got = ShardedLongContextTest.allLogitsInTwoSteps(runner, ids, 131, vocab);
      assertThat(ShardedLongContextTest.maxRelativeDifference(wantAll, got))
          .as("every row's logits")
          .isLessThanOrEqualTo(1e-3);
      float[] want = Arrays.copyOfRange(wantAll, (ids.length - 1) * vocab, ids.length * vocab);
      assertDecodeStepsMatch(transformer, seq, runner, want);
      // the selection ran on the shard: its device selector holds the request's keys
      assertThat(((CudaKvRange) engines.getLast().get(id)).selectorBytes()).isPositive();
      runner.close();
    }
  }
}
