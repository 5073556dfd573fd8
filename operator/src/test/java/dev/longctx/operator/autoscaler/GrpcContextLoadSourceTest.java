package dev.longctx.operator.autoscaler;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.operator.MutableClock;
import dev.longctx.operator.TestModels;
import dev.longctx.operator.resources.Names;
import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.GetLoadRequest;
import dev.longctx.proto.v1.Load;
import dev.longctx.proto.v1.ShardLoad;
import io.grpc.Attributes;
import io.grpc.Context;
import io.grpc.Server;
import io.grpc.ServerTransportFilter;
import io.grpc.Status;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link GrpcContextLoadSource} against real gRPC servers on loopback (Netty, the transport the
 * operator uses), each implementing {@code Admin} with canned replies, failures or stalls.
 */
class GrpcContextLoadSourceTest {

  static final Instant T0 = Instant.parse("2025-01-01T00:00:00Z");

  final MutableClock clock = new MutableClock(T0);
  final List<Server> servers = new ArrayList<>();
  final Map<String, String> targets = new ConcurrentHashMap<>();
  GrpcContextLoadSource source;

  /** A canned Admin: answers with {@code reply}, or fails with {@code failWith} when set. */
  static final class CannedAdmin extends AdminGrpc.AdminImplBase {
    final AtomicReference<Load> reply = new AtomicReference<>(Load.getDefaultInstance());
    final AtomicReference<Status> failWith = new AtomicReference<>();
    final AtomicInteger calls = new AtomicInteger();

    @Override
    public void getLoad(GetLoadRequest request, StreamObserver<Load> out) {
      calls.incrementAndGet();
      Status s = failWith.get();
      if (s != null) {
        out.onError(s.asRuntimeException());
        return;
      }
      out.onNext(reply.get());
      out.onCompleted();
    }
  }

  /** Starts a loopback server; {@code connections} counts the transports (TCP connections) made. */
  String serve(AdminGrpc.AdminImplBase admin, AtomicInteger connections) throws IOException {
    Server s =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(admin)
            .addTransportFilter(
                new ServerTransportFilter() {
                  @Override
                  public Attributes transportReady(Attributes attrs) {
                    connections.incrementAndGet();
                    return attrs;
                  }
                })
            .build()
            .start();
    servers.add(s);
    return "127.0.0.1:" + s.getPort();
  }

  GrpcContextLoadSource source(Duration deadline) {
    source =
        new GrpcContextLoadSource(
            deadline, Duration.ofMinutes(10), clock, m -> targets.get(m.getMetadata().getName()));
    return source;
  }

  static LongContextModel model(String name) {
    return TestModels.cpu(name, "ns");
  }

  @AfterEach
  void stop() {
    if (source != null) {
      source.close();
    }
    servers.forEach(Server::shutdownNow);
  }

  @Test
  void aCannedReplyBecomesTheReadingWithShardsNamedByTheirWorkerPods() throws IOException {
    var admin = new CannedAdmin();
    long observed = T0.minusSeconds(3).toEpochMilli();
    admin.reply.set(
        Load.newBuilder()
            .setResidentTokens(1500)
            .setCapacityTokens(8192)
            .setQueuedTokens(700)
            .setObservedAtMillis(observed)
            // a coordinator that reports Kubernetes pod names
            .addShards(shard(0, "m-worker-0", true, 1000, 4096))
            // one that reports local names: the ordinal picks the pod
            .addShards(shard(1, "shard-1", true, 500, 4096))
            // not ready: its tokens count, its capacity does not
            .addShards(shard(2, "m-worker-2", false, 250, 4096))
            .build());
    targets.put("m", serve(admin, new AtomicInteger()));

    ContextLoad l = source(Duration.ofSeconds(5)).read(model("m")).orElseThrow();

    assertThat(l.observedAt()).isEqualTo(Instant.ofEpochMilli(observed));
    assertThat(l.residentTokens()).isEqualTo(1500);
    assertThat(l.capacityTokens()).isEqualTo(8192);
    assertThat(l.queuedTokens()).isEqualTo(700);
    assertThat(l.pods())
        .containsExactly(
            new PodLoad("m-worker-0", 1000, 4096),
            new PodLoad("m-worker-1", 500, 4096),
            new PodLoad("m-worker-2", 250, 0));
    // the pod names line up with the ones the reconciler passes as the live pool
    assertThat(l.residentOn(Set.of("m-worker-0", "m-worker-1"))).isEqualTo(1500);
  }

  @Test
  void aReadingOfACoordinatorWithLocalShardNamesDrivesTheAutoscalerOverTheLivePods()
      throws IOException {
    // what the coordinator reports as "shard-<i>" must line up with the StatefulSet pods the
    // reconciler counts as live, or the autoscaler would see no resident tokens at all
    var admin = new CannedAdmin();
    admin.reply.set(
        Load.newBuilder()
            .setObservedAtMillis(T0.toEpochMilli())
            .setQueuedTokens(300)
            .addShards(shard(0, "shard-0", true, 700, 1000))
            .addShards(shard(1, "shard-1", true, 500, 1000))
            .build());
    targets.put("auto", serve(admin, new AtomicInteger()));
    LongContextModel m = model("auto");
    Set<String> live = Set.of(Names.workerPod(m, 0), Names.workerPod(m, 1));

    var d =
        Autoscaler.decide(
            new Autoscaler.Policy(1, 8, 1000, 0.5, Duration.ofMinutes(1), Duration.ofSeconds(30)),
            2,
            source(Duration.ofSeconds(5)).read(m),
            live,
            T0,
            Optional.empty());

    // ceil((700 + 500 + 300) / (1000 x 0.5)) = 3
    assertThat(d.kind()).isEqualTo(Autoscaler.Kind.SCALE_UP);
    assertThat(d.replicas()).isEqualTo(3);
    assertThat(d.residentTokens()).isEqualTo(1200);
  }

