package dev.longctx.operator.autoscaler;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.quarkus.arc.DefaultBean;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Optional;

/**
 * Stand-in until the coordinator's {@code Admin.GetLoad} client exists: reports no load, so the
 * autoscaler keeps the pool within [minReplicas, maxReplicas] and never scales down on its own.
 */
@DefaultBean
@ApplicationScoped
public class UnavailableContextLoadSource implements ContextLoadSource {

  @Override
  public Optional<ContextLoad> read(LongContextModel model) {
    return Optional.empty();
  }
}
