package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import java.util.LinkedHashMap;
import java.util.Map;

/** Names and labels of everything the operator creates for one {@link LongContextModel}. */
public final class Names {

  public static final String WORKER = "worker";
  public static final String COORDINATOR = "coordinator";

  public static final String LABEL_NAME = "app.kubernetes.io/name";
  public static final String LABEL_INSTANCE = "app.kubernetes.io/instance";
  public static final String LABEL_COMPONENT = "app.kubernetes.io/component";
  public static final String LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";

  /** Hash of the desired object, compared by the dependents' matcher. */
  public static final String DESIRED_HASH = "longctx.dev/desired-hash";

  /** Hash of the model source on the pod template: a model change rolls a new worker generation. */
  public static final String MODEL_GENERATION = "longctx.dev/model-generation";

  /** Hash of the engine configuration on the pod template: a config change rolls the pods. */
  public static final String CONFIG_HASH = "longctx.dev/config-hash";

  private Names() {}

  /** Coordinator Service and the user-facing name. */
  public static String coordinatorService(LongContextModel m) {
    return m.getMetadata().getName();
  }

  /** The client endpoint: the coordinator Service's cluster DNS name and gRPC port. */
  public static String endpoint(LongContextModel m) {
    return "%s.%s.svc:%d"
        .formatted(
            coordinatorService(m),
            m.getMetadata().getNamespace(),
            m.getSpec().getService().getGrpcPort());
  }

  public static String coordinator(LongContextModel m) {
    return m.getMetadata().getName() + "-coordinator";
  }

  /** Worker StatefulSet and its headless Service (same name, as the StatefulSet requires). */
  public static String workers(LongContextModel m) {
    return m.getMetadata().getName() + "-worker";
  }

  public static String workerPod(LongContextModel m, int ordinal) {
    return workers(m) + "-" + ordinal;
  }

  public static String config(LongContextModel m) {
    return m.getMetadata().getName() + "-engine";
  }

  public static String serviceAccount(LongContextModel m) {
    return m.getMetadata().getName();
  }

  public static String modelCache(LongContextModel m) {
    return m.getMetadata().getName() + "-model-cache";
  }

  public static String shardPolicy(LongContextModel m) {
    return workers(m) + "-shard-port";
  }

  /** DNS name of the headless worker Service: the coordinator resolves the shards through it. */
  public static String workersDns(LongContextModel m) {
    return workers(m) + "." + m.getMetadata().getNamespace() + ".svc.cluster.local";
  }

  /** Labels on every object of the model. */
  public static Map<String, String> labels(LongContextModel m) {
    Map<String, String> l = new LinkedHashMap<>();
    l.put(LABEL_NAME, "longctx");
    l.put(LABEL_INSTANCE, m.getMetadata().getName());
    l.put(LABEL_MANAGED_BY, "longctx-operator");
    return l;
  }

  /** Labels of one component (worker or coordinator), also its pod selector. */
  public static Map<String, String> selector(LongContextModel m, String component) {
    Map<String, String> l = new LinkedHashMap<>();
    l.put(LABEL_NAME, "longctx");
    l.put(LABEL_INSTANCE, m.getMetadata().getName());
    l.put(LABEL_COMPONENT, component);
    return l;
  }

  public static Map<String, String> labels(LongContextModel m, String component) {
    Map<String, String> l = labels(m);
    l.put(LABEL_COMPONENT, component);
    return l;
  }

  /** The worker selector as a label-selector string (status.workers.selector, for HPA/KEDA). */
  public static String selectorString(LongContextModel m, String component) {
    return String.join(
        ",",
        selector(m, component).entrySet().stream()
            .map(e -> e.getKey() + "=" + e.getValue())
            .toList());
  }
}
