package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;

/** One change of the worker pool size made by the autoscaler. */
public class ScalingDecision {

  @JsonPropertyDescription("When (RFC 3339); empty: no decision yet.")
  private String time = "";

  @JsonPropertyDescription("Pool size before.")
  private int from = 0;

  @JsonPropertyDescription("Pool size after.")
  private int to = 0;

  @JsonPropertyDescription("ScaleUp, ScaleDown or Clamp.")
  private String reason = "";

  @JsonPropertyDescription("The load and arithmetic behind the decision.")
  private String message = "";

  public String getTime() {
    return time;
  }

  public void setTime(String time) {
    this.time = time == null ? "" : time;
  }

  public int getFrom() {
    return from;
  }

  public void setFrom(int from) {
    this.from = from;
  }

  public int getTo() {
    return to;
  }

  public void setTo(int to) {
    this.to = to;
  }

  public String getReason() {
    return reason;
  }

  public void setReason(String reason) {
    this.reason = reason == null ? "" : reason;
  }

  public String getMessage() {
    return message;
  }

  public void setMessage(String message) {
    this.message = message == null ? "" : message;
  }
}
