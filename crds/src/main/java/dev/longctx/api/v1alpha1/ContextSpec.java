package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;

/** Context length served and how it is reached. */
public class ContextSpec {

  @Default("0")
  @Min(0)
  @Max(16777216)
  @JsonPropertyDescription(
      "Longest prompt + generation in tokens; 0: the model's trained context (times the"
          + " SelfExtend group size when SelfExtend is on).")
  private int maxTokens = 0;

  @JsonPropertyDescription(
      "SelfExtend: grouped positions beyond a neighbor window, no fine-tuning.")
  private SelfExtendSpec selfExtend = new SelfExtendSpec();

  public int getMaxTokens() {
    return maxTokens;
  }

  public void setMaxTokens(int maxTokens) {
    this.maxTokens = maxTokens;
  }

  public SelfExtendSpec getSelfExtend() {
    return selfExtend;
  }

  public void setSelfExtend(SelfExtendSpec selfExtend) {
    this.selfExtend = selfExtend == null ? new SelfExtendSpec() : selfExtend;
  }
}
