package dev.longctx.api.v1alpha1;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinition;
import io.fabric8.kubernetes.api.model.apiextensions.v1.JSONSchemaProps;
import io.fabric8.kubernetes.api.model.apiextensions.v1.JSONSchemaPropsBuilder;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The CRD generated from the API types must stay compatible with the released one kept in {@code
 * crds/released/} (Flink operator's CrdCompatibilityChecker habit): resources created under the
 * release must still validate and keep their fields after an upgrade. The other tests break a copy
 * of the released schema in each way the checker must catch, and widen it in ways it must allow.
 */
class CrdCompatibilityTest {

  static final Path RELEASED = Path.of("released", "v1alpha1.yaml");

  static CustomResourceDefinition released() throws IOException {
    return Serialization.unmarshal(Files.readString(RELEASED), CustomResourceDefinition.class);
  }

  /** The violations of the released CRD changed by {@code change}. */
  static List<String> afterChanging(Consumer<CustomResourceDefinition> change) throws IOException {
    CustomResourceDefinition next = released();
    change.accept(next);
    return CrdCompatibility.check(released(), next);
  }

  /** The schema at a dotted path below the version's root, e.g. {@code spec.attention}. */
  static JSONSchemaProps at(CustomResourceDefinition crd, String path) {
    JSONSchemaProps s = crd.getSpec().getVersions().getFirst().getSchema().getOpenAPIV3Schema();
    for (String p : path.split("\\.")) {
      s = s.getProperties().get(p);
      if (s == null) {
        throw new IllegalArgumentException("no " + path + " in the released CRD");
      }
    }
    return s;
  }

  static JsonNode text(String s) {
    return JsonNodeFactory.instance.textNode(s);
  }

  @Test
  void theGeneratedCrdIsCompatibleWithTheReleasedOne() throws IOException {
    CustomResourceDefinition generated =
        Serialization.unmarshal(CrdFreshnessTest.generate(), CustomResourceDefinition.class);

    assertThat(CrdCompatibility.check(released(), generated))
        .as(
            "the generated CRD breaks resources made under %s; keep the old fields and"
                + " constraints, or add a new API version",
            RELEASED)
        .isEmpty();
  }

  @Test
  void theReleasedCrdHasTheFieldsTheChangesBelowTouch() throws IOException {
    CustomResourceDefinition crd = released();
    assertThat(at(crd, "spec.attention.method").getEnum()).contains(text("block-topk"));
    assertThat(at(crd, "spec.attention.blockSize").getType()).isEqualTo("integer");
    assertThat(at(crd, "spec.autoscaling.targetContextLoad").getType()).isEqualTo("number");
    assertThat(at(crd, "spec.model.uri").getEnum()).isNullOrEmpty();
  }

  @Test
  void removingAFieldIsCaught() throws IOException {
    assertThat(afterChanging(c -> at(c, "spec.workers").getProperties().remove("gpu")))
        .containsExactly("v1alpha1.spec.workers.gpu: field removed");
  }

  @Test
  void narrowingATypeIsCaughtAndWideningIntegerToNumberIsAllowed() throws IOException {
    assertThat(afterChanging(c -> at(c, "spec.autoscaling.targetContextLoad").setType("integer")))
        .containsExactly(
            "v1alpha1.spec.autoscaling.targetContextLoad: type narrowed or changed from number to"
                + " integer");
    assertThat(afterChanging(c -> at(c, "spec.attention.blockSize").setType("string")))
        .containsExactly(
            "v1alpha1.spec.attention.blockSize: type narrowed or changed from integer to string");
    assertThat(afterChanging(c -> at(c, "spec.attention.blockSize").setType("number"))).isEmpty();
  }

  @Test
  void aNewRequiredFieldIsCaughtAndANewOptionalOneIsAllowed() throws IOException {
    assertThat(
            afterChanging(
                c -> {
                  var w = at(c, "spec.workers");
                  var required = new ArrayList<>(w.getRequired());
                  required.add("gpu");
                  w.setRequired(required);
                }))
        .containsExactly("v1alpha1.spec.workers.gpu: newly required");
    assertThat(
            afterChanging(
                c ->
                    at(c, "spec.workers")
                        .getProperties()
                        .put(
                            "priorityClassName",
                            new JSONSchemaPropsBuilder().withType("string").build())))
        .isEmpty();
  }

  @Test
  void removingAnEnumValueOrConstrainingAFreeFieldIsCaughtAndAddingAValueIsAllowed()
      throws IOException {
    assertThat(
            afterChanging(
                c -> at(c, "spec.attention.method").getEnum().removeIf(text("block-topk")::equals)))
        .containsExactly("v1alpha1.spec.attention.method: enum value \"block-topk\" removed");
    assertThat(
            afterChanging(
                c -> at(c, "spec.model.uri").setEnum(List.of(text("hf://org/repo/x.gguf")))))
        .singleElement()
        .asString()
        .startsWith("v1alpha1.spec.model.uri: enum [");
    assertThat(afterChanging(c -> at(c, "spec.attention.method").getEnum().add(text("ring"))))
        .isEmpty();
  }

  @Test
  void tighteningARangeIsCaughtAndLooseningItIsAllowed() throws IOException {
    assertThat(afterChanging(c -> at(c, "spec.attention.blockSize").setMinimum(2.0)))
        .containsExactly("v1alpha1.spec.attention.blockSize: minimum raised from 1.0 to 2.0");
    assertThat(afterChanging(c -> at(c, "spec.attention.blockSize").setMaximum(1024.0)))
        .containsExactly(
            "v1alpha1.spec.attention.blockSize: maximum lowered from 65536.0 to 1024.0");
    assertThat(afterChanging(c -> at(c, "spec.attention.blockSize").setMaximum(1e6))).isEmpty();
  }

  @Test
  void droppingTheVersionOrASubresourceIsCaught() throws IOException {
    assertThat(afterChanging(c -> c.getSpec().getVersions().getFirst().setServed(false)))
        .containsExactly("v1alpha1: version no longer served");
    assertThat(
            afterChanging(
                c -> c.getSpec().getVersions().getFirst().getSubresources().setScale(null)))
        .containsExactly("v1alpha1: scale subresource removed or changed");
  }
}
