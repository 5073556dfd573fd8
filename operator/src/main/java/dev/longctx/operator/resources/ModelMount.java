package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.ModelSource;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.EnvFromSource;
import io.fabric8.kubernetes.api.model.EnvFromSourceBuilder;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeBuilder;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.VolumeMountBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * How a pod gets the model's files, by URI scheme:
 *
 * <ul>
 *   <li>{@code hf://}, {@code s3://}, {@code http(s)://}: an init container running {@code longctx
 *       fetch --uri URI --revision REV --dest /models} (same image) downloads into the {@code
 *       model} volume, an emptyDir or, with {@code model.cache.enabled}, the shared cache PVC; the
 *       credentials Secret's keys become its environment. {@code fetch} must be idempotent (skip
 *       files already complete) because replicas share the cache.
 *   <li>{@code pvc://claim/path}: the claim mounted read-only at {@code /models}.
 *   <li>{@code file:///path}: nothing mounted; the image has the file.
 * </ul>
 *
 * @param modelPath the path the worker loads (LONGCTX_MODEL_PATH)
 */
public record ModelMount(
    String modelPath,
    Optional<Volume> volume,
    Optional<VolumeMount> mount,
    Optional<Container> fetch) {

  public static final String VOLUME = "model";
  public static final String DIR = "/models";

  public static ModelMount of(LongContextModel m, String image) {
    ModelSource src = m.getSpec().getModel();
    ModelSource.Scheme scheme = src.scheme();
    String path = src.path();
    return switch (scheme) {
      case FILE -> new ModelMount(path.startsWith("/") ? path : "/" + path, none(), none(), none());
      case PVC -> {
        int slash = path.indexOf('/');
        String claim = slash < 0 ? path : path.substring(0, slash);
        String sub = slash < 0 ? "" : path.substring(slash + 1);
        Volume v =
            new VolumeBuilder().withName(VOLUME).withNewPersistentVolumeClaim(claim, true).build();
        yield new ModelMount(
            sub.isEmpty() ? DIR : DIR + "/" + sub,
            Optional.of(v),
            Optional.of(mount(true)),
            none());
      }
      case HF, S3, HTTP, HTTPS -> {
        Volume v =
            src.getCache().isEnabled()
                ? new VolumeBuilder()
                    .withName(VOLUME)
                    .withNewPersistentVolumeClaim(Names.modelCache(m), false)
                    .build()
                : new VolumeBuilder().withName(VOLUME).withNewEmptyDir().endEmptyDir().build();
        List<EnvFromSource> envFrom = new ArrayList<>();
        if (!src.getCredentialsSecret().isBlank()) {
          envFrom.add(
              new EnvFromSourceBuilder()
                  .withNewSecretRef(src.getCredentialsSecret(), false)
                  .build());
        }
        Container fetch =
            new ContainerBuilder()
                .withName("fetch-model")
                .withImage(image)
                .withImagePullPolicy(m.getSpec().getWorkers().getImagePullPolicy())
                .withArgs(
                    "fetch", "--uri", src.getUri(), "--revision", src.getRevision(), "--dest", DIR)
                .withEnvFrom(envFrom)
                .withVolumeMounts(mount(false))
                .build();
        yield new ModelMount(
            DIR + fileName(scheme, path),
            Optional.of(v),
            Optional.of(mount(true)),
            Optional.of(fetch));
      }
    };
  }

  /**
   * {@code /file.gguf} when the URI names a file ({@code hf://org/repo/file.gguf}, {@code
   * s3://bucket/dir/file.gguf}, {@code https://host/file.gguf}); empty (the directory) for a whole
   * repository or a prefix ending in {@code /}.
   */
  static String fileName(ModelSource.Scheme scheme, String path) {
    if (path.endsWith("/")) {
      return "";
    }
    String[] parts = path.split("/");
    int minParts = scheme == ModelSource.Scheme.HF ? 3 : 2; // org/repo/file; bucket/key; host/x
    if (parts.length < minParts) {
      return "";
    }
    String last = parts[parts.length - 1];
    int q = last.indexOf('?');
    return "/" + (q < 0 ? last : last.substring(0, q));
  }

  private static VolumeMount mount(boolean readOnly) {
    return new VolumeMountBuilder()
        .withName(VOLUME)
        .withMountPath(DIR)
        .withReadOnly(readOnly)
        .build();
  }

  private static <T> Optional<T> none() {
    return Optional.empty();
  }
}
