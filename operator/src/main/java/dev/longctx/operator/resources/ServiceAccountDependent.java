package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.ServiceAccountBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;

/** The pods' identity; it needs no Kubernetes API access, so no token is mounted. */
public class ServiceAccountDependent extends HashMatchingDependent<ServiceAccount> {

  public ServiceAccountDependent() {
    super(ServiceAccount.class);
  }

  @Override
  protected ServiceAccount build(LongContextModel m, Context<LongContextModel> context) {
    return new ServiceAccountBuilder()
        .withMetadata(Meta.of(m, Names.serviceAccount(m), null))
        .withAutomountServiceAccountToken(false)
        .build();
  }
}
