package dev.longctx.operator;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.fabric8.kubernetes.api.model.rbac.RoleBinding;
import io.fabric8.kubernetes.api.model.rbac.Subject;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.javaoperatorsdk.operator.api.reconciler.Workflow;
import io.javaoperatorsdk.operator.api.reconciler.dependent.Deleter;
import io.javaoperatorsdk.operator.api.reconciler.dependent.Dependent;
import io.javaoperatorsdk.operator.processing.dependent.Creator;
import io.javaoperatorsdk.operator.processing.dependent.Updater;
import io.javaoperatorsdk.operator.processing.dependent.kubernetes.KubernetesDependentResource;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * RBAC as sets of permissions ({@code group/resource verb}), read from manifests or derived from
 * the reconciler's code, for the RBAC checks.
 */
final class Rbac {

  private Rbac() {}

  /** The operator's ServiceAccount in deploy/base. */
  static final String SERVICE_ACCOUNT = "longctx-operator";

  /** Every object of a multi-document YAML file. */
  static List<HasMetadata> load(Path file) {
    try {
      List<HasMetadata> out = new ArrayList<>();
      for (String doc : Pattern.compile("(?m)^---\\s*$").split(Files.readString(file))) {
        if (doc.lines().anyMatch(l -> l.startsWith("kind:"))) {
          out.add(Serialization.unmarshal(doc));
        }
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** One permission; {@code core} names the core group, {@code *} in a grant matches anything. */
  record Permission(String group, String resource, String verb) implements Comparable<Permission> {
    static Permission of(String group, String resource, String verb) {
      return new Permission(group.isEmpty() ? "core" : group, resource, verb);
    }

    boolean covers(Permission need) {
      return (group.equals("*") || group.equals(need.group))
          && (resource.equals("*") || resource.equals(need.resource))
          && (verb.equals("*") || verb.equals(need.verb));
    }

    @Override
    public int compareTo(Permission o) {
      return toString().compareTo(o.toString());
    }

    @Override
    public String toString() {
      return group + "/" + resource + " " + verb;
    }
  }

  static Set<Permission> permissions(Collection<PolicyRule> rules) {
    Set<Permission> out = new TreeSet<>();
    for (PolicyRule r : rules) {
      for (String g : r.getApiGroups()) {
        for (String res : r.getResources()) {
          for (String v : r.getVerbs()) {
            out.add(Permission.of(g, res, v));
          }
        }
      }
    }
    return out;
  }

  /** What {@code granted} lacks of {@code needed}. */
  static Set<Permission> missing(Set<Permission> needed, Set<Permission> granted) {
    Set<Permission> out = new TreeSet<>();
    for (Permission n : needed) {
      if (granted.stream().noneMatch(g -> g.covers(n))) {
        out.add(n);
      }
    }
    return out;
  }

  /** Rules of the ClusterRoles bound to the ServiceAccount by a ClusterRoleBinding. */
  static Set<Permission> clusterGrants(List<HasMetadata> objects, String serviceAccount) {
    return grants(objects, serviceAccount, true);
  }

  /** Rules of the Roles bound to the ServiceAccount by a RoleBinding (the operator's namespace). */
  static Set<Permission> namespaceGrants(List<HasMetadata> objects, String serviceAccount) {
    return grants(objects, serviceAccount, false);
  }

  private static Set<Permission> grants(
      List<HasMetadata> objects, String serviceAccount, boolean clusterWide) {
    Set<String> roles = new TreeSet<>();
    for (HasMetadata o : objects) {
      if (clusterWide
          && o instanceof ClusterRoleBinding b
          && bindsTo(b.getSubjects(), serviceAccount)) {
        roles.add(b.getRoleRef().getName());
      } else if (!clusterWide
          && o instanceof RoleBinding b
          && "Role".equals(b.getRoleRef().getKind())
          && bindsTo(b.getSubjects(), serviceAccount)) {
        roles.add(b.getRoleRef().getName());
      }
    }
    List<PolicyRule> rules = new ArrayList<>();
    for (HasMetadata o : objects) {
      if (!roles.contains(o.getMetadata().getName())) {
        continue;
      }
      if (clusterWide && o instanceof ClusterRole r) {
        rules.addAll(r.getRules());
      } else if (!clusterWide && o instanceof Role r) {
        rules.addAll(r.getRules());
      }
    }
    return permissions(rules);
  }

  private static boolean bindsTo(List<Subject> subjects, String serviceAccount) {
    return subjects.stream()
        .anyMatch(s -> "ServiceAccount".equals(s.getKind()) && serviceAccount.equals(s.getName()));
  }

  /**
   * What the reconciler needs in every namespace it watches, from its code: read and watch its own
   * resources and patch their status ({@code UpdateControl.patchStatus}); for each dependent of the
   * {@link Workflow}, watch its type (JOSDK informers) and create / update+patch / delete as the
   * dependent implements {@link Creator}, {@link Updater}, {@link Deleter}; record Events.
   */
  static Set<Permission> neededByTheCode() {
    Set<Permission> out = new TreeSet<>();
    String group = HasMetadata.getGroup(LongContextModel.class);
    String plural = HasMetadata.getPlural(LongContextModel.class);
    for (String v : List.of("get", "list", "watch")) {
      out.add(Permission.of(group, plural, v));
    }
    out.add(Permission.of(group, plural + "/status", "patch"));
    Workflow workflow = LongContextModelReconciler.class.getAnnotation(Workflow.class);
    for (Dependent d : workflow.dependents()) {
      Object dependent;
      try {
        dependent = d.type().getConstructor().newInstance();
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("cannot instantiate " + d.type(), e);
      }
      Class<? extends HasMetadata> type =
          ((KubernetesDependentResource<?, ?>) dependent).resourceType();
      String g = HasMetadata.getGroup(type);
      String r = HasMetadata.getPlural(type);
      for (String v : List.of("get", "list", "watch")) {
        out.add(Permission.of(g, r, v));
      }
      if (dependent instanceof Creator<?, ?>) {
        out.add(Permission.of(g, r, "create"));
      }
      if (dependent instanceof Updater<?, ?>) {
        out.add(Permission.of(g, r, "update"));
        out.add(Permission.of(g, r, "patch"));
      }
      if (dependent instanceof Deleter<?>) {
        out.add(Permission.of(g, r, "delete"));
      }
    }
    out.add(Permission.of("", "events", "create"));
    return out;
  }

  /** Leader election (JOSDK's LeaderElectionManager) in the operator's own namespace. */
  static Set<Permission> neededForLeaderElection() {
    Set<Permission> out = new TreeSet<>();
    for (String v : List.of("get", "create", "update")) {
      out.add(Permission.of("coordination.k8s.io", "leases", v));
    }
    return out;
  }
}
