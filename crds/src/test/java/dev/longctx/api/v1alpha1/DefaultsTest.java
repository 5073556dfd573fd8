package dev.longctx.api.v1alpha1;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.client.utils.Serialization;
import org.junit.jupiter.api.Test;

class DefaultsTest {

  @Test
  void aMinimalResourceHasEveryFieldDefaulted() {
    LongContextModel m =
        Serialization.unmarshal(
            """
            apiVersion: longctx.dev/v1alpha1
            kind: LongContextModel
            metadata: {name: tiny}
            spec:
              model: {uri: "pvc://models/stories260K.bin"}
            """,
            LongContextModel.class);
    var spec = m.getSpec();
    assertThat(spec.getWorkers().getImage()).isEqualTo(WorkersSpec.DEFAULT_IMAGE);
    assertThat(spec.getWorkers().replicasOrDefault()).isEqualTo(1);
    assertThat(spec.scalingMode()).isEqualTo(LongContextModelSpec.ScalingMode.FIXED);
    assertThat(spec.getContext().getSelfExtend().getGroupSize()).isEqualTo(8);
    assertThat(spec.getAttention().getMethod()).isEqualTo(AttentionSpec.Method.DENSE);
    assertThat(spec.getService().getApiKeySecret().isSet()).isFalse();
    assertThat(spec.getWorkers().getTolerations()).isEmpty();
    assertThat(spec.getModel().scheme()).isEqualTo(ModelSource.Scheme.PVC);
    assertThat(spec.getModel().path()).isEqualTo("models/stories260K.bin");
    assertThat(m.getStatus()).as("status is the operator's to write").isNull();
    assertThat(m.statusOrInit().getConditions()).isEmpty();
  }

  @Test
  void enumsUseTheirLowercaseApiNames() {
    LongContextModel m = new LongContextModel();
    m.getSpec().getAttention().setMethod(AttentionSpec.Method.INDEXER_TOPK);
    m.getSpec().setAutoscaling(new AutoscalingSpec());
    String yaml = Serialization.asYaml(m);
    assertThat(yaml).contains("method: \"indexer-topk\"").contains("format: \"auto\"");
    assertThat(yaml).doesNotContain("replicas: null");
    assertThat(Serialization.unmarshal(yaml, LongContextModel.class).getSpec().scalingMode())
        .isEqualTo(LongContextModelSpec.ScalingMode.AUTOSCALED);
  }

  @Test
  void anUnknownSchemeIsNamedInTheError() {
    ModelSource s = new ModelSource();
    s.setUri("ftp://x/y");
    assertThatThrownBy(s::scheme).hasMessageContaining("'ftp'");
  }
}
