package dev.longctx.worker.cli;

import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.InferenceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.PrintStream;
import java.util.Iterator;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Streams one {@code Inference.Generate} call to a terminal: text to {@code out} as it arrives,
 * prefill progress and a closing usage line to stderr. What {@code client} and {@code generate
 * --shards} print.
 */
final class GrpcStream {

  /** Exit code when the server answered with an error status. */
  static final int EXIT_SERVER_ERROR = 3;

  private GrpcStream() {}

  /**
   * Streams {@code request} from {@code target} (HOST:PORT); {@code echo} is printed first (the
   * prompt, so the completion reads on from it). Returns 0, or {@link #EXIT_SERVER_ERROR} after
   * printing the status.
   */
  static int stream(
      String target, GenerateRequest request, String echo, PrintStream out, long timeoutSeconds)
      throws InterruptedException {
    ManagedChannel channel = NettyChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      Iterator<GenerateResponse> stream =
          InferenceGrpc.newBlockingStub(channel)
              .withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS)
              .generate(request);
      if (echo != null) {
        out.print(echo);
      }
      while (stream.hasNext()) {
        GenerateResponse r = stream.next();
        switch (r.getEventCase()) {
          case TOKENS -> {
            out.print(r.getTokens().getText());
            out.flush();
          }
          case PREFILL ->
              System.err.printf(
                  "prefill %d/%d%n",
                  r.getPrefill().getTokensDone(), r.getPrefill().getTokensTotal());
          case FINAL -> {
            out.println();
            var u = r.getFinal().getUsage();
            System.err.printf(
                Locale.ROOT,
                "request %s | prompt %d tokens | completion %d tokens | shards %d | first token"
                    + " %.3f s | %.2f tokens/s | prefill %.2f tokens/s | finish: %s%n",
                r.getRequestId(),
                u.getPromptTokens(),
                u.getCompletionTokens(),
                u.getShardsUsed(),
                u.getTimeToFirstTokenSeconds(),
                u.getTokensPerSecond(),
                u.getPrefillTokensPerSecond(),
                r.getFinal()
                    .getFinishReason()
                    .name()
                    .replace("FINISH_REASON_", "")
                    .toLowerCase(Locale.ROOT));
          }
          case EVENT_NOT_SET -> {}
        }
      }
      return 0;
    } catch (StatusRuntimeException e) {
      out.flush();
      System.err.println(
          "longctx: server error "
              + e.getStatus().getCode()
              + (e.getStatus().getDescription() != null
                  ? ": " + e.getStatus().getDescription()
                  : ""));
      return EXIT_SERVER_ERROR;
    } finally {
      channel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
