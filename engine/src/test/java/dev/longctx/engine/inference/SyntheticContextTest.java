package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The benchmark-only replicated context: the cache is the resident rows repeated, then decodes. */
class SyntheticContextTest {

  @Test
  void replicatesTheResidentRowsCyclicallyAndDecodesAfterwards() {
    try (LoadedModel model = TestModels.stories260K()) {
      Transformer tr = model.transformer();
      int[] prompt = model.tokenizer().encode("Once upon a time there was a cat");
      int r = prompt.length;
      int depth = 5 * r + 3;
      for (AttentionPolicy p :
          List.of(
              AttentionPolicy.dense(),
              new AttentionPolicy.IndexerTopK(
                  8, 0, IndexerSource.ownHeads(), new AttentionPolicy.SelfExtend(2, 4)),
              new AttentionPolicy.BlockTopK(4, 2))) {
        Sequence seq = tr.newSequence(depth + 1, p);
        tr.prefill(seq, prompt);
        SyntheticContext.extend(seq, depth);
        assertThat(seq.length()).isEqualTo(depth);
        KvCache c = seq.cache();
        int kvDim = c.kvDim();
        float[] row = new float[kvDim];
        float[] source = new float[kvDim];
        for (int l = 0; l < c.layers(); l++) {
          for (int pos = r; pos < depth; pos++) {
            c.copyKeys(l, pos, false, row, 0);
            c.copyKeys(l, pos % r, false, source, 0);
            assertThat(row).containsExactly(source);
            c.copyValues(l, pos, row, 0);
            c.copyValues(l, pos % r, source, 0);
            assertThat(row).containsExactly(source);
          }
        }
        float[] logits = tr.decode(seq, prompt[0]);
        assertThat(seq.length()).isEqualTo(depth + 1);
        for (float x : logits) {
          assertThat(Float.isFinite(x)).as("%s", p).isTrue();
        }
      }
    }
  }

  @Test
  void refusesAnEmptySequence() {
    try (LoadedModel model = TestModels.stories260K()) {
      Transformer tr = model.transformer();
      assertThatThrownBy(() -> SyntheticContext.extend(tr.newSequence(8), 4))
          .hasMessageContaining("replicates resident tokens: none");
    }
  }
}
