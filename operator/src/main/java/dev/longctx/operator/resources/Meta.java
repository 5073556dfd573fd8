package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.ObjectMeta;
import io.fabric8.kubernetes.api.model.ObjectMetaBuilder;
import java.util.LinkedHashMap;

/** Metadata of an owned object; the owner reference is added by JOSDK. */
final class Meta {

  private Meta() {}

  static ObjectMeta of(LongContextModel m, String name, String component) {
    return new ObjectMetaBuilder()
        .withName(name)
        .withNamespace(m.getMetadata().getNamespace())
        .withLabels(component == null ? Names.labels(m) : Names.labels(m, component))
        .withAnnotations(new LinkedHashMap<>())
        .build();
  }
}
