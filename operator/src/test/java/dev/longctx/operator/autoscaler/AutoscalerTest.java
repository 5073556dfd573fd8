package dev.longctx.operator.autoscaler;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.operator.autoscaler.Autoscaler.Decision;
import dev.longctx.operator.autoscaler.Autoscaler.Kind;
import dev.longctx.operator.autoscaler.Autoscaler.Pending;
import dev.longctx.operator.autoscaler.Autoscaler.Policy;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Table-driven: a sequence of load readings goes in, the pool size and decision kinds come out.
 * Policy: 1..8 workers, 1000 KV tokens each, target 0.5 (so 500 tokens per worker), 60 s delay,
 * readings stale after 30 s.
 */
class AutoscalerTest {

  static final Instant T0 = Instant.parse("2025-01-01T00:00:00Z");
  static final Policy POLICY =
      new Policy(1, 8, 1000, 0.5, Duration.ofSeconds(60), Duration.ofSeconds(30));

  /** One step: at second t, a reading of {@code tokens} resident (spread on the live pods). */
  record Step(int t, Long tokens, Integer readingAge, int expectReplicas, Kind expectKind) {}

  static Step load(int t, long tokens, int replicas, Kind kind) {
    return new Step(t, tokens, 0, replicas, kind);
  }

  static Step stale(int t, long tokens, int replicas, Kind kind) {
    return new Step(t, tokens, 120, replicas, kind);
  }

  static Step missing(int t, int replicas, Kind kind) {
    return new Step(t, null, null, replicas, kind);
  }

  /** Runs the steps from a pool of {@code start} workers, carrying pending state like status. */
  static List<Decision> run(int start, Step... steps) {
    int replicas = start;
    Optional<Pending> pending = Optional.empty();
    List<Decision> out = new ArrayList<>();
    for (Step s : steps) {
      Instant now = T0.plusSeconds(s.t());
      Set<String> live = pods(replicas);
      Optional<ContextLoad> reading =
          s.tokens() == null
              ? Optional.empty()
              : Optional.of(spread(now.minusSeconds(s.readingAge()), s.tokens(), live));
      Decision d = Autoscaler.decide(POLICY, replicas, reading, live, now, pending);
      assertThat(d.kind()).as("kind at t=%d: %s", s.t(), d.message()).isEqualTo(s.expectKind());
      assertThat(d.replicas())
          .as("replicas at t=%d: %s", s.t(), d.message())
          .isEqualTo(s.expectReplicas());
      replicas = d.replicas();
      pending = d.pending();
      out.add(d);
    }
    return out;
  }

  static Set<String> pods(int n) {
    return IntStream.range(0, n).mapToObj(i -> "m-worker-" + i).collect(Collectors.toSet());
  }

  static ContextLoad spread(Instant at, long tokens, Set<String> live) {
    List<PodLoad> p = new ArrayList<>();
    int n = live.size();
    int i = 0;
    for (String pod : live.stream().sorted().toList()) {
      p.add(new PodLoad(pod, tokens / n + (i++ < tokens % n ? 1 : 0), 1000));
    }
    return ContextLoad.of(at, 0, p);
  }

  @Test
  void scalesUpAtOnceToTheCeilingOfLoadOverTargetCapacity() {
    run(
        1,
        load(0, 400, 1, Kind.HOLD), // ceil(400/500) = 1
        load(15, 501, 2, Kind.SCALE_UP), // ceil(501/500) = 2, at once
        load(30, 2600, 6, Kind.SCALE_UP), // ceil(2600/500) = 6
        load(45, 99_000, 8, Kind.SCALE_UP)); // clamped to max
  }

  @Test
  void scalesDownOnlyAfterTheLowerValueHeldForTheDelay() {
    run(
        4,
        load(0, 1900, 4, Kind.HOLD),
        load(10, 900, 4, Kind.SCALE_DOWN_PENDING), // wants 2, starts waiting
        load(40, 1200, 4, Kind.SCALE_DOWN_PENDING), // wants 3: remember the highest
        load(69, 400, 4, Kind.SCALE_DOWN_PENDING), // 59 s held
        load(70, 400, 3, Kind.SCALE_DOWN)); // 60 s held: down to 3, the highest seen
  }

  @Test
  void aRiseDuringTheDelayCancelsThePendingScaleDown() {
    run(
        4,
        load(0, 900, 4, Kind.SCALE_DOWN_PENDING),
        load(30, 1800, 4, Kind.HOLD), // back to 4: pending dropped
        load(45, 900, 4, Kind.SCALE_DOWN_PENDING), // the wait starts again
        load(100, 900, 4, Kind.SCALE_DOWN_PENDING),
        load(105, 900, 2, Kind.SCALE_DOWN));
  }

  @Test
  void missingLoadNeverScalesDownAndResetsTheWait() {
    run(
        4,
        load(0, 100, 4, Kind.SCALE_DOWN_PENDING),
        missing(30, 4, Kind.NO_LOAD),
        missing(90, 4, Kind.NO_LOAD), // the delay has passed, but no reading: hold
        load(100, 100, 4, Kind.SCALE_DOWN_PENDING)); // the wait restarts at t=100
  }

  @Test
  void staleLoadMayGrowThePoolButNeverShrinksIt() {
    run(
        4,
        stale(0, 100, 4, Kind.STALE_LOAD),
        stale(100, 100, 4, Kind.STALE_LOAD),
        stale(200, 3100, 7, Kind.SCALE_UP));
  }

  @Test
  void podsThatLeftThePoolDropOutOfTheSumAtOnce() {
    Set<String> live = pods(2);
    ContextLoad reading =
        ContextLoad.of(
            T0,
            0,
            List.of(
                new PodLoad("m-worker-0", 400, 1000),
                new PodLoad("m-worker-1", 400, 1000),
                new PodLoad("m-worker-2", 900, 1000))); // departed, still reported
    Decision d = Autoscaler.decide(POLICY, 2, Optional.of(reading), live, T0, Optional.empty());
    assertThat(d.residentTokens()).isEqualTo(800);
    assertThat(d.kind()).isEqualTo(Kind.HOLD);
    assertThat(d.replicas()).isEqualTo(2);
  }

  @Test
  void queuedPrefillTokensCountLikeResidentOnes() {
    ContextLoad reading = ContextLoad.of(T0, 2000, List.of(new PodLoad("m-worker-0", 0, 1000)));
    Decision d = Autoscaler.decide(POLICY, 1, Optional.of(reading), pods(1), T0, Optional.empty());
    assertThat(d.kind()).isEqualTo(Kind.SCALE_UP);
    assertThat(d.replicas()).isEqualTo(4);
    assertThat(d.message()).contains("ceil((0 resident + 2000 queued)");
  }

  @Test
  void aPoolOutsideChangedBoundsIsClampedWhateverTheLoad() {
    Decision d = Autoscaler.decide(POLICY, 12, Optional.empty(), pods(12), T0, Optional.empty());
    assertThat(d.kind()).isEqualTo(Kind.CLAMP);
    assertThat(d.replicas()).isEqualTo(8);
  }

  @Test
  void zeroDelayScalesDownAtOnce() {
    Policy p = new Policy(1, 8, 1000, 0.5, Duration.ZERO, Duration.ofSeconds(30));
    Decision d =
        Autoscaler.decide(
            p, 4, Optional.of(spread(T0, 100, pods(4))), pods(4), T0, Optional.empty());
    assertThat(d.kind()).isEqualTo(Kind.SCALE_DOWN);
    assertThat(d.replicas()).isEqualTo(1);
  }
}
