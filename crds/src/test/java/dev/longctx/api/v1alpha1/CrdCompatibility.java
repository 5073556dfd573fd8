package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.databind.JsonNode;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinition;
import io.fabric8.kubernetes.api.model.apiextensions.v1.CustomResourceDefinitionVersion;
import io.fabric8.kubernetes.api.model.apiextensions.v1.JSONSchemaProps;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * Checks that a new CRD still accepts every object the released one accepted and keeps every field
 * it stored, so that resources created under the released CRD survive an upgrade of the operator:
 * no served version dropped, no field removed, no type narrowed ({@code integer → number} and
 * {@code int32 → int64} are widenings), no new required field, no enum value removed nor an enum
 * put on a free field, no range, length or count tightened, no pattern added or changed, no pruning
 * of fields that were preserved. Descriptions, defaults and new optional fields are free to change.
 */
final class CrdCompatibility {

  private CrdCompatibility() {}

  /** The incompatibilities of {@code next} against {@code released}, each naming its path. */
  static List<String> check(CustomResourceDefinition released, CustomResourceDefinition next) {
    List<String> out = new ArrayList<>();
    if (!Objects.equals(released.getSpec().getGroup(), next.getSpec().getGroup())
        || !Objects.equals(
            released.getSpec().getNames().getPlural(), next.getSpec().getNames().getPlural())) {
      out.add("the CRD's group or plural name changed");
    }
    for (CustomResourceDefinitionVersion old : released.getSpec().getVersions()) {
      Optional<CustomResourceDefinitionVersion> now =
          next.getSpec().getVersions().stream()
              .filter(v -> v.getName().equals(old.getName()))
              .findFirst();
      if (now.isEmpty() || !Boolean.TRUE.equals(now.get().getServed())) {
        out.add(old.getName() + ": version no longer served");
        continue;
      }
      if (old.getSubresources() != null) {
        if (old.getSubresources().getStatus() != null
            && (now.get().getSubresources() == null
                || now.get().getSubresources().getStatus() == null)) {
          out.add(old.getName() + ": status subresource removed");
        }
        if (old.getSubresources().getScale() != null
            && (now.get().getSubresources() == null
                || !Objects.equals(
                    old.getSubresources().getScale(), now.get().getSubresources().getScale()))) {
          out.add(old.getName() + ": scale subresource removed or changed");
        }
      }
      schema(
          old.getName(),
          old.getSchema().getOpenAPIV3Schema(),
          now.get().getSchema().getOpenAPIV3Schema(),
          out);
    }
    return out;
  }

  private static void schema(
      String path, JSONSchemaProps old, JSONSchemaProps now, List<String> out) {
    if (old == null) {
      return;
    }
    if (now == null) {
      out.add(path + ": schema removed");
      return;
    }
    type(path, old, now, out);
    enums(path, old, now, out);
    bounds(path, old, now, out);
    if (isTrue(old.getXKubernetesPreserveUnknownFields())
        && !isTrue(now.getXKubernetesPreserveUnknownFields())) {
      out.add(path + ": unknown fields were preserved and would now be pruned");
    }
    if (isTrue(old.getXKubernetesIntOrString()) && !isTrue(now.getXKubernetesIntOrString())) {
      out.add(path + ": no longer accepts both integers and strings");
    }
    if (isTrue(old.getNullable()) && !isTrue(now.getNullable())) {
      out.add(path + ": no longer nullable");
    }

    Set<String> required = new HashSet<>(orEmpty(now.getRequired()));
    required.removeAll(orEmpty(old.getRequired()));
    for (String r : required.stream().sorted().toList()) {
      out.add(path + "." + r + ": newly required");
    }

    Map<String, JSONSchemaProps> oldProps = old.getProperties();
    Map<String, JSONSchemaProps> newProps = now.getProperties();
    if (oldProps != null) {
      for (var e : oldProps.entrySet()) {
        String p = path + "." + e.getKey();
        if (newProps == null || !newProps.containsKey(e.getKey())) {
          if (!isTrue(now.getXKubernetesPreserveUnknownFields())) {
            out.add(p + ": field removed");
          }
          continue;
        }
        schema(p, e.getValue(), newProps.get(e.getKey()), out);
      }
    }
    if (old.getItems() != null) {
      schema(
          path + "[]",
          old.getItems().getSchema(),
          now.getItems() == null ? null : now.getItems().getSchema(),
          out);
    }
    if (old.getAdditionalProperties() != null
        && old.getAdditionalProperties().getSchema() != null) {
      schema(
          path + "{}",
          old.getAdditionalProperties().getSchema(),
          now.getAdditionalProperties() == null ? null : now.getAdditionalProperties().getSchema(),
          out);
    }
  }

