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
  String kvCacheType;

  @Option(
      names = "--cuda-graphs",
      description =
          "Run each decode step on the GPU as one CUDA graph launch instead of a few hundred"
              + " kernel launches (dense attention; the same logits). Off by default until"
              + " measured on a GPU (docs/PERFORMANCE.md).")
  boolean cudaGraphs;

  /**
   * What engine.properties says where the options are not given: {@code kv.cacheType} and {@code
   * cuda.graphs} (the CR's workers.kvCacheType and workers.cudaGraphs); null where absent.
   */
  record Configured(String kvCacheType, String cudaGraphs) {
    static final Configured NONE = new Configured(null, null);

    static Configured of(java.util.Properties conf) {
      return new Configured(conf.getProperty("kv.cacheType"), conf.getProperty("cuda.graphs"));
    }
  }

  /**
   * The KV cache type for a model on {@code backend}: the option, else {@code configured}, else
   * f32. Anything but f32, or CUDA graphs, on the CPU backend fails naming why and where it came
   * from.
   */
  KvCacheType resolve(Backend backend, Configured configured) {
    if (graphs(configured) && backend == Backend.CPU) {
      throw new IllegalArgumentException(
          (cudaGraphs ? "--cuda-graphs" : "cuda.graphs") + " needs the cuda backend");
    }
    String configuredType = configured.kvCacheType();
    KvCacheType type =
        KvCacheType.parse(
            kvCacheType != null ? kvCacheType : configuredType != null ? configuredType : "f32");
    if (type != KvCacheType.F32 && backend == Backend.CPU) {
      throw new IllegalArgumentException(
          (kvCacheType != null ? "--kv-cache-type " : "kv.cacheType ")
              + type.label()
              + " needs the cuda backend: the CPU backend keeps an f32 KV cache");
    }
    return type;
  }

  /** Whether decode steps run as CUDA graphs: the option, else {@code cuda.graphs}, else no. */
  private boolean graphs(Configured configured) {
    if (cudaGraphs || configured.cudaGraphs() == null) {
      return cudaGraphs;
    }
    return switch (configured.cudaGraphs().strip()) {
      case "true" -> true;
      case "false" -> false;
      default ->
          throw new IllegalArgumentException(
              "cuda.graphs must be true or false, got '" + configured.cudaGraphs() + "'");
    };
  }

  /**
   * {@code loaded} uploaded to device 0, its KV caches of the resolved type, decode graphs as
   * resolved (the caller closes it).
   */
  CudaModel openGpu(LoadedModel loaded, Configured configured) {
    KvCacheType type = resolve(Backend.CUDA, configured);
    CudaModel gpu = CudaModel.open(loaded.config(), loaded.weights());
    gpu.setKvCacheType(type);
    gpu.setDecodeGraphs(graphs(configured));
    return gpu;
  }

  /** The options as arguments for a shard process started on {@code backend}. */
  List<String> forShards(Backend backend, Configured configured) {
    String type = resolve(backend, configured).label();
    return graphs(configured)
        ? List.of("--kv-cache-type", type, "--cuda-graphs")
        : List.of("--kv-cache-type", type);
  }
}
