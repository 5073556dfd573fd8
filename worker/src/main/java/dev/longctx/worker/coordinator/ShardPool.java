package dev.longctx.worker.coordinator;

import dev.longctx.proto.shard.v1.DescribeResponse;
import dev.longctx.proto.v1.ShardLoad;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/** Finding and connecting the shards: a static list (local mode) or a headless Service's DNS. */
public final class ShardPool {

  /** Deadline of each shard's Describe when the load is polled. */
  static final long LOAD_TIMEOUT_MILLIS = 2000;

  private ShardPool() {}

  /** host:port of every A record of {@code service} (a headless Service: one per ready shard). */
  public static List<String> resolve(String service, int port) {
    try {
      List<String> out = new ArrayList<>();
      for (InetAddress a : InetAddress.getAllByName(service)) {
        out.add(a.getHostAddress() + ":" + port);
      }
      return out;
    } catch (UnknownHostException e) {
      return List.of();
    }
  }

  /**
   * Connects to every address and waits until each answers Describe with the same model, for at
   * most {@code timeoutMillis}.
   */
  public static List<ShardClient> connect(
      List<String> addresses, long callTimeoutMillis, long timeoutMillis)
      throws InterruptedException {
    List<ShardClient> clients = new ArrayList<>();
    for (String address : addresses) {
      clients.add(client(address, callTimeoutMillis));
    }
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    String fingerprint = null;
    for (ShardClient c : clients) {
      while (true) {
        try {
          DescribeResponse d = c.describe();
          if (fingerprint == null) {
            fingerprint = d.getModelFingerprint();
          } else if (!fingerprint.equals(d.getModelFingerprint())) {
            clients.forEach(ShardClient::close);
            throw new IllegalStateException(
                "shard "
                    + c.address()
                    + " serves "
                    + d.getModelFingerprint()
                    + ", others "
                    + fingerprint);
          }
          break;
        } catch (StatusRuntimeException e) {
          if (System.nanoTime() > deadline) {
            clients.forEach(ShardClient::close);
            throw new IllegalStateException(
                "shard "
                    + c.address()
                    + " did not answer within "
                    + timeoutMillis
                    + " ms: "
                    + e.getStatus());
          }
          Thread.sleep(200);
        }
      }
    }
    return clients;
  }

  /** A client of the shard at {@code address} (HOST:PORT), plaintext, large messages allowed. */
  public static ShardClient client(String address, long callTimeoutMillis) {
    return new ShardClient(
        address,
        NettyChannelBuilder.forTarget(address)
            .usePlaintext()
            .maxInboundMessageSize(256 << 20)
            .build(),
        callTimeoutMillis);
  }

  /**
   * Per-shard load entries for Admin.GetLoad, asked live (a shard that does not answer is not
   * ready).
   */
  public static Supplier<List<ShardLoad>> loads(List<ShardClient> clients) {
    return loads(() -> clients);
  }

  /** {@link #loads(List)} of whichever shards {@code pool} holds at each reading. */
  public static Supplier<List<ShardLoad>> loads(Supplier<List<ShardClient>> pool) {
    return () -> {
      List<ShardClient> clients = pool.get();
      List<ShardLoad> out = new ArrayList<>();
      for (int i = 0; i < clients.size(); i++) {
        ShardClient c = clients.get(i);
        ShardLoad.Builder b =
            ShardLoad.newBuilder().setShardId(i).setAddress(c.address()).setPod("shard-" + i);
        try {
          DescribeResponse d = c.describe(LOAD_TIMEOUT_MILLIS);
          // The shard id is the worker pod's StatefulSet ordinal: the operator maps shard-<id>
          // to <model>-worker-<id>.
          b.setShardId(d.getShardId())
              .setPod("shard-" + d.getShardId())
              .setEpoch(d.getEpoch())
              .setReady(d.getReady())
              .setResidentTokens(d.getResidentTokens())
              .setCapacityTokens(d.getCapacityTokens())
              .setActiveRequests(d.getActiveRequests());
        } catch (StatusRuntimeException e) {
          b.setReady(false);
        }
        out.add(b.build());
      }
      return out;
    };
  }
}
