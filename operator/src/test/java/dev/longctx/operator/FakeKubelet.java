package dev.longctx.operator;

import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.apps.DeploymentStatusBuilder;
import io.fabric8.kubernetes.api.model.apps.StatefulSet;
import io.fabric8.kubernetes.api.model.apps.StatefulSetStatusBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.util.Objects;

/**
 * What the StatefulSet and Deployment controllers and the kubelet would do on a real cluster: every
 * wanted pod exists and is ready. The mock server has no controllers.
 */
public final class FakeKubelet {

  private FakeKubelet() {}

  public static void makeReady(KubernetesClient client, String namespace) {
    for (StatefulSet s : client.apps().statefulSets().inNamespace(namespace).list().getItems()) {
      int want = s.getSpec().getReplicas();
      if (s.getStatus() == null
          || !Objects.equals(s.getStatus().getReadyReplicas(), want)
          || !Objects.equals(s.getStatus().getReplicas(), want)) {
        s.setStatus(
            new StatefulSetStatusBuilder()
                .withReplicas(want)
                .withReadyReplicas(want)
                .withAvailableReplicas(want)
                .build());
        client.resource(s).updateStatus();
      }
    }
    for (Deployment d : client.apps().deployments().inNamespace(namespace).list().getItems()) {
      int want = d.getSpec().getReplicas();
      if (d.getStatus() == null || !Objects.equals(d.getStatus().getReadyReplicas(), want)) {
        d.setStatus(
            new DeploymentStatusBuilder()
                .withReplicas(want)
                .withReadyReplicas(want)
                .withAvailableReplicas(want)
                .build());
        client.resource(d).updateStatus();
      }
    }
  }
}
