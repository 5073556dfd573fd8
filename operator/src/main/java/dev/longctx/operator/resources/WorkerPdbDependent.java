package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudgetBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/** Voluntary disruptions (node drains) take at most one shard at a time. */
public class WorkerPdbDependent extends HashMatchingDependent<PodDisruptionBudget> {

  public WorkerPdbDependent() {
    super(PodDisruptionBudget.class);
  }

  @Override
  protected PodDisruptionBudget build(LongContextModel m, Context<LongContextModel> context) {
    return new PodDisruptionBudgetBuilder()
        .withMetadata(Meta.of(m, Names.workers(m), Names.WORKER))
        .withNewSpec()
        .withMaxUnavailable(new IntOrString(1))
        .withNewSelector()
        .withMatchLabels(Names.selector(m, Names.WORKER))
        .endSelector()
        .endSpec()
        .build();
  }
}
