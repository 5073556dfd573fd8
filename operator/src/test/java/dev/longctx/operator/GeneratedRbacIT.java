package dev.longctx.operator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.operator.Rbac.Permission;
import io.fabric8.kubernetes.api.model.HasMetadata;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Runs after {@code package} (failsafe), when quarkus-kubernetes has written the RBAC that QOSDK
 * generates from the code into {@code target/kubernetes/kubernetes.yml}, and compares it with the
 * RBAC users install from {@code deploy/base}.
 *
 * <p>For the objects the operator owns, every generated permission must be granted. For its own
 * resource QOSDK grants every verb on the resource and its subresources, more than the reconciler
 * uses; there the deploy grants what {@link Rbac#neededByTheCode()} derives (read, watch, patch
 * status), and this test checks that derivation is a part of QOSDK's.
 */
class GeneratedRbacIT {

  static final Path GENERATED = Path.of("target", "kubernetes", "kubernetes.yml");
  static final String OWN_GROUP = "longctx.dev";

  static Set<Permission> generated() {
    assertThat(GENERATED).as("written by quarkus-kubernetes at package time").exists();
    List<HasMetadata> objects = Rbac.load(GENERATED);
    return Rbac.clusterGrants(objects, Rbac.SERVICE_ACCOUNT);
  }

  @Test
  void theDeployRbacGrantsWhatQosdkGeneratesForTheOwnedObjects() {
    Set<Permission> owned = new TreeSet<>(generated());
    owned.removeIf(p -> p.group().equals(OWN_GROUP));
    assertThat(owned).as("QOSDK generated rules for the dependents").isNotEmpty();

    Set<Permission> deploy =
        Rbac.clusterGrants(Rbac.load(RbacTest.DEPLOY_RBAC), Rbac.SERVICE_ACCOUNT);

    assertThat(Rbac.missing(owned, deploy))
        .as("generated in %s but not granted by %s", GENERATED, RbacTest.DEPLOY_RBAC)
        .isEmpty();
  }

  @Test
  void whatTheCodeDerivationNeedsQosdkAlsoGenerates() {
    Set<Permission> needed = new TreeSet<>(Rbac.neededByTheCode());
    // Events are recorded by our own code (Events.record), which QOSDK cannot see.
    needed.remove(Permission.of("", "events", "create"));

    assertThat(Rbac.missing(needed, generated())).isEmpty();
  }
}
