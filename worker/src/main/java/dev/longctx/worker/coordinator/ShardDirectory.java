package dev.longctx.worker.coordinator;

import dev.longctx.proto.shard.v1.DescribeResponse;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * The shards the coordinator may place requests on, kept current as the pool scales: a static list
 * in local mode, or the A records of the workers' headless Service, resolved again every few
 * seconds (DESIGN.md §7: the autoscaler adds and removes worker pods; the coordinator must use new
 * shards and stop placing on departed ones).
 *
 * <p>A new address joins once it answers Describe with the same model as the others. A vanished
 * address leaves placement at once; its channel is closed after a grace period, so calls of
 * requests still running there (a draining pod) can finish — and if they fail, the request's KV is
 * rebuilt on the shards left.
 */
public final class ShardDirectory implements AutoCloseable {

  private static final Logger LOG = Logger.getLogger(ShardDirectory.class);

  /** Deadline of the Describe that admits a new shard. */
  static final long ADMIT_TIMEOUT_MILLIS = 2000;

  private final Supplier<List<String>> resolver;
  private final Function<String, ShardClient> connector;
  private final long closeGraceMillis;
  private final ScheduledExecutorService timer =
      Executors.newSingleThreadScheduledExecutor(
          r -> Thread.ofPlatform().daemon().name("longctx-shard-directory").unstarted(r));
  private volatile List<ShardClient> current;
  private volatile String fingerprint;

  private ShardDirectory(
      List<ShardClient> initial,
      Supplier<List<String>> resolver,
      Function<String, ShardClient> connector,
      long closeGraceMillis) {
    this.current = List.copyOf(initial);
    this.resolver = resolver;
    this.connector = connector;
    this.closeGraceMillis = closeGraceMillis;
    this.fingerprint =
        initial.isEmpty() ? null : initial.getFirst().described().getModelFingerprint();
  }

  /** A fixed set of shards (local mode, a static --shard-addresses list). */
  public static ShardDirectory fixed(List<ShardClient> shards) {
    return new ShardDirectory(shards, null, null, 0);
  }

  /**
   * Shards found by {@code resolver} (host:port addresses) and connected by {@code connector};
   * {@code initial} are those already connected. Call {@link #refresh} or {@link #refreshEvery}.
   */
  public static ShardDirectory resolving(
      List<ShardClient> initial,
      Supplier<List<String>> resolver,
      Function<String, ShardClient> connector,
      long closeGraceMillis) {
    return new ShardDirectory(initial, resolver, connector, closeGraceMillis);
  }

  /** The shards placement may use now. */
  public List<ShardClient> current() {
    return current;
  }

  /** KV tokens the current shards can hold (from their last Describe). */
  public long capacityTokens() {
    long sum = 0;
    for (ShardClient c : current) {
      sum += c.described().getCapacityTokens();
    }
    return sum;
  }

  /** What a refresh changed. */
  public record Change(List<String> added, List<String> removed) {
    public boolean isEmpty() {
      return added.isEmpty() && removed.isEmpty();
    }
  }

  /** Resolves the addresses again and brings the set up to date. */
  public synchronized Change refresh() {
    if (resolver == null) {
      return new Change(List.of(), List.of());
    }
    List<String> addresses = resolver.get();
    if (addresses.isEmpty() && !current.isEmpty()) {
      // A failed lookup is not a pool of zero: keep what we have until DNS answers again.
      LOG.warn("shard lookup returned no address; keeping the current shards");
      return new Change(List.of(), List.of());
    }
    Map<String, ShardClient> byAddress = new LinkedHashMap<>();
    for (ShardClient c : current) {
      byAddress.put(c.address(), c);
    }
    List<ShardClient> next = new ArrayList<>();
    List<String> added = new ArrayList<>();
    for (String address : addresses) {
      ShardClient known = byAddress.remove(address);
      if (known != null) {
        next.add(known);
        continue;
      }
      ShardClient c = connector.apply(address);
      try {
        DescribeResponse d = c.describe(ADMIT_TIMEOUT_MILLIS);
        if (fingerprint != null && !fingerprint.equals(d.getModelFingerprint())) {
          LOG.warnf(
              "shard %s serves %s, the pool %s; not admitted",
              address, d.getModelFingerprint(), fingerprint);
          c.close();
          continue;
        }
        fingerprint = d.getModelFingerprint();
        next.add(c);
        added.add(address);
      } catch (StatusRuntimeException e) {
        LOG.debugf("shard %s is not answering yet (%s); trying at the next refresh", address, e);
        c.close();
      }
    }
    List<String> removed = new ArrayList<>(byAddress.keySet());
    current = List.copyOf(next);
    for (ShardClient gone : byAddress.values()) {
      timer.schedule(gone::close, closeGraceMillis, TimeUnit.MILLISECONDS);
    }
    Change change = new Change(List.copyOf(added), removed);
    if (!change.isEmpty()) {
      LOG.infof(
          "shards: +%s -%s, now %d: %s",
          added, removed, current.size(), current.stream().map(ShardClient::address).toList());
    }
    return change;
  }

  /** Refreshes every {@code periodMillis} until closed. */
  public ShardDirectory refreshEvery(long periodMillis) {
    timer.scheduleWithFixedDelay(
        () -> {
          try {
            refresh();
          } catch (RuntimeException e) {
            LOG.warn("shard refresh failed", e);
          }
        },
        periodMillis,
        periodMillis,
        TimeUnit.MILLISECONDS);
    return this;
  }

  @Override
  public void close() {
    timer.shutdownNow();
    current.forEach(ShardClient::close);
  }
}
