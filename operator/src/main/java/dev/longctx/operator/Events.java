package dev.longctx.operator;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.EventBuilder;
import io.fabric8.kubernetes.api.model.ObjectReferenceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.time.Clock;
import java.time.Instant;
import java.util.UUID;
import org.jboss.logging.Logger;

/** Writes core/v1 Events about a {@link LongContextModel}; a failure to record is only logged. */
public final class Events {

  public static final String NORMAL = "Normal";
  public static final String WARNING = "Warning";
  static final String COMPONENT = "longctx-operator";

  private static final Logger LOG = Logger.getLogger(Events.class);

  private Events() {}

  public static void record(
      KubernetesClient client,
      Clock clock,
      LongContextModel m,
      String type,
      String reason,
      String message) {
    String now = Instant.now(clock).toString();
    var event =
        new EventBuilder()
            .withNewMetadata()
            .withName(
                m.getMetadata().getName() + "." + UUID.randomUUID().toString().substring(0, 13))
            .withNamespace(m.getMetadata().getNamespace())
            .endMetadata()
            .withInvolvedObject(
                new ObjectReferenceBuilder()
                    .withApiVersion(m.getApiVersion())
                    .withKind(m.getKind())
                    .withName(m.getMetadata().getName())
                    .withNamespace(m.getMetadata().getNamespace())
                    .withUid(m.getMetadata().getUid())
                    .withResourceVersion(m.getMetadata().getResourceVersion())
                    .build())
            .withType(type)
            .withReason(reason)
            .withMessage(message.length() > 1024 ? message.substring(0, 1024) : message)
            .withFirstTimestamp(now)
            .withLastTimestamp(now)
            .withCount(1)
            .withNewSource()
            .withComponent(COMPONENT)
            .endSource()
            .withReportingComponent(COMPONENT)
            .build();
    try {
      client.v1().events().inNamespace(m.getMetadata().getNamespace()).resource(event).create();
    } catch (RuntimeException e) {
      LOG.warnf(
          e, "could not record event %s on %s: %s", reason, m.getMetadata().getName(), message);
    }
  }
}
