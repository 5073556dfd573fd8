package dev.longctx.worker.shard;

import dev.longctx.proto.shard.v1.ShardGrpc;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/** A shard process's gRPC endpoint: the internal shard API plus standard health. */
public final class ShardServer implements AutoCloseable {

  private final Server server;
  private final HealthStatusManager health;

  private ShardServer(Server server, HealthStatusManager health) {
    this.server = server;
    this.health = health;
  }

  public static ShardServer start(String host, int port, ShardEngine engine) throws IOException {
    HealthStatusManager health = new HealthStatusManager();
    Server server =
        NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
            .addService(
                io.grpc.ServerInterceptors.intercept(
                    new ShardService(engine), dev.longctx.worker.telemetry.Telemetry.get().join()))
            .addService(health.getHealthService())
            .maxInboundMessageSize(256 << 20)
            .build()
            .start();
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus(ShardGrpc.SERVICE_NAME, ServingStatus.SERVING);
    return new ShardServer(server, health);
  }

  public int port() {
    return server.getPort();
  }

  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  public void shutdown(long graceSeconds) {
    health.enterTerminalState();
    server.shutdown();
    try {
      if (!server.awaitTermination(graceSeconds, TimeUnit.SECONDS)) {
        server.shutdownNow();
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    shutdown(0);
  }
}
