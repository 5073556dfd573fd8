package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/**
 * Headless Service of the workers: stable DNS names {@code <name>-worker-<i>.<name>-worker} for the
 * StatefulSet, and one A record per ready shard for the coordinator's discovery.
 */
public class WorkerServiceDependent extends HashMatchingDependent<Service> {

  public WorkerServiceDependent() {
    super(Service.class);
  }

  @Override
  protected Service build(LongContextModel m, Context<LongContextModel> context) {
    var svc = m.getSpec().getService();
    return new ServiceBuilder()
        .withMetadata(Meta.of(m, Names.workers(m), Names.WORKER))
        .withNewSpec()
        .withClusterIP("None")
        .withPublishNotReadyAddresses(false)
        .withSelector(Names.selector(m, Names.WORKER))
        .addNewPort()
        .withName("shard")
        .withPort(svc.getShardPort())
        .withNewTargetPort("shard")
        .endPort()
        .addNewPort()
        .withName("http")
        .withPort(svc.getHttpPort())
        .withNewTargetPort("http")
        .endPort()
        .endSpec()
        .build();
  }
}
