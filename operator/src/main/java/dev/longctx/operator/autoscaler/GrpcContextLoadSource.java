package dev.longctx.operator.autoscaler;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.operator.resources.Names;
import dev.longctx.proto.v1.AdminGrpc;
import dev.longctx.proto.v1.GetLoadRequest;
import dev.longctx.proto.v1.Load;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.quarkus.arc.DefaultBean;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Reads a pool's context load from its coordinator's {@code longctx.v1.Admin/GetLoad} (DESIGN.md
 * §5, §7), through the coordinator Service the operator created.
 *
 * <p>One plaintext channel per {@link LongContextModel} (keyed by namespace/name), reused across
 * polls and rebuilt when the target changes (a new gRPC port); channels of models not polled for
 * {@code idleClose} are closed, so a deleted model's channel does not linger. Every call carries a
 * deadline because it runs on the reconcile thread. A failed or late call is no reading at all:
 * {@link Optional#empty()}, which the autoscaler treats as "never scale down" (DESIGN.md §7). A
 * reading is not cached across polls, so an old success cannot stand in for a failed poll.
 */
@DefaultBean
@ApplicationScoped
public class GrpcContextLoadSource implements ContextLoadSource {

  private static final Logger LOG = Logger.getLogger(GrpcContextLoadSource.class);

  private final Duration deadline;
  private final Duration idleClose;
  private final Clock clock;
  private final Function<LongContextModel, String> target;
  private final Map<String, Entry> channels = new ConcurrentHashMap<>();

  /** A cached channel, when it was last used, and whether its last poll failed (for logging). */
  private static final class Entry {
    final String target;
    final ManagedChannel channel;
    volatile Instant lastUsed;
    volatile boolean failing;

    Entry(String target, ManagedChannel channel, Instant now) {
      this.target = target;
      this.channel = channel;
      this.lastUsed = now;
    }
  }

  @Inject
  public GrpcContextLoadSource(
      @ConfigProperty(name = "longctx.operator.load.deadline", defaultValue = "2s")
          Duration deadline,
      @ConfigProperty(name = "longctx.operator.load.idle-close", defaultValue = "10m")
          Duration idleClose,
      Clock clock) {
    this(deadline, idleClose, clock, GrpcContextLoadSource::serviceTarget);
  }

  /**
   * @param deadline per-call deadline of GetLoad
   * @param idleClose a channel not used for this long is closed
   * @param target the gRPC target of a model's coordinator (tests point it at loopback)
   */
  public GrpcContextLoadSource(
      Duration deadline,
      Duration idleClose,
      Clock clock,
      Function<LongContextModel, String> target) {
    if (deadline.isNegative() || deadline.isZero()) {
      throw new IllegalArgumentException(
          "longctx.operator.load.deadline must be > 0, got " + deadline);
    }
    this.deadline = deadline;
    this.idleClose = idleClose;
    this.clock = clock;
    this.target = target;
  }

  /** The coordinator Service's cluster DNS name and gRPC port. */
  static String serviceTarget(LongContextModel m) {
    return "dns:///" + Names.endpoint(m);
  }

  @Override
  public Optional<ContextLoad> read(LongContextModel model) {
    Instant now = Instant.now(clock);
    closeIdle(now);
    String key = model.getMetadata().getNamespace() + "/" + model.getMetadata().getName();
    String to = target.apply(model);
    Entry e =
        channels.compute(
            key,
            (k, old) -> {
              if (old != null && old.target.equals(to)) {
                return old;
              }
              if (old != null) {
                old.channel.shutdownNow();
              }
              return new Entry(to, NettyChannelBuilder.forTarget(to).usePlaintext().build(), now);
            });
    e.lastUsed = now;
    try {
      Load load =
          AdminGrpc.newBlockingStub(e.channel)
              .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
              .getLoad(GetLoadRequest.getDefaultInstance());
      if (e.failing) {
        LOG.infof("%s: context load readable again from %s", key, to);
        e.failing = false;
      }
      return Optional.of(toContextLoad(model, load, now));
    } catch (StatusRuntimeException ex) {
      // Warn once per outage; the autoscaler holds the pool meanwhile.
      String why =
          ex.getStatus().getCode()
              + (ex.getStatus().getDescription() == null
                  ? ""
                  : ": " + ex.getStatus().getDescription());
      if (!e.failing) {
        LOG.warnf("%s: Admin.GetLoad on %s failed (%s); not scaling down", key, to, why);
        e.failing = true;
      } else {
        LOG.debugf("%s: Admin.GetLoad on %s failed again (%s)", key, to, why);
      }
      return Optional.empty();
    }
  }

  /**
   * Converts a reply. Each shard entry becomes the {@link PodLoad} of its StatefulSet pod: the
   * entry's {@code pod} when it names one of this model's worker pods, otherwise the pod of its
   * ordinal ({@code <name>-worker-<shard_id>}, as the proto documents), so the autoscaler can drop
   * departed pods by name. A shard that is not ready contributes its resident tokens but no
   * capacity, as in the coordinator's own totals. A reply without a time is taken as read now.
   */
  static ContextLoad toContextLoad(LongContextModel model, Load load, Instant receivedAt) {
    String prefix = Names.workers(model) + "-";
    List<PodLoad> pods =
        load.getShardsList().stream()
            .map(
                s ->
                    new PodLoad(
                        s.getPod().startsWith(prefix)
                            ? s.getPod()
                            : Names.workerPod(model, s.getShardId()),
                        s.getResidentTokens(),
                        s.getReady() ? s.getCapacityTokens() : 0))
            .toList();
    Instant observedAt =
        load.getObservedAtMillis() > 0
            ? Instant.ofEpochMilli(load.getObservedAtMillis())
            : receivedAt;
    return new ContextLoad(
        observedAt,
        load.getResidentTokens(),
        load.getCapacityTokens(),
        load.getQueuedTokens(),
        pods);
  }

  private void closeIdle(Instant now) {
    channels
        .entrySet()
        .removeIf(
            kv -> {
              boolean idle = Duration.between(kv.getValue().lastUsed, now).compareTo(idleClose) > 0;
              if (idle) {
                kv.getValue().channel.shutdownNow();
              }
              return idle;
            });
  }

  /** Number of open channels (for tests). */
  int openChannels() {
    return channels.size();
  }

  @PreDestroy
  void close() {
    channels.values().forEach(e -> e.channel.shutdownNow());
    channels.clear();
  }
}
