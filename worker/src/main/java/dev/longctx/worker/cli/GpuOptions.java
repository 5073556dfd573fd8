package dev.longctx.worker.cli;

import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.cuda.KvCacheType;
import dev.longctx.engine.model.LoadedModel;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * The GPU options shared by the commands that run a model on the GPU: the KV cache's element type
 * and decode steps as CUDA graph launches.
 */
public class GpuOptions {

  @Option(
      names = "--kv-cache-type",
      paramLabel = "f32|f16",
      description =
          "Element type of the KV cache on the GPU: f32 (logits equal the CPU backend's) or f16"
              + " (half the bytes per token, so twice the tokens fit, and half the bytes each"
              + " attention step reads; keys and values rounded to half). The CPU backend keeps an"
              + " f32 cache. Default: kv.cacheType (serve), else f32.")
  String value;

  @Option(
      names = "--cuda-graphs",
      description =
          "Run each decode step on the GPU as one CUDA graph launch instead of a few hundred"
              + " kernel launches (dense attention; the same logits). Off by default until"
              + " measured on a GPU (docs/PERFORMANCE.md).")
  boolean cudaGraphs;

  /**
   * The KV cache type for a model on {@code backend}: the option, else {@code configured} (a
   * property; may be null), else f32. Anything but f32, or {@code --cuda-graphs}, on the CPU
   * backend fails naming why.
   */
  KvCacheType resolve(Backend backend, String configured) {
    if (cudaGraphs && backend == Backend.CPU) {
      throw new IllegalArgumentException("--cuda-graphs needs the cuda backend");
    }
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
    gpu.setDecodeGraphs(cudaGraphs);
    return gpu;
  }

  /** The options as arguments for a shard process started on {@code backend}. */
  List<String> forShards(Backend backend, String configured) {
    String type = resolve(backend, configured).label();
    return cudaGraphs
        ? List.of("--kv-cache-type", type, "--cuda-graphs")
        : List.of("--kv-cache-type", type);
  }
}
