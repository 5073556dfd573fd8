package dev.longctx.operator.autoscaler;

import java.time.Instant;
import java.util.List;
import java.util.Set;

/**
 * A reading of a pool's context load (DESIGN.md §5), as the coordinator's {@code Admin.GetLoad}
 * reports it.
 *
 * @param observedAt when the coordinator took the reading
 * @param residentTokens KV tokens resident in the pool, as the coordinator summed them
 * @param capacityTokens KV token capacity of the ready shards, as the coordinator summed them
 * @param queuedTokens prompt tokens waiting for prefill
 * @param pods per-pod entries; the autoscaler sums these itself so that departed pods drop out
 */
public record ContextLoad(
    Instant observedAt,
    long residentTokens,
    long capacityTokens,
    long queuedTokens,
    List<PodLoad> pods) {

  public ContextLoad {
    pods = List.copyOf(pods);
  }

  /** A reading whose pool totals are the sums of its pod entries. */
  public static ContextLoad of(Instant observedAt, long queuedTokens, List<PodLoad> pods) {
    return new ContextLoad(
        observedAt,
        pods.stream().mapToLong(PodLoad::residentTokens).sum(),
        pods.stream().mapToLong(PodLoad::capacityTokens).sum(),
        queuedTokens,
        pods);
  }

  /** Resident tokens of the pods still in the pool. */
  public long residentOn(Set<String> livePods) {
    return pods.stream()
        .filter(p -> livePods.contains(p.pod()))
        .mapToLong(PodLoad::residentTokens)
        .sum();
  }

  /** Capacity of the pods still in the pool. */
  public long capacityOn(Set<String> livePods) {
    return pods.stream()
        .filter(p -> livePods.contains(p.pod()))
        .mapToLong(PodLoad::capacityTokens)
        .sum();
  }
}
