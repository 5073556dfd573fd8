package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.ConfigMapBuilder;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import java.util.Map;

/** The engine configuration ({@link EngineConfig}) mounted by workers and coordinator. */
public class ConfigMapDependent extends HashMatchingDependent<ConfigMap> {

  public ConfigMapDependent() {
    super(ConfigMap.class);
  }

  @Override
  protected ConfigMap build(LongContextModel m, Context<LongContextModel> context) {
    return new ConfigMapBuilder()
        .withMetadata(Meta.of(m, Names.config(m), null))
        .withData(Map.of(EngineConfig.FILE, engineProperties(m)))
        .build();
  }

  static String engineProperties(LongContextModel m) {
    return EngineConfig.render(
        m, ModelMount.of(m, m.getSpec().getWorkers().getImage()).modelPath());
  }
}