  private static void type(
      String path, JSONSchemaProps old, JSONSchemaProps now, List<String> out) {
    String o = old.getType();
    String n = now.getType();
    if (o != null && !o.equals(n) && !("integer".equals(o) && "number".equals(n))) {
      out.add(path + ": type narrowed or changed from " + o + " to " + n);
    }
    String of = old.getFormat();
    String nf = now.getFormat();
    if (nf != null && !nf.equals(of) && !("int32".equals(of) && "int64".equals(nf))) {
      out.add(path + ": format changed from " + of + " to " + nf);
    }
  }

  private static void enums(
      String path, JSONSchemaProps old, JSONSchemaProps now, List<String> out) {
    List<JsonNode> n = now.getEnum();
    if (n == null || n.isEmpty()) {
      return;
    }
    List<JsonNode> o = old.getEnum();
    if (o == null || o.isEmpty()) {
      out.add(path + ": enum " + n + " added to a field that took any value");
      return;
    }
    for (JsonNode v : o) {
      if (!n.contains(v)) {
        out.add(path + ": enum value " + v + " removed");
      }
    }
  }

  private static void bounds(
      String path, JSONSchemaProps old, JSONSchemaProps now, List<String> out) {
    lower(path, "minimum", old.getMinimum(), now.getMinimum(), out);
    upper(path, "maximum", old.getMaximum(), now.getMaximum(), out);
    if (!isTrue(old.getExclusiveMinimum()) && isTrue(now.getExclusiveMinimum())) {
      out.add(path + ": minimum made exclusive");
    }
    if (!isTrue(old.getExclusiveMaximum()) && isTrue(now.getExclusiveMaximum())) {
      out.add(path + ": maximum made exclusive");
    }
    lower(path, "minLength", old.getMinLength(), now.getMinLength(), out);
    upper(path, "maxLength", old.getMaxLength(), now.getMaxLength(), out);
    lower(path, "minItems", old.getMinItems(), now.getMinItems(), out);
    upper(path, "maxItems", old.getMaxItems(), now.getMaxItems(), out);
    lower(path, "minProperties", old.getMinProperties(), now.getMinProperties(), out);
    upper(path, "maxProperties", old.getMaxProperties(), now.getMaxProperties(), out);
    if (now.getPattern() != null && !now.getPattern().equals(old.getPattern())) {
      out.add(path + ": pattern changed from " + old.getPattern() + " to " + now.getPattern());
    }
  }

  /** A lower bound may only be removed or lowered. */
  private static void lower(String path, String what, Number old, Number now, List<String> out) {
    if (now != null && (old == null || now.doubleValue() > old.doubleValue())) {
      out.add(path + ": " + what + " raised from " + old + " to " + now);
    }
  }

  /** An upper bound may only be removed or raised. */
  private static void upper(String path, String what, Number old, Number now, List<String> out) {
    if (now != null && (old == null || now.doubleValue() < old.doubleValue())) {
      out.add(path + ": " + what + " lowered from " + old + " to " + now);
    }
  }

  private static boolean isTrue(Boolean b) {
    return Boolean.TRUE.equals(b);
  }

  private static List<String> orEmpty(List<String> l) {
    return l == null ? List.of() : l;
  }
}
