package dev.longctx.worker.coordinator;

/** Where sequences run: opens one {@link SequenceRunner} per request. */
public interface ForwardBackend extends AutoCloseable {

  /**
   * A new, empty sequence for {@code requestId} that may grow to {@code capacity} tokens. {@code
   * promptTokens} lets a sharded backend choose how many shards to spread the prompt over.
   */
  SequenceRunner open(String requestId, int capacity, int promptTokens);

  /** Shards this backend runs on (1 for the in-process engine). */
  int shardCount();

  @Override
  default void close() {}
}
