package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/** The Service clients use: {@code <name>.<namespace>.svc}, gRPC and HTTP ports. */
public class CoordinatorServiceDependent extends HashMatchingDependent<Service> {

  public CoordinatorServiceDependent() {
    super(Service.class);
  }

  @Override
  protected Service build(LongContextModel m, Context<LongContextModel> context) {
    var svc = m.getSpec().getService();
    return new ServiceBuilder()
        .withMetadata(Meta.of(m, Names.coordinatorService(m), Names.COORDINATOR))
        .withNewSpec()
        .withType(svc.getType())
        .withSelector(Names.selector(m, Names.COORDINATOR))
        .addNewPort()
        .withName("grpc")
        .withAppProtocol("kubernetes.io/h2c")
        .withPort(svc.getGrpcPort())
        .withNewTargetPort("grpc")
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
