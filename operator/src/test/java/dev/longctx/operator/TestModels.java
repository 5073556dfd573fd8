package dev.longctx.operator;

import dev.longctx.api.v1alpha1.AutoscalingSpec;
import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinition;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Sample resources and cluster set-up shared by the operator tests. */
public final class TestModels {

  private TestModels() {}

  /** Creates the committed CRD in the (mock) cluster, as a real install does first. */
  public static void createCrd(KubernetesClient client) {
    try {
      String yaml = Files.readString(Path.of("..", "crds", "longcontextmodels.longctx.dev-v1.yml"));
      client
          .apiextensions()
          .v1()
          .customResourceDefinitions()
          .resource(Serialization.unmarshal(yaml, CustomResourceDefinition.class))
          .createOr(existing -> existing.update());
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A small CPU model baked into the image, two fixed workers. */
  public static LongContextModel cpu(String name, String namespace) {
    LongContextModel m = new LongContextModel();
    m.setMetadata(new ObjectMetaBuilder().withName(name).withNamespace(namespace).build());
    m.getSpec().getModel().setUri("file:///models/stories260K.bin");
    m.getSpec().getModel().setFormat(dev.longctx.api.v1alpha1.ModelSource.Format.LLAMA2C);
    m.getSpec().getWorkers().setReplicas(2);
    m.getSpec().getWorkers().setKvCacheTokens(4096);
    return m;
  }

  /** A model autoscaled between 1 and 4 workers of 1000 tokens each, target 0.5. */
  public static LongContextModel autoscaled(String name, String namespace) {
    LongContextModel m = cpu(name, namespace);
    m.getSpec().getWorkers().setReplicas(null);
    m.getSpec().getWorkers().setKvCacheTokens(1000);
    AutoscalingSpec a = new AutoscalingSpec();
    a.setMinReplicas(1);
    a.setMaxReplicas(4);
    a.setTargetContextLoad(0.5);
    a.setScaleDownDelaySeconds(60);
    a.setPollIntervalSeconds(1);
    a.setStaleAfterSeconds(30);
    m.getSpec().setAutoscaling(a);
    return m;
  }
}
