package dev.longctx.api.v1alpha1;

import io.fabric8.crd.generator.annotation.AdditionalPrinterColumn;
import io.fabric8.kubernetes.api.model.Namespaced;
import io.fabric8.kubernetes.client.CustomResource;
import io.fabric8.kubernetes.model.annotation.Group;
import io.fabric8.kubernetes.model.annotation.Kind;
import io.fabric8.kubernetes.model.annotation.Plural;
import io.fabric8.kubernetes.model.annotation.ShortNames;
import io.fabric8.kubernetes.model.annotation.Singular;
import io.fabric8.kubernetes.model.annotation.Version;

/**
 * A long-context model served on Kubernetes: a pool of worker (shard) pods holding the model and
 * the KV cache of the sequence ranges placed on them, plus a coordinator that clients talk to.
 */
@Group(LongContextModel.GROUP)
@Version(LongContextModel.VERSION)
@Kind("LongContextModel")
@Plural("longcontextmodels")
@Singular("longcontextmodel")
@ShortNames("lcm")
@AdditionalPrinterColumn(
    name = "Ready",
    jsonPath = ".status.conditions[?(@.type==\"Ready\")].status",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(
    name = "Workers",
    jsonPath = ".status.workers.summary",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(
    name = "Load",
    jsonPath = ".status.contextLoad.utilization",
    type = AdditionalPrinterColumn.Type.NUMBER)
@AdditionalPrinterColumn(
    name = "Endpoint",
    jsonPath = ".status.endpoint",
    type = AdditionalPrinterColumn.Type.STRING)
@AdditionalPrinterColumn(
    name = "Age",
    jsonPath = ".metadata.creationTimestamp",
    type = AdditionalPrinterColumn.Type.DATE)
public class LongContextModel extends CustomResource<LongContextModelSpec, LongContextModelStatus>
    implements Namespaced {

  public static final String GROUP = "longctx.dev";
  public static final String VERSION = "v1alpha1";

  @Override
  protected LongContextModelSpec initSpec() {
    return new LongContextModelSpec();
  }

  /**
   * No status until the operator writes one: a default status in a freshly read object would make
   * the operator's status patch a diff against fields the API server never stored.
   */
  @Override
  protected LongContextModelStatus initStatus() {
    return null;
  }

  /** The status, created empty first if the operator has not written one yet. */
  public LongContextModelStatus statusOrInit() {
    if (getStatus() == null) {
      setStatus(new LongContextModelStatus());
    }
    return getStatus();
  }
}
