package dev.longctx.operator.resources;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.api.v1alpha1.AttentionSpec;
import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.WorkersSpec;
import dev.longctx.operator.TestModels;
import java.io.StringReader;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/** The engine configuration: the backend follows the workers' GPUs; the attention's settings. */
class EngineConfigTest {

  private static Properties render(LongContextModel m) throws Exception {
    Properties p = new Properties();
    p.load(new StringReader(EngineConfig.render(m, "/models/stories260K.bin")));
    return p;
  }

  @Test
  void workersWithGpusComputeOnCudaAndCpuWorkersOnTheCpu() throws Exception {
    LongContextModel m = TestModels.cpu("tiny", "ns");
    assertThat(render(m).getProperty("engine.backend")).isEqualTo("cpu");
    m.getSpec().getWorkers().setGpu(1);
    Properties gpu = render(m);
    assertThat(gpu.getProperty("engine.backend")).isEqualTo("cuda");
    assertThat(gpu.getProperty("model.path")).isEqualTo("/models/stories260K.bin");
    assertThat(gpu.getProperty("kv.cacheType")).isEqualTo("f32");
    assertThat(gpu.getProperty("cuda.graphs")).isEqualTo("false");
    assertThat(gpu.getProperty("cuda.int8Activations")).isEqualTo("false");
    m.getSpec().getWorkers().setKvCacheType(WorkersSpec.KvCacheType.F16);
    m.getSpec().getWorkers().setCudaGraphs(true);
    m.getSpec().getWorkers().setInt8Activations(true);
    Properties tuned = render(m);
    assertThat(tuned.getProperty("kv.cacheType")).isEqualTo("f16");
    assertThat(tuned.getProperty("cuda.graphs")).isEqualTo("true");
    assertThat(tuned.getProperty("cuda.int8Activations")).isEqualTo("true");
    // the worker pods then request the GPU they are told to use
    assertThat(PodTemplates.withGpu(m.getSpec().getWorkers().getResources(), 1).getLimits())
        .containsKey(PodTemplates.GPU_RESOURCE);
  }

  @Test
  void theIndexerSourceReachesTheWorkers() throws Exception {
    LongContextModel m = TestModels.cpu("tiny", "ns");
    assertThat(render(m).getProperty("attention.indexer")).isEqualTo("own-heads");
    m.getSpec().getAttention().setMethod(AttentionSpec.Method.INDEXER_TOPK);
    m.getSpec().getAttention().setIndexer(AttentionSpec.Indexer.MODEL);
    Properties p = render(m);
    assertThat(p.getProperty("attention.method")).isEqualTo("indexer-topk");
    assertThat(p.getProperty("attention.indexer")).isEqualTo("model");
    // a distilled indexer file: its path in the pod, relative ones under the model mount
    m.getSpec().getAttention().setIndexer(AttentionSpec.Indexer.FILE);
    m.getSpec().getAttention().setIndexerFile("indexers/stories-ix.gguf");
    assertThat(render(m).getProperty("attention.indexer"))
        .isEqualTo(ModelMount.DIR + "/indexers/stories-ix.gguf");
    m.getSpec().getAttention().setIndexerFile("/opt/ix.gguf");
    assertThat(render(m).getProperty("attention.indexer")).isEqualTo("/opt/ix.gguf");
  }
}
