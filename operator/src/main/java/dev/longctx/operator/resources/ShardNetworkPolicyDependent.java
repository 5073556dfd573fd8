package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/**
 * The shard port accepts connections only from this model's coordinator pods; the HTTP port
 * (health, metrics) stays open to the namespace's scrapers and kubelet probes.
 */
public class ShardNetworkPolicyDependent extends HashMatchingDependent<NetworkPolicy> {

  public ShardNetworkPolicyDependent() {
    super(NetworkPolicy.class);
  }

  @Override
  protected NetworkPolicy build(LongContextModel m, Context<LongContextModel> context) {
    var svc = m.getSpec().getService();
    return new NetworkPolicyBuilder()
        .withMetadata(Meta.of(m, Names.shardPolicy(m), Names.WORKER))
        .withNewSpec()
        .withNewPodSelector()
        .withMatchLabels(Names.selector(m, Names.WORKER))
        .endPodSelector()
        .withPolicyTypes("Ingress")
        .addNewIngress()
        .addNewFrom()
        .withNewPodSelector()
        .withMatchLabels(Names.selector(m, Names.COORDINATOR))
        .endPodSelector()
        .endFrom()
        .addNewPort()
        .withProtocol("TCP")
        .withPort(new IntOrString(svc.getShardPort()))
        .endPort()
        .endIngress()
        .addNewIngress()
        .addNewPort()
        .withProtocol("TCP")
        .withPort(new IntOrString(svc.getHttpPort()))
        .endPort()
        .endIngress()
        .endSpec()
        .build();
  }
}
