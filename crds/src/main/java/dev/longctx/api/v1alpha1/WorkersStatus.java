package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.kubernetes.model.annotation.LabelSelector;
import io.fabric8.kubernetes.model.annotation.StatusReplicas;

/** Worker pool size as the operator sees it; also the /scale subresource's status. */
public class WorkersStatus {

  @JsonPropertyDescription("Worker pods the operator wants (fixed replicas or the autoscaler's).")
  private int desired = 0;

  @StatusReplicas
  @JsonPropertyDescription("Worker pods that exist (the StatefulSet's status.replicas).")
  private int current = 0;

  @JsonPropertyDescription("Worker pods that are ready.")
  private int ready = 0;

  @JsonPropertyDescription("ready/desired, for kubectl get.")
  private String summary = "0/0";

  @LabelSelector
  @JsonPropertyDescription("Label selector of the worker pods (for HPA and KEDA).")
  private String selector = "";

  public int getDesired() {
    return desired;
  }

  public void setDesired(int desired) {
    this.desired = desired;
  }

  public int getCurrent() {
    return current;
  }

  public void setCurrent(int current) {
    this.current = current;
  }

  public int getReady() {
    return ready;
  }

  public void setReady(int ready) {
    this.ready = ready;
  }

  public String getSummary() {
    return summary;
  }

  public void setSummary(String summary) {
    this.summary = summary == null ? "" : summary;
  }

  public String getSelector() {
    return selector;
  }

  public void setSelector(String selector) {
    this.selector = selector == null ? "" : selector;
  }
}
