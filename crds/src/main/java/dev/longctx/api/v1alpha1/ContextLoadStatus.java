package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;

/** Context load (DESIGN.md §5) as last read from the coordinator. */
public class ContextLoadStatus {

  @JsonPropertyDescription("KV tokens resident on ready workers.")
  private long residentTokens = 0;

  @JsonPropertyDescription("Prompt tokens queued for prefill.")
  private long queuedTokens = 0;

  @JsonPropertyDescription("KV token capacity of ready workers.")
  private long capacityTokens = 0;

  @JsonPropertyDescription("(residentTokens + queuedTokens) / capacityTokens; 0 when no capacity.")
  private double utilization = 0;

  @JsonPropertyDescription("When the coordinator took this reading (RFC 3339); empty: never read.")
  private String observedAt = "";

  public long getResidentTokens() {
    return residentTokens;
  }

  public void setResidentTokens(long residentTokens) {
    this.residentTokens = residentTokens;
  }

  public long getQueuedTokens() {
    return queuedTokens;
  }

  public void setQueuedTokens(long queuedTokens) {
    this.queuedTokens = queuedTokens;
  }

  public long getCapacityTokens() {
    return capacityTokens;
  }

  public void setCapacityTokens(long capacityTokens) {
    this.capacityTokens = capacityTokens;
  }

  public double getUtilization() {
    return utilization;
  }

  public void setUtilization(double utilization) {
    this.utilization = utilization;
  }

  public String getObservedAt() {
    return observedAt;
  }

  public void setObservedAt(String observedAt) {
    this.observedAt = observedAt == null ? "" : observedAt;
  }
}
