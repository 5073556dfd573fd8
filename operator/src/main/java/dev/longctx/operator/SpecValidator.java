package dev.longctx.operator;

import dev.longctx.api.v1alpha1.AttentionSpec;
import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.LongContextModelSpec;
import dev.longctx.api.v1alpha1.ModelSource;
import dev.longctx.api.v1alpha1.WorkersSpec;
import java.util.ArrayList;
import java.util.List;

/**
 * The checks the CRD schema makes (ranges, CEL rules), made again by the operator: API servers
 * without CEL, resources created before a schema change, and the mock server accept anything.
 */
public final class SpecValidator {

  private SpecValidator() {}

  /** Every problem found, each naming the field; empty when the spec is valid. */
  public static List<String> validate(LongContextModel m) {
    LongContextModelSpec s = m.getSpec();
    List<String> errors = new ArrayList<>();
    if (s == null) {
      return List.of("spec is missing");
    }
    String uri = s.getModel().getUri();
    if (uri.isBlank()) {
      errors.add("spec.model.uri is required");
    } else {
      try {
        var scheme = s.getModel().scheme();
        String path = s.getModel().path();
        if (path.isBlank()) {
          errors.add("spec.model.uri '" + uri + "' has no path after the scheme");
        } else if (scheme == dev.longctx.api.v1alpha1.ModelSource.Scheme.HF
            && path.split("/").length < 2) {
          errors.add("spec.model.uri '" + uri + "' must be hf://org/repo[/file]");
        }
      } catch (IllegalArgumentException e) {
        errors.add("spec." + e.getMessage());
      }
    }
    var w = s.getWorkers();
    if (w.getReplicas() != null && s.getAutoscaling() != null) {
      errors.add("spec.workers.replicas and spec.autoscaling are mutually exclusive");
    }
    if (w.getReplicas() != null && w.getReplicas() < 0) {
      errors.add("spec.workers.replicas must be >= 0, got " + w.getReplicas());
    }
    if (w.getKvCacheTokens() < 1) {
      errors.add("spec.workers.kvCacheTokens must be >= 1, got " + w.getKvCacheTokens());
    }
    if (w.getGpu() < 0) {
      errors.add("spec.workers.gpu must be >= 0, got " + w.getGpu());
    }
    if (w.getKvCacheType() != WorkersSpec.KvCacheType.F32 && w.getGpu() <= 0) {
      errors.add(
          "spec.workers.kvCacheType f16 needs GPU workers (spec.workers.gpu > 0): CPU workers keep"
              + " an f32 KV cache");
    }
    if (w.isCudaGraphs() && w.getGpu() <= 0) {
      errors.add("spec.workers.cudaGraphs needs GPU workers (spec.workers.gpu > 0)");
    }
    if (w.isInt8Activations() && w.getGpu() <= 0) {
      errors.add("spec.workers.int8Activations needs GPU workers (spec.workers.gpu > 0)");
    }
    var attention = s.getAttention();
    boolean fileIndexer = attention.getIndexer() == AttentionSpec.Indexer.FILE;
    String indexerFile = attention.getIndexerFile();
    if (fileIndexer != (indexerFile != null && !indexerFile.isBlank())) {
      errors.add(
          fileIndexer
              ? "spec.attention.indexer file needs spec.attention.indexerFile (the path of an"
                  + " indexer file made by longctx distill-indexer)"
              : "spec.attention.indexerFile applies only to spec.attention.indexer file");
    }
    if (fileIndexer && attention.getMethod() != AttentionSpec.Method.INDEXER_TOPK) {
      errors.add("spec.attention.indexer file applies to method indexer-topk");
    }
    if (attention.getIndexer() == AttentionSpec.Indexer.MODEL) {
      if (attention.getMethod() != AttentionSpec.Method.INDEXER_TOPK) {
        errors.add("spec.attention.indexer model applies to method indexer-topk");
      }
      var format = s.getModel().getFormat();
      if (format != ModelSource.Format.GGUF && format != ModelSource.Format.AUTO) {
        errors.add(
            "spec.attention.indexer model needs a GGUF model file with indexer tensors;"
                + " spec.model.format is "
                + format.name().toLowerCase(java.util.Locale.ROOT));
      }
    }
    var a = s.getAutoscaling();
    if (a != null) {
      if (a.getMinReplicas() < 1) {
        errors.add("spec.autoscaling.minReplicas must be >= 1, got " + a.getMinReplicas());
      }
      if (a.getMinReplicas() > a.getMaxReplicas()) {
        errors.add(
            "spec.autoscaling.minReplicas (%d) must not exceed maxReplicas (%d)"
                .formatted(a.getMinReplicas(), a.getMaxReplicas()));
      }
      if (!(a.getTargetContextLoad() >= 0.05 && a.getTargetContextLoad() <= 1.0)) {
        errors.add(
            "spec.autoscaling.targetContextLoad must be in [0.05, 1], got "
                + a.getTargetContextLoad());
      }
    }
    var se = s.getContext().getSelfExtend();
    if (se.getGroupSize() < 1 || se.getNeighborWindow() < 1) {
      errors.add("spec.context.selfExtend.groupSize and neighborWindow must be >= 1");
    } else if (se.getNeighborWindow() % se.getGroupSize() != 0) {
      errors.add(
          "spec.context.selfExtend.groupSize (%d) must divide neighborWindow (%d)"
              .formatted(se.getGroupSize(), se.getNeighborWindow()));
    }
    var svc = s.getService();
    for (int port : new int[] {svc.getGrpcPort(), svc.getHttpPort(), svc.getShardPort()}) {
      if (port < 1 || port > 65535) {
        errors.add("spec.service ports must be in [1, 65535], got " + port);
      }
    }
    if (svc.getGrpcPort() == svc.getHttpPort() || svc.getShardPort() == svc.getHttpPort()) {
      errors.add("spec.service.httpPort must differ from grpcPort and shardPort");
    }
    return errors;
  }
}
