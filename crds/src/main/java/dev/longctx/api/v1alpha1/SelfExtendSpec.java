package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Max;
import io.fabric8.generator.annotation.Min;
import io.fabric8.generator.annotation.ValidationRule;

/** SelfExtend (ALGORITHMS.md): exact positions inside the window, grouped positions beyond it. */
@ValidationRule(
    value = "self.neighborWindow % self.groupSize == 0",
    message = "selfExtend.groupSize must divide selfExtend.neighborWindow")
public class SelfExtendSpec {

  @Default("false")
  @JsonPropertyDescription("Turn SelfExtend on.")
  private boolean enabled = false;

  @Default("8")
  @Min(1)
  @Max(1024)
  @JsonPropertyDescription("Group size G: positions beyond the window are divided by G.")
  private int groupSize = 8;

  @Default("1024")
  @Min(1)
  @Max(1048576)
  @JsonPropertyDescription("Neighbor window w: the nearest w tokens keep exact positions.")
  private int neighborWindow = 1024;

  public boolean isEnabled() {
    return enabled;
  }

  public void setEnabled(boolean enabled) {
    this.enabled = enabled;
  }

  public int getGroupSize() {
    return groupSize;
  }

  public void setGroupSize(int groupSize) {
    this.groupSize = groupSize;
  }

  public int getNeighborWindow() {
    return neighborWindow;
  }

  public void setNeighborWindow(int neighborWindow) {
    this.neighborWindow = neighborWindow;
  }
}
