package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.AttentionSpec;
import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.LongContextModelSpec;
import java.util.Locale;

/**
 * The engine configuration both roles read ({@code longctx serve --config
 * /etc/longctx/engine.properties}): the serving developer's contract with the operator. Keys are
 * stable; values come from the resource's spec.
 */
public final class EngineConfig {

  public static final String FILE = "engine.properties";
  public static final String DIR = "/etc/longctx";

  private EngineConfig() {}

  public static String render(LongContextModel m, String modelPath) {
    LongContextModelSpec s = m.getSpec();
    var se = s.getContext().getSelfExtend();
    var svc = s.getService();
    StringBuilder b = new StringBuilder();
    b.append("# longctx engine configuration, written by the longctx operator from\n");
    b.append("# LongContextModel ")
        .append(m.getMetadata().getNamespace())
        .append('/')
        .append(m.getMetadata().getName())
        .append(". Read by `longctx serve --role shard|coordinator --config ")
        .append(DIR)
        .append('/')
        .append(FILE)
        .append("`.\n");
    b.append(
        "# The pod's identity comes from the environment: POD_NAME (shards: <name>-worker-<ordinal>,\n");
    b.append("# the ordinal is the shard id), POD_NAMESPACE, LONGCTX_ROLE.\n");
    // The name clients use (OpenAI "model", gRPC GetModelInfo): the resource's name.
    line(b, "model.name", m.getMetadata().getName());
    line(b, "model.uri", s.getModel().getUri());
    line(b, "model.path", modelPath);
    line(b, "model.format", s.getModel().getFormat().name().toLowerCase(Locale.ROOT));
    line(b, "context.maxTokens", s.getContext().getMaxTokens());
    line(b, "context.selfExtend.enabled", se.isEnabled());
    line(b, "context.selfExtend.groupSize", se.getGroupSize());
    line(b, "context.selfExtend.neighborWindow", se.getNeighborWindow());
    line(b, "attention.method", json(s.getAttention().getMethod().name()));
    line(b, "attention.topK", s.getAttention().getTopK());
    // own-heads, model, or (indexer file) the file's path in the pod: relative to /models
    line(b, "attention.indexer", indexer(s.getAttention()));
    line(b, "attention.blockSize", s.getAttention().getBlockSize());
    line(b, "attention.denseBelowTokens", s.getAttention().getDenseBelowTokens());
    line(b, "sharding.minTokensPerShard", s.getSharding().getMinTokensPerShard());
    line(b, "sharding.maxShardsPerRequest", s.getSharding().getMaxShardsPerRequest());
    line(b, "sharding.placement", json(s.getSharding().getPlacement().name()));
    line(b, "kv.cacheTokens", s.getWorkers().getKvCacheTokens());
    b.append("# Shards with GPUs (workers.gpu > 0) compute on CUDA and fail loudly without one.\n");
    line(b, "engine.backend", s.getWorkers().getGpu() > 0 ? "cuda" : "cpu");
    line(b, "kv.cacheType", json(s.getWorkers().getKvCacheType().name()));
    line(b, "cuda.graphs", s.getWorkers().isCudaGraphs());
    line(b, "cuda.int8Activations", s.getWorkers().isInt8Activations());
    b.append(
        "# Shards: the coordinator resolves this headless Service (one A record per ready shard)\n");
    line(b, "shards.service", Names.workersDns(m));
    line(b, "shards.port", svc.getShardPort());
    line(b, "grpc.port", svc.getGrpcPort());
    line(b, "http.port", svc.getHttpPort());
    line(b, "auth.apiKeyRequired", svc.getApiKeySecret().isSet());
    return b.toString();
  }

  private static String indexer(AttentionSpec a) {
    if (a.getIndexer() != AttentionSpec.Indexer.FILE) {
      return json(a.getIndexer().name());
    }
    String file = a.getIndexerFile().strip();
    return file.startsWith("/") ? file : ModelMount.DIR + "/" + file;
  }

  private static String json(String enumName) {
    return enumName.toLowerCase(Locale.ROOT).replace('_', '-');
  }

  private static void line(StringBuilder b, String key, Object value) {
    b.append(key).append('=').append(value).append('\n');
  }
}
