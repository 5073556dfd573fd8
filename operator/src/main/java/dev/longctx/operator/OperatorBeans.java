package dev.longctx.operator;

import io.javaoperatorsdk.operator.api.config.LeaderElectionConfiguration;
import io.quarkus.arc.DefaultBean;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.time.Clock;
import java.util.Optional;

/** Beans the operator needs; tests replace the clock. */
public class OperatorBeans {

  @Produces
  @Singleton
  @DefaultBean
  Clock clock() {
    return Clock.systemUTC();
  }

  /**
   * Leader election (active in the prod profile only, see application.properties): replicas of the
   * operator Deployment compete for this Lease in the operator's namespace.
   */
  @Produces
  @Singleton
  LeaderElectionConfiguration leaderElection() {
    return new LeaderElectionConfiguration(
        "longctx-operator-lease", Optional.ofNullable(System.getenv("POD_NAMESPACE")).orElse(null));
  }
}
