package dev.longctx.operator.autoscaler;

import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;

/**
 * The context-load autoscaler's decision function (DESIGN.md §7), pure: the same inputs give the
 * same decision, and everything remembered between calls is in {@link Pending}, which the operator
 * keeps in the resource's status.
 *
 * <p>desired = ceil((resident + queued) / (kvCacheTokens × targetContextLoad)), clamped to [min,
 * max]. Up at once; down only after a lower value held for the delay (to the highest value seen in
 * that window); never down on missing or stale load; resident tokens of pods that left the pool are
 * not counted.
 */
public final class Autoscaler {

  private Autoscaler() {}

  /** The autoscaling settings of one pool. */
  public record Policy(
      int minReplicas,
      int maxReplicas,
      long kvCacheTokens,
      double targetContextLoad,
      Duration scaleDownDelay,
      Duration staleAfter) {
    public Policy {
      if (minReplicas < 1 || maxReplicas < minReplicas) {
        throw new IllegalArgumentException(
            "need 1 <= minReplicas <= maxReplicas, got " + minReplicas + ", " + maxReplicas);
      }
      if (kvCacheTokens < 1) {
        throw new IllegalArgumentException("kvCacheTokens must be >= 1, got " + kvCacheTokens);
      }
      if (!(targetContextLoad > 0 && targetContextLoad <= 1)) {
        throw new IllegalArgumentException(
            "targetContextLoad must be in (0, 1], got " + targetContextLoad);
      }
    }

    int clamp(long n) {
      return (int) Math.max(minReplicas, Math.min(maxReplicas, n));
    }
  }

  /** A scale-down waiting for its delay: the highest lower value seen, and since when. */
  public record Pending(int replicas, Instant since) {}

  /** What kind of decision was taken. */
  public enum Kind {
    /** Pool size unchanged, load in range. */
    HOLD,
    /** Grown because load needs more workers. */
    SCALE_UP,
    /** Shrunk after the lower value held for the delay. */
    SCALE_DOWN,
    /** Load would allow fewer workers; waiting for the delay. */
    SCALE_DOWN_PENDING,
    /** Moved into [min, max] after the bounds changed. */
    CLAMP,
    /** No load reading: hold (never scale down blind). */
    NO_LOAD,
    /** Reading older than staleAfter: may grow, never shrinks. */
    STALE_LOAD;

    /** True for the kinds that change the pool size. */
    public boolean changesReplicas() {
      return this == SCALE_UP || this == SCALE_DOWN || this == CLAMP;
    }
  }

  /**
   * The decision.
   *
   * @param replicas pool size to run now
   * @param pending scale-down waiting for its delay, to remember until the next call
   * @param needed the unclamped worker count the load asks for (-1 without a usable reading)
   */
  public record Decision(
      Kind kind,
      int replicas,
      Optional<Pending> pending,
      long residentTokens,
      long queuedTokens,
      long needed,
      String message) {}

  /**
   * Decides the pool size.
   *
   * @param current workers the pool runs now (the StatefulSet's replicas)
   * @param load latest reading, empty when none could be taken
   * @param livePods names of the pods currently in the pool; other pods' tokens are not counted
   * @param pending remembered from the previous decision
   */
  public static Decision decide(
      Policy policy,
      int current,
      Optional<ContextLoad> load,
      Set<String> livePods,
      Instant now,
      Optional<Pending> pending) {
    int clamped = policy.clamp(current);
    if (clamped != current) {
      return new Decision(
          Kind.CLAMP,
          clamped,
          Optional.empty(),
          0,
          0,
          -1,
          "%d workers is outside [%d, %d]"
              .formatted(current, policy.minReplicas(), policy.maxReplicas()));
    }
    if (load.isEmpty()) {
      return new Decision(
          Kind.NO_LOAD,
          current,
          Optional.empty(),
          0,
          0,
          -1,
          "no context load reading; holding %d workers".formatted(current));
    }
    ContextLoad l = load.get();
    long resident = l.residentOn(livePods);
    long queued = l.queuedTokens();
    double perWorker = policy.kvCacheTokens() * policy.targetContextLoad();
    long needed = (long) Math.ceil((resident + queued) / perWorker);
    int desired = policy.clamp(needed);
    String arithmetic =
        "ceil((%d resident + %d queued) / (%d kvCacheTokens x %.2f)) = %d, clamped to [%d, %d]: %d"
            .formatted(
                resident,
                queued,
                policy.kvCacheTokens(),
                policy.targetContextLoad(),
                needed,
                policy.minReplicas(),
                policy.maxReplicas(),
                desired);
    boolean stale = Duration.between(l.observedAt(), now).compareTo(policy.staleAfter()) > 0;
    if (desired > current) {
      return new Decision(
          Kind.SCALE_UP,
          desired,
          Optional.empty(),
          resident,
          queued,
          needed,
          (stale ? "stale reading; " : "") + arithmetic);
    }
    if (stale) {
      return new Decision(
          Kind.STALE_LOAD,
          current,
          Optional.empty(),
          resident,
          queued,
          needed,
          "reading from %s is older than %ds; holding %d workers"
              .formatted(l.observedAt(), policy.staleAfter().toSeconds(), current));
    }
    if (desired == current) {
      return new Decision(
          Kind.HOLD, current, Optional.empty(), resident, queued, needed, arithmetic);
    }
    // desired < current: shrink only after the lower value held for the delay, to the highest
    // lower value seen while waiting.
    Pending p =
        pending
            .filter(old -> old.replicas() < current)
            .map(old -> new Pending(Math.max(old.replicas(), desired), old.since()))
            .orElse(new Pending(desired, now));
    Duration held = Duration.between(p.since(), now);
    if (held.compareTo(policy.scaleDownDelay()) >= 0) {
      return new Decision(
          Kind.SCALE_DOWN,
          p.replicas(),
          Optional.empty(),
          resident,
          queued,
          needed,
          arithmetic + "; held for " + held.toSeconds() + "s");
    }
    return new Decision(
        Kind.SCALE_DOWN_PENDING,
        current,
        Optional.of(p),
        resident,
        queued,
        needed,
        arithmetic
            + "; scaling down to %d after %ds more"
                .formatted(p.replicas(), policy.scaleDownDelay().minus(held).toSeconds()));
  }
}
