package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaim;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaimBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import io.javaoperatorsdk.operator.api.reconciler.dependent.DependentResource;
import io.javaoperatorsdk.operator.processing.dependent.workflow.Condition;
import java.util.Map;

/**
 * The shared download cache of a fetched model ({@code model.cache.enabled}). Its spec is immutable
 * once bound, so the size and class are read only when it is created.
 */
public class ModelCachePvcDependent extends HashMatchingDependent<PersistentVolumeClaim> {

  public ModelCachePvcDependent() {
    super(PersistentVolumeClaim.class);
  }

  @Override
  protected PersistentVolumeClaim build(LongContextModel m, Context<LongContextModel> context) {
    var cache = m.getSpec().getModel().getCache();
    var pvc =
        new PersistentVolumeClaimBuilder()
            .withMetadata(Meta.of(m, Names.modelCache(m), null))
            .withNewSpec()
            .withAccessModes(cache.getAccessMode())
            .withNewResources()
            .withRequests(Map.of("storage", new Quantity(cache.getSize())))
            .endResources()
            .endSpec()
            .build();
    if (!cache.getStorageClassName().isBlank()) {
      pvc.getSpec().setStorageClassName(cache.getStorageClassName());
    }
    return pvc;
  }

  @Override
  public io.javaoperatorsdk.operator.processing.dependent.Matcher.Result<PersistentVolumeClaim>
      match(
          PersistentVolumeClaim actual,
          PersistentVolumeClaim desired,
          LongContextModel primary,
          Context<LongContextModel> context) {
    // Never update a claim in place: its spec is immutable after binding.
    return io.javaoperatorsdk.operator.processing.dependent.Matcher.Result.computed(true, desired);
  }

  /** Reconcile the claim only for downloaded models with the cache turned on. */
  public static class Enabled implements Condition<PersistentVolumeClaim, LongContextModel> {
    @Override
    public boolean isMet(
        DependentResource<PersistentVolumeClaim, LongContextModel> dependentResource,
        LongContextModel m,
        Context<LongContextModel> context) {
      return m.getSpec().getModel().getCache().isEnabled()
          && m.getSpec().getModel().scheme().downloads();
    }
  }
}
