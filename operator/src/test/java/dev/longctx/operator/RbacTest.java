package dev.longctx.operator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.operator.Rbac.Permission;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The RBAC a user installs from {@code deploy/base} grants everything the reconciler's code needs:
 * permissions derived from the dependents of its {@code @Workflow} (the resource type and the
 * Creator/Updater/Deleter interfaces of each), its own resource and status, Events, and the leader
 * election Lease. {@code GeneratedRbacIT} compares the same manifests with what QOSDK generates at
 * package time.
 */
class RbacTest {

  static final Path DEPLOY_RBAC = Path.of("..", "deploy", "base", "rbac.yaml");

  @Test
  void theDerivedNeedsCoverEveryDependentTheWorkflowDeclares() {
    Set<Permission> needed = Rbac.neededByTheCode();

    assertThat(needed)
        .contains(
            Permission.of("apps", "statefulsets", "create"),
            Permission.of("apps", "statefulsets", "update"),
            Permission.of("apps", "deployments", "delete"),
            Permission.of("", "configmaps", "watch"),
            Permission.of("", "persistentvolumeclaims", "create"),
            Permission.of("policy", "poddisruptionbudgets", "patch"),
            Permission.of("networking.k8s.io", "networkpolicies", "create"),
            Permission.of("", "serviceaccounts", "create"),
            Permission.of("longctx.dev", "longcontextmodels/status", "patch"),
            Permission.of("", "events", "create"));
  }

  @Test
  void theDeployClusterRoleGrantsEverythingTheCodeNeeds() {
    List<HasMetadata> deploy = Rbac.load(DEPLOY_RBAC);

    assertThat(
            Rbac.missing(Rbac.neededByTheCode(), Rbac.clusterGrants(deploy, Rbac.SERVICE_ACCOUNT)))
        .as("permissions the operator needs that %s does not grant", DEPLOY_RBAC)
        .isEmpty();
  }

  @Test
  void theDeployRoleGrantsLeaderElectionInTheOperatorNamespace() {
    List<HasMetadata> deploy = Rbac.load(DEPLOY_RBAC);

    assertThat(
            Rbac.missing(
                Rbac.neededForLeaderElection(), Rbac.namespaceGrants(deploy, Rbac.SERVICE_ACCOUNT)))
        .isEmpty();
  }

  @Test
  void aVerbRemovedFromTheDeployRbacIsReported() {
    List<HasMetadata> deploy = Rbac.load(DEPLOY_RBAC);
    ClusterRole role =
        deploy.stream()
            .filter(ClusterRole.class::isInstance)
            .map(ClusterRole.class::cast)
            .findFirst()
            .orElseThrow();
    // the rule for statefulsets also grants deployments
    role.getRules().stream()
        .filter(r -> r.getResources().contains("statefulsets"))
        .forEach(r -> r.setVerbs(r.getVerbs().stream().filter(v -> !v.equals("delete")).toList()));
    role.getRules().removeIf(r -> r.getResources().contains("events"));

    assertThat(
            Rbac.missing(Rbac.neededByTheCode(), Rbac.clusterGrants(deploy, Rbac.SERVICE_ACCOUNT)))
        .containsExactly(
            Permission.of("apps", "deployments", "delete"),
            Permission.of("apps", "statefulsets", "delete"),
            Permission.of("", "events", "create"));
  }

  @Test
  void aRoleThatIsNotBoundToTheOperatorGrantsNothing() {
    List<HasMetadata> deploy = Rbac.load(DEPLOY_RBAC);
    deploy.removeIf(o -> o.getKind().equals("ClusterRoleBinding"));

    assertThat(Rbac.clusterGrants(deploy, Rbac.SERVICE_ACCOUNT)).isEmpty();
  }
}
