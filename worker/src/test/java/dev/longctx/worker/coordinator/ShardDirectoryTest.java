package dev.longctx.worker.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.worker.shard.ShardEngine;
import dev.longctx.worker.shard.ShardService;
import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The coordinator follows the pool as it scales (the autoscaler adds and removes worker pods):
 * shards that appear in the lookup are admitted (when they serve the same model) and used by new
 * requests; shards that disappear get no new requests, and a request running on them is rebuilt on
 * the shards left with the same logits.
 */
class ShardDirectoryTest {

  static LoadedModel model;
  static final List<Server> servers = new ArrayList<>();
  static final Map<String, ShardEngine> engines = new HashMap<>();

  @BeforeAll
  static void start() throws Exception {
    model = LoadedModel.load(TestData.file("models/stories260K/stories260K.bin"), null);
    String tag = Long.toString(System.nanoTime());
    int id = 0;
    for (String name : List.of("a", "b", "c", "other-model")) {
      ShardEngine engine =
          new ShardEngine(
              id++,
              model.config(),
              model.weights(),
              1 << 16,
              name.equals("other-model") ? "another.gguf:1" : "stories260K");
      engines.put(name, engine);
      servers.add(
          InProcessServerBuilder.forName(name + tag)
              .addService(new ShardService(engine))
              .build()
              .start());
    }
    suffix = tag;
  }

  static String suffix;

  @AfterAll
  static void stop() {
    servers.forEach(Server::shutdownNow);
    if (model != null) {
      model.close();
    }
  }

  static ShardClient connect(String address) {
    return new ShardClient(address, InProcessChannelBuilder.forName(address).build(), 60_000);
  }

  static List<String> addresses(String... names) {
    return Arrays.stream(names).map(n -> n + suffix).toList();
  }

  @Test
  void newShardsAreUsedAndDepartedOnesLeaveWithoutChangingResults() {
    AtomicReference<List<String>> lookup = new AtomicReference<>(addresses("a"));
    ShardClient first = connect(lookup.get().getFirst());
    first.describe();
    ShardDirectory directory =
        ShardDirectory.resolving(List.of(first), lookup::get, ShardDirectoryTest::connect, 0);
    try (ShardedBackend backend =
        new ShardedBackend(
            directory,
            model.config(),
            1,
            8,
            AttentionPolicy.dense(),
            ShardedBackend.Placement.CONTIGUOUS)) {
      int[] ids = model.tokenizer().encodePrompt("Once upon a time, there was a dog. ".repeat(8));
      assertThat(backend.open("before", 200, ids.length).shardsUsed()).isEqualTo(1);

      // Scale up: b and c appear; a shard of another model does not get in.
      lookup.set(addresses("a", "b", "c", "other-model"));
      ShardDirectory.Change up = directory.refresh();
      assertThat(up.added()).containsExactlyElementsOf(addresses("b", "c"));
      assertThat(up.removed()).isEmpty();
      assertThat(backend.shardCount()).isEqualTo(3);
      assertThat(directory.capacityTokens()).isEqualTo(3L << 16);

      Transformer transformer = model.transformer();
      Sequence seq = transformer.newSequence(200);
      SequenceRunner runner = backend.open("spread", 200, ids.length);
      assertThat(runner.shardsUsed()).isEqualTo(3);
      float[] want = transformer.prefill(seq, ids);
      float[] got = runner.prefill(ids);
      assertThat(ShardedBackendTest.maxRelativeDifference(want, got)).isLessThanOrEqualTo(1e-4);

      // Scale down to c: a and b leave placement and their channels close (grace 0), so the
      // running request loses two shards mid-stream and is rebuilt on c.
      lookup.set(addresses("c"));
      ShardDirectory.Change down = directory.refresh();
      assertThat(down.removed()).containsExactlyInAnyOrderElementsOf(addresses("a", "b"));
      assertThat(backend.shards()).extracting(ShardClient::address).containsExactly("c" + suffix);
      for (int step = 0; step < 8; step++) {
        int token = Ops.argmax(want, 0, want.length);
        want = transformer.decode(seq, token);
        got = runner.decode(token);
        assertThat(ShardedBackendTest.maxRelativeDifference(want, got))
            .as("decode step %d after the scale-down", step)
            .isLessThanOrEqualTo(1e-4);
      }
      assertThat(runner.shardsUsed()).isEqualTo(1);
      long cBefore = engines.get("c").activeRequests();
      SequenceRunner after = backend.open("after", 200, ids.length);
      assertThat(after.shardsUsed()).isEqualTo(1);
      assertThat(engines.get("c").activeRequests()).isEqualTo(cBefore + 1);

      // A lookup that answers nothing (DNS hiccup) is not a pool of zero.
      lookup.set(List.of());
      assertThat(directory.refresh().isEmpty()).isTrue();
      assertThat(backend.shardCount()).isEqualTo(1);
      runner.close();
      after.close();
    }
  }

  @Test
  void requestsGoToTheShardsWithTheMostFreeKv() {
    List<ShardClient> clients =
        addresses("a", "b", "c").stream().map(ShardDirectoryTest::connect).toList();
    clients.forEach(ShardClient::describe);
    try (ShardedBackend backend =
        new ShardedBackend(
            clients,
            model.config(),
            1 << 20, // every prompt fits one shard
            1,
            AttentionPolicy.dense(),
            ShardedBackend.Placement.CONTIGUOUS)) {
      Map<String, Long> before = new HashMap<>();
      engines.forEach((name, e) -> before.put(name, e.reservedTokens()));
      SequenceRunner big = backend.open("big", 50_000, 10);
      String bigOn = newlyReserved(before, 50_000);
      // The next requests avoid the shard holding the big one, whatever the rotation says.
      List<SequenceRunner> small = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        engines.forEach((name, e) -> before.put(name, e.reservedTokens()));
        small.add(backend.open("small-" + i, 100, 10));
        assertThat(newlyReserved(before, 100)).as("small request %d", i).isNotEqualTo(bigOn);
      }
      big.close();
      small.forEach(SequenceRunner::close);
    }
  }

  /** The shard whose reservation grew by {@code tokens} since {@code before}. */
  static String newlyReserved(Map<String, Long> before, long tokens) {
    return engines.entrySet().stream()
        .filter(e -> e.getValue().reservedTokens() - before.get(e.getKey()) == tokens)
        .map(Map.Entry::getKey)
        .findFirst()
        .orElseThrow();
  }
}
