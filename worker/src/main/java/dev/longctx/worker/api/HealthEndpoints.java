package dev.longctx.worker.api;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;

/**
 * The HTTP health endpoints the operator's probes use, shaped like Quarkus SmallRye Health: {@code
 * /q/health/started} and {@code /q/health/ready} (and vLLM's {@code /health}) are UP once the model
 * is loaded, {@code /q/health/live} while the process runs; 503 with status DOWN otherwise. (The
 * CLI application binds no port at boot, so {@code serve} starts this listener itself.)
 */
public final class HealthEndpoints implements AutoCloseable {

  private final HttpServer server;

  private HealthEndpoints(HttpServer server) {
    this.server = server;
  }

  /** Listens on {@code host:port} (0 = a free port). */
  public static HealthEndpoints start(String host, int port, BooleanSupplier ready)
      throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 0);
    server.createContext("/q/health/live", ex -> reply(ex, "liveness", true));
    server.createContext(
        "/q/health/started", ex -> reply(ex, "model-loaded", ready.getAsBoolean()));
    server.createContext("/q/health/ready", ex -> reply(ex, "model-loaded", ready.getAsBoolean()));
    server.createContext("/q/health", ex -> reply(ex, "model-loaded", ready.getAsBoolean()));
    // Where vLLM users' scripts poll readiness.
    server.createContext("/health", ex -> reply(ex, "model-loaded", ready.getAsBoolean()));
    server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
    server.start();
    return new HealthEndpoints(server);
  }

  public int port() {
    return server.getAddress().getPort();
  }

  /** Serves {@code handler} under {@code path} on this port too (the OpenAI-compatible API). */
  public void route(String path, HttpHandler handler) {
    server.createContext(path, handler);
  }

  private static void reply(HttpExchange ex, String check, boolean up) throws IOException {
    String status = up ? "UP" : "DOWN";
    byte[] body =
        ("{\"status\":\""
                + status
                + "\",\"checks\":[{\"name\":\""
                + check
                + "\",\"status\":\""
                + status
                + "\"}]}")
            .getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("Content-Type", "application/json");
    ex.sendResponseHeaders(up ? 200 : 503, body.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(body);
    }
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
