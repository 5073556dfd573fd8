package dev.longctx.operator.autoscaler;

import dev.longctx.api.v1alpha1.LongContextModel;
import java.util.Optional;

/**
 * Where the autoscaler reads a pool's context load. The operator runs {@link
 * GrpcContextLoadSource}, which calls the coordinator's {@code Admin.GetLoad}; tests substitute
 * fakes.
 */
public interface ContextLoadSource {

  /**
   * The latest load of the model's pool, or empty when it cannot be read (coordinator down, not yet
   * started, unreachable). Must not block for long: it is called on the reconcile thread.
   */
  Optional<ContextLoad> read(LongContextModel model);
}
