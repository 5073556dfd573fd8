package dev.longctx.worker.coordinator;

import dev.longctx.engine.inference.Generator.FinishReason;

/** Receives one request's stream. Called from the engine thread only. */
public interface GenerationSink {

  /** Prompt tokens prefilled so far. */
  void onPrefillProgress(int done, int total);

  /** Newly sampled tokens and the text now final (possibly empty). */
  void onTokens(int[] tokenIds, String text);

  /** The end of the stream. */
  void onFinish(FinishReason reason, Usage usage);

  /** The request failed; nothing follows. */
  void onError(Throwable error);

  /** What a finished request used and how fast it ran. */
  record Usage(
      int promptTokens,
      int completionTokens,
      int shardsUsed,
      double timeToFirstTokenSeconds,
      double tokensPerSecond,
      double prefillTokensPerSecond) {}
}
