package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.javaoperatorsdk.operator.api.reconciler.Context;
import io.javaoperatorsdk.operator.processing.dependent.Matcher;
import io.javaoperatorsdk.operator.processing.dependent.kubernetes.CRUDKubernetesDependentResource;
import java.util.Objects;

/**
 * A dependent whose desired object carries a hash of itself ({@link Names#DESIRED_HASH}); the
 * matcher compares that hash with the one on the cluster's object, so an unchanged resource is
 * never updated, and fields defaulted by the API server or other controllers never cause an update.
 * Subclasses build the object in {@link #build}.
 */
public abstract class HashMatchingDependent<R extends HasMetadata>
    extends CRUDKubernetesDependentResource<R, LongContextModel> {

  protected HashMatchingDependent(Class<R> type) {
    super(type);
  }

  /** The object as the model wants it, without the hash annotation. */
  protected abstract R build(LongContextModel model, Context<LongContextModel> context);

  @Override
  protected final R desired(LongContextModel model, Context<LongContextModel> context) {
    R r = build(model, context);
    String hash = Hashing.of(r);
    r.getMetadata().getAnnotations().put(Names.DESIRED_HASH, hash);
    return r;
  }

  @Override
  public Matcher.Result<R> match(
      R actual, R desired, LongContextModel primary, Context<LongContextModel> context) {
    String want = desired.getMetadata().getAnnotations().get(Names.DESIRED_HASH);
    String have =
        actual.getMetadata().getAnnotations() == null
            ? null
            : actual.getMetadata().getAnnotations().get(Names.DESIRED_HASH);
    return Matcher.Result.computed(Objects.equals(want, have), desired);
  }
}
