package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;

/**
 * What the autoscaler remembers between reconciliations. Kept in status (not in the operator's
 * memory) so that a restarted operator continues a pending scale-down instead of restarting it.
 */
public class AutoscalerStatus {

  @JsonPropertyDescription("The last change of the pool size the autoscaler made.")
  private ScalingDecision lastDecision = new ScalingDecision();

  @JsonPropertyDescription("Lower pool size waiting for scaleDownDelaySeconds; 0: none pending.")
  private int pendingScaleDownTo = 0;

  @JsonPropertyDescription("Since when (RFC 3339) the lower size has held; empty: none pending.")
  private String pendingSince = "";

  public ScalingDecision getLastDecision() {
    return lastDecision;
  }

  public void setLastDecision(ScalingDecision lastDecision) {
    this.lastDecision = lastDecision == null ? new ScalingDecision() : lastDecision;
  }

  public int getPendingScaleDownTo() {
    return pendingScaleDownTo;
  }

  public void setPendingScaleDownTo(int pendingScaleDownTo) {
    this.pendingScaleDownTo = pendingScaleDownTo;
  }

  public String getPendingSince() {
    return pendingSince;
  }

  public void setPendingSince(String pendingSince) {
    this.pendingSince = pendingSince == null ? "" : pendingSince;
  }
}
