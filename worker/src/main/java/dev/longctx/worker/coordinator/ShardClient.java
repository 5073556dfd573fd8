package dev.longctx.worker.coordinator;

import dev.longctx.proto.shard.v1.DescribeRequest;
import dev.longctx.proto.shard.v1.DescribeResponse;
import dev.longctx.proto.shard.v1.ShardGrpc;
import dev.longctx.worker.telemetry.Telemetry;
import io.grpc.ManagedChannel;
import java.util.concurrent.TimeUnit;

/** The coordinator's handle on one shard: its channel and the epoch it described. */
public final class ShardClient implements AutoCloseable {

  private final String address;
  private final ManagedChannel channel;
  private final long callTimeoutMillis;
  private volatile DescribeResponse described;

  public ShardClient(String address, ManagedChannel channel, long callTimeoutMillis) {
    this.address = address;
    this.channel = channel;
    this.callTimeoutMillis = callTimeoutMillis;
  }

  public String address() {
    return address;
  }

  /** A stub whose call carries the per-call deadline and the caller's trace context. */
  public ShardGrpc.ShardBlockingStub stub() {
    return ShardGrpc.newBlockingStub(channel)
        .withInterceptors(Telemetry.get().propagate(), ShardTraffic.INTERCEPTOR)
        .withDeadlineAfter(callTimeoutMillis, TimeUnit.MILLISECONDS)
        .withMaxInboundMessageSize(256 << 20)
        .withMaxOutboundMessageSize(256 << 20);
  }

  /** Asks the shard for its identity, epoch and load. */
  public DescribeResponse describe() {
    return describe(callTimeoutMillis);
  }

  /** {@link #describe()} with its own deadline (load polling must not hang on one shard). */
  public DescribeResponse describe(long timeoutMillis) {
    described =
        ShardGrpc.newBlockingStub(channel)
            .withDeadlineAfter(timeoutMillis, TimeUnit.MILLISECONDS)
            .describe(DescribeRequest.getDefaultInstance());
    return described;
  }

  /** The last description (describing first if there is none). */
  public DescribeResponse described() {
    DescribeResponse d = described;
    return d != null ? d : describe();
  }

  @Override
  public void close() {
    channel.shutdownNow();
  }
}
