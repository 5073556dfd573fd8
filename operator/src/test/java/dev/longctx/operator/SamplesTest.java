package dev.longctx.operator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.api.v1alpha1.WorkersSpec;
import io.fabric8.kubernetes.client.utils.Serialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The resources deploy/samples/ offers users parse as LongContextModels and pass validation. */
class SamplesTest {

  private static final Path SAMPLES = Path.of("..", "deploy", "samples");

  @Test
  void everySampleIsAValidLongContextModel() throws IOException {
    List<Path> samples;
    try (Stream<Path> files = Files.list(SAMPLES)) {
      samples = files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList();
    }
    assertThat(samples).isNotEmpty();
    for (Path sample : samples) {
      LongContextModel m =
          Serialization.unmarshal(Files.readString(sample), LongContextModel.class);
      assertThat(m.getSpec()).as("%s spec", sample).isNotNull();
      assertThat(SpecValidator.validate(m)).as("%s validation errors", sample).isEmpty();
    }
  }

  @Test
  void theGpuSampleKeepsAHalfPrecisionKvCache() throws IOException {
    LongContextModel m =
        Serialization.unmarshal(
            Files.readString(SAMPLES.resolve("gpu-llama31-8b-128k.yaml")), LongContextModel.class);
    assertThat(m.getSpec().getWorkers().getGpu()).isEqualTo(1);
    assertThat(m.getSpec().getWorkers().getKvCacheType()).isEqualTo(WorkersSpec.KvCacheType.F16);
  }
}
