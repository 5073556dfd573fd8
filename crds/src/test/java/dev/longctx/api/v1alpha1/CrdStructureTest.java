package dev.longctx.api.v1alpha1;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceColumnDefinition;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinition;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinitionVersion;
import io.fabric8.kubernetes.api.model.apiextensions.v1.JSONSchemaProps;
import io.fabric8.kubernetes.api.model.apiextensions.v1.ValidationRule;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** What users and tools rely on in the committed CRD: names, subresources, columns, validation. */
class CrdStructureTest {

  static CustomResourceDefinition crd;
  static CustomResourceDefinitionVersion v1alpha1;
  static JSONSchemaProps spec;

  @BeforeAll
  static void load() throws IOException {
    crd =
        Serialization.unmarshal(
            Files.readString(Path.of(CrdFreshnessTest.FILE)), CustomResourceDefinition.class);
    v1alpha1 = crd.getSpec().getVersions().getFirst();
    spec = v1alpha1.getSchema().getOpenAPIV3Schema().getProperties().get("spec");
  }

  static JSONSchemaProps at(JSONSchemaProps root, String dottedPath) {
    JSONSchemaProps p = root;
    for (String name : dottedPath.split("\\.")) {
      assertThat(p.getProperties()).as("schema property %s", dottedPath).containsKey(name);
      p = p.getProperties().get(name);
    }
    return p;
  }

  @Test
  void namesGroupAndVersionAreTheApi() {
    assertThat(crd.getMetadata().getName()).isEqualTo("longcontextmodels.longctx.dev");
    assertThat(crd.getSpec().getGroup()).isEqualTo("longctx.dev");
    assertThat(crd.getSpec().getScope()).isEqualTo("Namespaced");
    assertThat(crd.getSpec().getNames().getKind()).isEqualTo("LongContextModel");
    assertThat(crd.getSpec().getNames().getShortNames()).containsExactly("lcm");
    assertThat(crd.getSpec().getVersions()).hasSize(1);
    assertThat(v1alpha1.getName()).isEqualTo("v1alpha1");
    assertThat(v1alpha1.getServed()).isTrue();
    assertThat(v1alpha1.getStorage()).isTrue();
  }

  @Test
  void statusAndScaleSubresourcesPointAtTheWorkerPool() {
    assertThat(v1alpha1.getSubresources().getStatus()).isNotNull();
    var scale = v1alpha1.getSubresources().getScale();
    assertThat(scale.getSpecReplicasPath()).isEqualTo(".spec.workers.replicas");
    assertThat(scale.getStatusReplicasPath()).isEqualTo(".status.workers.current");
    assertThat(scale.getLabelSelectorPath()).isEqualTo(".status.workers.selector");
  }

  @Test
  void printerColumnsShowReadyWorkersLoadEndpointAge() {
    assertThat(v1alpha1.getAdditionalPrinterColumns())
        .extracting(CustomResourceColumnDefinition::getName)
        .containsExactlyInAnyOrder("Ready", "Workers", "Load", "Endpoint", "Age");
    Map<String, String> paths =
        v1alpha1.getAdditionalPrinterColumns().stream()
            .collect(
                java.util.stream.Collectors.toMap(
                    CustomResourceColumnDefinition::getName,
                    CustomResourceColumnDefinition::getJsonPath));
    assertThat(paths)
        .containsEntry("Ready", ".status.conditions[?(@.type==\"Ready\")].status")
        .containsEntry("Age", ".metadata.creationTimestamp");
  }

  @Test
  void celRulesGuardScalingAndSelfExtend() {
    assertThat(spec.getXKubernetesValidations())
        .extracting(ValidationRule::getRule)
        .containsExactly(
            "!has(self.autoscaling) || !has(self.workers) || !has(self.workers.replicas)");
    assertThat(at(spec, "autoscaling").getXKubernetesValidations())
        .extracting(ValidationRule::getRule)
        .containsExactly("self.minReplicas <= self.maxReplicas");
    assertThat(at(spec, "context.selfExtend").getXKubernetesValidations())
        .extracting(ValidationRule::getRule)
        .containsExactly("self.neighborWindow % self.groupSize == 0");
    assertThat(at(spec, "attention").getXKubernetesValidations())
        .extracting(ValidationRule::getRule)
        .containsExactly(
            "!has(self.indexer) || self.indexer == 'own-heads' || self.method == 'indexer-topk'",
            "has(self.indexer) && self.indexer == 'file' ? has(self.indexerFile) &&"
                + " self.indexerFile != '' : !has(self.indexerFile) || self.indexerFile == ''");
  }

