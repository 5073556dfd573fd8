package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.api.model.apps.StatefulSetBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/**
 * The shard pool: stable identities {@code <name>-worker-<i>} (the ordinal is the shard id),
 * started in parallel, rolled one at a time when the template changes (a model change changes
 * {@link Names#MODEL_GENERATION} and so rolls a new worker generation).
 */
public class WorkerStatefulSetDependent extends HashMatchingDependent<StatefulSet> {

  public WorkerStatefulSetDependent() {
    super(StatefulSet.class);
  }

  @Override
  protected StatefulSet build(LongContextModel m, Context<LongContextModel> context) {
    return new StatefulSetBuilder()
        .withMetadata(Meta.of(m, Names.workers(m), Names.WORKER))
        .withNewSpec()
        .withServiceName(Names.workers(m))
        .withReplicas(PoolSize.get(context, m))
        .withPodManagementPolicy("Parallel")
        .withNewUpdateStrategy()
        .withType("RollingUpdate")
        .endUpdateStrategy()
        .withNewSelector()
        .withMatchLabels(Names.selector(m, Names.WORKER))
        .endSelector()
        .withTemplate(PodTemplates.worker(m))
        .endSpec()
        .build();
  }
}
