package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/** The worker count the reconciler decided on, handed to the StatefulSet dependent. */
public final class PoolSize {

  private static final String KEY = "longctx.workers.desired";

  private PoolSize() {}

  public static void set(Context<LongContextModel> context, int workers) {
    context.managedWorkflowAndDependentResourceContext().put(KEY, workers);
  }

  /** The decided count, or the spec's fixed count when the reconciler decided none. */
  public static int get(Context<LongContextModel> context, LongContextModel m) {
    return context
        .managedWorkflowAndDependentResourceContext()
        .get(KEY, Integer.class)
        .orElse(m.getSpec().getWorkers().replicasOrDefault());
  }
}