  @Test
  void rangesEnumsAndDefaultsAreInTheSchema() {
    assertThat(spec.getRequired()).containsExactly("model");
    assertThat(at(spec, "model").getRequired()).containsExactly("uri");
    assertThat(at(spec, "model.uri").getPattern()).isEqualTo("^(hf|s3|pvc|file|http|https)://.+$");
    assertThat(at(spec, "model.format").getEnum())
        .extracting(j -> j.asText())
        .containsExactlyInAnyOrder("auto", "gguf", "llama2c", "safetensors");
    assertThat(at(spec, "attention.method").getEnum())
        .extracting(j -> j.asText())
        .containsExactlyInAnyOrder("dense", "indexer-topk", "block-topk");
    assertThat(at(spec, "attention.indexer").getEnum())
        .extracting(j -> j.asText())
        .containsExactlyInAnyOrder("own-heads", "model", "file");
    assertThat(at(spec, "attention.indexer").getDefault().asText()).isEqualTo("own-heads");
    assertThat(at(spec, "autoscaling.targetContextLoad").getMinimum()).isEqualTo(0.05);
    assertThat(at(spec, "autoscaling.targetContextLoad").getMaximum()).isEqualTo(1.0);
    assertThat(at(spec, "workers.kvCacheTokens").getMinimum()).isEqualTo(1.0);
    assertThat(at(spec, "workers.gpu").getMaximum()).isEqualTo(16.0);
    assertThat(at(spec, "workers.kvCacheType").getEnum())
        .extracting(j -> j.asText())
        .containsExactlyInAnyOrder("f32", "f16");
    assertThat(at(spec, "workers.kvCacheType").getDefault().asText()).isEqualTo("f32");
    assertThat(at(spec, "workers.cudaGraphs").getType()).isEqualTo("boolean");
    assertThat(at(spec, "workers.cudaGraphs").getDefault().asBoolean()).isFalse();
    assertThat(at(spec, "workers.int8Activations").getType()).isEqualTo("boolean");
    assertThat(at(spec, "workers.int8Activations").getDefault().asBoolean()).isFalse();
    assertThat(at(spec, "service.grpcPort").getDefault().asInt()).isEqualTo(9000);
    assertThat(at(spec, "service.shardPort").getDefault().asInt()).isEqualTo(9100);
    assertThat(at(spec, "workers.replicas").getDefault())
        .as("replicas must have no default, or it would always clash with autoscaling")
        .isNull();
  }

  @Test
  void everyPropertyIsDescribedAndNoDefaultIsNull() {
    assertDescribed("spec", spec);
    assertDescribed(
        "status", v1alpha1.getSchema().getOpenAPIV3Schema().getProperties().get("status"));
  }

  /** Our own properties carry descriptions; embedded Kubernetes types (resources, env) do too. */
  static void assertDescribed(String path, JSONSchemaProps p) {
    if (p.getDefault() != null) {
      assertThat(p.getDefault().isNull()).as("default of %s", path).isFalse();
    }
    if (p.getProperties() == null || isKubernetesType(path)) {
      return;
    }
    p.getProperties()
        .forEach(
            (name, child) -> {
              assertThat(child.getDescription())
                  .as("description of %s.%s", path, name)
                  .isNotBlank();
              assertDescribed(path + "." + name, child);
            });
  }

  static boolean isKubernetesType(String path) {
    return path.endsWith(".resources")
        || path.endsWith(".env")
        || path.endsWith(".tolerations")
        || path.endsWith(".conditions");
  }
}