  @Test
  void aReplyWithoutATimeIsTakenAsReadNow() throws IOException {
    var admin = new CannedAdmin();
    admin.reply.set(Load.newBuilder().setResidentTokens(10).build());
    targets.put("m", serve(admin, new AtomicInteger()));

    assertThat(source(Duration.ofSeconds(5)).read(model("m")).orElseThrow().observedAt())
        .isEqualTo(T0);
  }

  @Test
  void eachModelKeepsOneChannelAcrossPollsAndANewPortGetsANewOne() throws IOException {
    var admin = new CannedAdmin();
    var connections = new AtomicInteger();
    String first = serve(admin, connections);
    targets.put("a", first);
    targets.put("b", first);
    source(Duration.ofSeconds(5));

    for (int i = 0; i < 3; i++) {
      assertThat(source.read(model("a"))).isPresent();
    }
    assertThat(connections.get()).as("three polls of one model, one connection").isEqualTo(1);
    assertThat(source.read(model("b"))).isPresent();
    assertThat(connections.get()).as("a second model has its own channel").isEqualTo(2);
    assertThat(source.openChannels()).isEqualTo(2);

    var moved = new CannedAdmin();
    var movedConnections = new AtomicInteger();
    targets.put("a", serve(moved, movedConnections));
    assertThat(source.read(model("a"))).isPresent();
    assertThat(moved.calls.get()).isEqualTo(1);
    assertThat(movedConnections.get()).isEqualTo(1);
    assertThat(admin.calls.get()).isEqualTo(4);
    assertThat(source.openChannels()).isEqualTo(2);
  }

  @Test
  void channelsOfModelsNoLongerPolledAreClosed() throws IOException {
    var admin = new CannedAdmin();
    String target = serve(admin, new AtomicInteger());
    targets.put("gone", target);
    targets.put("kept", target);
    source(Duration.ofSeconds(5));
    assertThat(source.read(model("gone"))).isPresent();
    assertThat(source.read(model("kept"))).isPresent();

    clock.advance(Duration.ofMinutes(6));
    assertThat(source.read(model("kept"))).isPresent();
    clock.advance(Duration.ofMinutes(6));
    assertThat(source.read(model("kept"))).isPresent();

    assertThat(source.openChannels()).as("only the model still polled").isEqualTo(1);
  }

  @Test
  void anUnreachableCoordinatorIsNoReading() throws IOException {
    int closedPort;
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      closedPort = s.getLocalPort();
    }
    targets.put("m", "127.0.0.1:" + closedPort);

    assertThat(source(Duration.ofSeconds(5)).read(model("m"))).isEmpty();
  }

  @Test
  void aCoordinatorThatAnswersWithAnErrorIsNoReadingAndANewReplyIsReadAgain() throws IOException {
    var admin = new CannedAdmin();
    admin.reply.set(Load.newBuilder().setResidentTokens(42).build());
    targets.put("m", serve(admin, new AtomicInteger()));
    source(Duration.ofSeconds(5));
    assertThat(source.read(model("m"))).map(ContextLoad::residentTokens).contains(42L);

    // a failed poll after a good one is missing, not the old reading
    admin.failWith.set(Status.UNAVAILABLE.withDescription("no shard ready"));
    assertThat(source.read(model("m"))).isEmpty();

    admin.failWith.set(null);
    admin.reply.set(Load.newBuilder().setResidentTokens(43).build());
    assertThat(source.read(model("m"))).map(ContextLoad::residentTokens).contains(43L);
  }

  @Test
  void aSlowCoordinatorIsCutAtTheDeadlineAndTheServerSeesTheCancellation() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    var slow =
        new AdminGrpc.AdminImplBase() {
          @Override
          public void getLoad(GetLoadRequest request, StreamObserver<Load> out) {
            Context.current().addListener(c -> cancelled.countDown(), Runnable::run);
            try {
              release.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
            out.onNext(Load.getDefaultInstance());
            out.onCompleted();
          }
        };
    targets.put("m", serve(slow, new AtomicInteger()));
    try {
      Optional<ContextLoad> read = source(Duration.ofMillis(300)).read(model("m"));
      assertThat(read).isEmpty();
      assertThat(cancelled.await(30, TimeUnit.SECONDS))
          .as("the deadline travelled to the server and cancelled the call")
          .isTrue();
    } finally {
      release.countDown();
    }
  }

  @Test
  void theDefaultTargetIsTheCoordinatorServiceGrpcPort() {
    LongContextModel m = TestModels.cpu("llama", "models");
    m.getSpec().getService().setGrpcPort(9443);
    assertThat(GrpcContextLoadSource.serviceTarget(m)).isEqualTo("dns:///llama.models.svc:9443");
  }

  static ShardLoad shard(int id, String pod, boolean ready, long resident, long capacity) {
    return ShardLoad.newBuilder()
        .setShardId(id)
        .setPod(pod)
        .setReady(ready)
        .setResidentTokens(resident)
        .setCapacityTokens(capacity)
        .build();
  }
}
