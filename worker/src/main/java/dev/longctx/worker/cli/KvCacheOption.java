package dev.longctx.worker.cli;

import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.cuda.KvCacheType;
import dev.longctx.engine.model.LoadedModel;
import java.util.List;
import picocli.CommandLine.Option;

/** The GPU KV cache's element type, shared by the commands that run a model on the GPU. */
public class KvCacheOption {

  @Option(
      names = "--kv-cache-type",
      paramLabel = "f32|f16",
      description =
          "Element type of the KV cache on the GPU: f32 (logits equal the CPU backend's) or f16"
              + " (half the bytes per token, so twice the tokens fit, and half the bytes each"
              + " attention step reads; keys and values rounded to half). The CPU backend keeps an"
              + " f32 cache. Default: kv.cacheType (serve), else f32.")
  String value;

  /**
   * The type for a model on {@code backend}: the option, else {@code configured} (a property; may
   * be null), else f32. Anything but f32 on the CPU backend fails naming why.
   */
  KvCacheType resolve(Backend backend, String configured) {
    KvCacheType type =
        KvCacheType.parse(value != null ? value : configured != null ? configured : "f32");
    if (type != KvCacheType.F32 && backend == Backend.CPU) {
      throw new IllegalArgumentException(
          (value != null ? "--kv-cache-type " : "kv.cacheType ")
              + type.label()
              + " needs the cuda backend: the CPU backend keeps an f32 KV cache");
    }
    return type;
  }

  /**
   * {@code loaded} uploaded to device 0, its KV caches of the resolved type (the caller closes it).
   */
  CudaModel openGpu(LoadedModel loaded, String configured) {
    KvCacheType type = resolve(Backend.CUDA, configured);
    CudaModel gpu = CudaModel.open(loaded.config(), loaded.weights());
    gpu.setKvCacheType(type);
    return gpu;
  }

  /** The option as arguments for a shard process started on {@code backend}. */
  List<String> forShards(Backend backend, String configured) {
    return List.of("--kv-cache-type", resolve(backend, configured).label());
  }
}
