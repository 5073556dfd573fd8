package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;

/** One key of a Secret in the resource's namespace. */
public class SecretKeyRef {

  @JsonPropertyDescription("Secret name; empty: not used.")
  private String name = "";

  @Default("api-key")
  @JsonPropertyDescription("Key within the Secret.")
  private String key = "api-key";

  /** True when a Secret is named. */
  @JsonIgnore
  public boolean isSet() {
    return !name.isBlank();
  }

  public String getName() {
    return name;
  }

  public void setName(String name) {
    this.name = name == null ? "" : name;
  }

  public String getKey() {
    return key;
  }

  public void setKey(String key) {
    this.key = key == null ? "api-key" : key;
  }
}
