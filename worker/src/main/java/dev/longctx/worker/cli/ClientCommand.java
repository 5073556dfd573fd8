package dev.longctx.worker.cli;

import dev.longctx.proto.v1.ChatMessage;
import dev.longctx.proto.v1.ChatMessages;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.SamplingParams;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Streams a completion from a running {@code longctx serve} over gRPC. */
@Command(
    name = "client",
    mixinStandardHelpOptions = true,
    description =
        "Stream a completion of --prompt from a longctx server (gRPC longctx.v1.Inference) to"
            + " stdout; a last line on stderr gives usage and timings.")
public class ClientCommand implements Callable<Integer> {

  @Option(
      names = "--server",
      defaultValue = "localhost:9000",
      description = "Server address HOST:PORT (default: ${DEFAULT-VALUE}).")
  String server;

  @Option(
      names = {"-p", "--prompt"},
      required = true,
      description = "Prompt text.")
  String prompt;

  @Option(
      names = {"-n", "--max-tokens"},
      description = "Tokens to generate at most (default: the server's).")
  Integer maxTokens;

  @Option(
      names = "--temperature",
      description = "Sampling temperature; 0 = greedy (default: the server's, 0.8).")
  Float temperature;

  @Option(names = "--top-k", description = "Top-k; 0 = off (default: the server's, 40).")
  Integer topK;

  @Option(names = "--top-p", description = "Top-p in (0, 1] (default: the server's, 0.95).")
  Float topP;

  @Option(names = "--min-p", description = "Min-p in [0, 1) (default: the server's, 0.05).")
  Float minP;

  @Option(
      names = {"-s", "--seed"},
      description = "Random seed (default: the server picks one).")
  Long seed;

  @Option(names = "--stop", description = "Stop when this string is generated (repeatable).")
  List<String> stop = new ArrayList<>();

  @Option(names = "--chat", description = "Send the prompt as a user chat turn.")
  boolean chat;

  @Option(names = "--system", description = "System message for --chat.")
  String system;

  @Option(
      names = "--request-id",
      description = "Client request id (default: the server makes one).")
  String requestId;

  @Option(
      names = "--timeout",
      defaultValue = "600",
      description = "Deadline of the whole stream in seconds (default: ${DEFAULT-VALUE}).")
  long timeoutSeconds;

  @Override
  public Integer call() throws InterruptedException {
    GenerateRequest.Builder req = GenerateRequest.newBuilder().addAllStop(stop);
    if (chat) {
      ChatMessages.Builder m = ChatMessages.newBuilder();
      if (system != null) {
        m.addMessages(ChatMessage.newBuilder().setRole("system").setContent(system));
      }
      m.addMessages(ChatMessage.newBuilder().setRole("user").setContent(prompt));
      req.setChat(m);
    } else {
      req.setPrompt(prompt);
    }
    SamplingParams.Builder s = SamplingParams.newBuilder();
    if (temperature != null) s.setTemperature(temperature);
    if (topK != null) s.setTopK(topK);
    if (topP != null) s.setTopP(topP);
    if (minP != null) s.setMinP(minP);
    if (seed != null) s.setSeed(seed);
    req.setSampling(s);
    if (maxTokens != null) {
      req.setMaxTokens(maxTokens);
    }
    if (requestId != null) {
      req.setRequestId(requestId);
    }

    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    return GrpcStream.stream(server, req.build(), chat ? null : prompt, out, timeoutSeconds);
  }
}
