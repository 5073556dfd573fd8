package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.DeploymentBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/** The coordinator: places ranges on shards, merges, samples and streams to clients. */
public class CoordinatorDeploymentDependent extends HashMatchingDependent<Deployment> {

  public CoordinatorDeploymentDependent() {
    super(Deployment.class);
  }

  @Override
  protected Deployment build(LongContextModel m, Context<LongContextModel> context) {
    return new DeploymentBuilder()
        .withMetadata(Meta.of(m, Names.coordinator(m), Names.COORDINATOR))
        .withNewSpec()
        .withReplicas(m.getSpec().getCoordinator().getReplicas())
        .withNewSelector()
        .withMatchLabels(Names.selector(m, Names.COORDINATOR))
        .endSelector()
        .withTemplate(PodTemplates.coordinator(m))
        .endSpec()
        .build();
  }
}
