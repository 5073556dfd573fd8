package dev.longctx.worker.api;

import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.GetLoadRequest;
import dev.longctx.proto.v1.Load;
import dev.longctx.proto.v1.ShardLoad;
import dev.longctx.worker.coordinator.EngineLoop;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.function.Supplier;

/** {@code longctx.v1.Admin}: the pool's context load for the operator's autoscaler. */
public final class AdminService extends AdminGrpc.AdminImplBase {

  private final EngineLoop engine;
  private final Supplier<List<ShardLoad>> shards;

  /**
   * @param shards the per-shard entries (for the in-process engine, one entry made from the
   *     engine's own reading)
   */
  public AdminService(EngineLoop engine, Supplier<List<ShardLoad>> shards) {
    this.engine = engine;
    this.shards = shards;
  }

  @Override
  public void getLoad(GetLoadRequest request, StreamObserver<Load> observer) {
    EngineLoop.Snapshot s = engine.snapshot();
    observer.onNext(
        Load.newBuilder()
            .setResidentTokens(s.residentTokens())
            .setCapacityTokens(s.capacityTokens())
            .setQueuedTokens(s.queuedTokens())
            .setActiveRequests(s.activeRequests())
            .setQueuedRequests(s.queuedRequests())
            .addAllShards(shards.get())
            .setObservedAtMillis(System.currentTimeMillis())
            .build());
    observer.onCompleted();
  }

  /** The single shard entry of an in-process engine. */
  public static Supplier<List<ShardLoad>> inProcess(EngineLoop engine, String pod, long epoch) {
    return () -> {
      EngineLoop.Snapshot s = engine.snapshot();
      return List.of(
          ShardLoad.newBuilder()
              .setShardId(0)
              .setPod(pod)
              .setAddress("in-process")
              .setEpoch(epoch)
              .setReady(true)
              .setResidentTokens(s.residentTokens())
              .setCapacityTokens(s.capacityTokens())
              .setActiveRequests(s.activeRequests())
              .build());
    };
  }
}
