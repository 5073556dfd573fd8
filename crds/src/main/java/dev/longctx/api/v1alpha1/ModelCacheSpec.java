package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Pattern;

/** A PersistentVolumeClaim, created and owned by the operator, that caches a downloaded model. */
public class ModelCacheSpec {

  @Default("false")
  @JsonPropertyDescription("Download once into a shared PVC instead of once per pod.")
  private boolean enabled = false;

  @Default("20Gi")
  @Pattern("^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
  @JsonPropertyDescription("Requested size of the cache PVC (a Kubernetes quantity).")
  private String size = "20Gi";

  @JsonPropertyDescription("StorageClass of the cache PVC; empty: the cluster default.")
  private String storageClassName = "";

  @Default("ReadWriteMany")
  @Pattern("^(ReadWriteOnce|ReadWriteMany|ReadWriteOncePod)$")
  @JsonPropertyDescription(
      "Access mode of the cache PVC; ReadWriteMany lets pods on several nodes share it.")
  private String accessMode = "ReadWriteMany";

  public boolean isEnabled() {
    return enabled;
  }

  public void setEnabled(boolean enabled) {
    this.enabled = enabled;
  }

  public String getSize() {
    return size;
  }

  public void setSize(String size) {
    this.size = size == null ? "20Gi" : size;
  }

  public String getStorageClassName() {
    return storageClassName;
  }

  public void setStorageClassName(String storageClassName) {
    this.storageClassName = storageClassName == null ? "" : storageClassName;
  }

  public String getAccessMode() {
    return accessMode;
  }

  public void setAccessMode(String accessMode) {
    this.accessMode = accessMode == null ? "ReadWriteMany" : accessMode;
  }
}
