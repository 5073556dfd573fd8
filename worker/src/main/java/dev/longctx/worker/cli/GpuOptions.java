package dev.longctx.worker.cli;

import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.cuda.KvCacheType;
import dev.longctx.engine.model.LoadedModel;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * The GPU options shared by the commands that run a model on the GPU: the KV cache's element type,
 * decode steps as CUDA graph launches, and quantized products over int8 activations.
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

  @Option(
      names = "--int8-activations",
      description =
          "Multiply Q8_0, Q4_0, Q4_K and Q6_K matrices by int8-quantized activations on the GPU"
              + " (dp4a, as"
              + " llama.cpp's MMVQ kernels): fewer instructions per weight byte, logits within the"
              + " activations' rounding (about 1 % of their range) of the f32 ones. Off by default"
              + " until measured on a GPU (docs/PERFORMANCE.md).")
  boolean int8Activations;

  /**
   * What engine.properties says where the options are not given: {@code kv.cacheType}, {@code
   * cuda.graphs} and {@code cuda.int8Activations} (the CR's workers.kvCacheType, workers.cudaGraphs
   * and workers.int8Activations); null where absent.
   */
  record Configured(String kvCacheType, String cudaGraphs, String int8Activations) {
    static final Configured NONE = new Configured(null, null, null);

    static Configured of(java.util.Properties conf) {
      return new Configured(
          conf.getProperty("kv.cacheType"),
          conf.getProperty("cuda.graphs"),
          conf.getProperty("cuda.int8Activations"));
    }
  }

  /**
   * The KV cache type for a model on {@code backend}: the option, else {@code configured}, else
   * f32. Anything but f32, CUDA graphs or int8 activations on the CPU backend fail naming why and
   * where it came from.
   */
  KvCacheType resolve(Backend backend, Configured configured) {
    if (graphs(configured) && backend == Backend.CPU) {
      throw new IllegalArgumentException(
          (cudaGraphs ? "--cuda-graphs" : "cuda.graphs") + " needs the cuda backend");
    }
    if (int8(configured) && backend == Backend.CPU) {
      throw new IllegalArgumentException(
          (int8Activations ? "--int8-activations" : "cuda.int8Activations")
              + " needs the cuda backend");
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
    return flag(cudaGraphs, "cuda.graphs", configured.cudaGraphs());
  }

  /**
   * Whether quantized products take int8 activations: the option, else {@code
   * cuda.int8Activations}, else no.
   */
  private boolean int8(Configured configured) {
    return flag(int8Activations, "cuda.int8Activations", configured.int8Activations());
  }

  /**
   * A switch given as an option (on), else as the property {@code key} (true or false), else off.
   */
  private static boolean flag(boolean option, String key, String configured) {
    if (option || configured == null) {
      return option;
    }
    return switch (configured.strip()) {
      case "true" -> true;
      case "false" -> false;
      default ->
          throw new IllegalArgumentException(
              key + " must be true or false, got '" + configured + "'");
    };
  }

  /**
   * {@code loaded} uploaded to device 0, its KV caches of the resolved type, decode graphs and int8
   * activations as resolved (the caller closes it).
   */
  CudaModel openGpu(LoadedModel loaded, Configured configured) {
    KvCacheType type = resolve(Backend.CUDA, configured);
    CudaModel gpu = CudaModel.open(loaded.config(), loaded.weights());
    gpu.setKvCacheType(type);
    gpu.setDecodeGraphs(graphs(configured));
    gpu.setQuantizedActivations(int8(configured));
    return gpu;
  }

  /** The options as arguments for a shard process started on {@code backend}. */
  List<String> forShards(Backend backend, Configured configured) {
    List<String> args =
        new java.util.ArrayList<>(List.of("--kv-cache-type", resolve(backend, configured).label()));
    if (graphs(configured)) {
      args.add("--cuda-graphs");
    }
    if (int8(configured)) {
      args.add("--int8-activations");
    }
    return args;
  }
}
