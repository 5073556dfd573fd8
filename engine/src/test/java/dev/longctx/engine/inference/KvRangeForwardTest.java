package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.BlockScore;
import dev.longctx.engine.attention.AttentionPolicy.BlockTopK;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A shard range holding a whole sparse request selects its keys itself when stepped by {@link
 * KvRange#forwardLocal} (the engine's own selection over its keys): every row's logits of two
 * prefill chunks and the decode steps equal the single-process {@link Transformer}'s under the same
 * policy; a range the coordinator stepped layer by layer refuses to switch.
 */
class KvRangeForwardTest {

  @Test
  void aWholeSparseRequestSelectsInForwardAsTheTransformerDoes() {
    try (LoadedModel loaded = TestModels.stories260K()) {
      Transformer transformer = loaded.transformer();
      TransformerLayers layers = new TransformerLayers(loaded.config(), loaded.weights());
      int vocab = loaded.config().vocabSize();
      int[] ids = new SplittableRandom(2).ints(150, 3, vocab).toArray();
      for (AttentionPolicy p :
          new AttentionPolicy[] {
            new IndexerTopK(24, 0, IndexerSource.ownHeads(), new SelfExtend(2, 16)),
            new BlockTopK(8, 3, BlockScore.QUEST, null)
          }) {
        Sequence seq = transformer.newSequence(200, p);
        float[] want = new float[ids.length * vocab];
        transformer.forwardAll(
            seq,
            ids,
            0,
            ids.length,
            64,
            (first, rows, logits) ->
                System.arraycopy(logits, 0, want, first * vocab, rows * vocab));
        float[] dense = new float[ids.length * vocab];
        transformer.forwardAll(
            transformer.newSequence(200),
            ids,
            0,
            ids.length,
            64,
            (first, rows, logits) ->
                System.arraycopy(logits, 0, dense, first * vocab, rows * vocab));
        assertThat(maxAbsDiff(want, dense)).as("%s selects: not dense", p).isGreaterThan(1e-2);
        try (CpuKvRange range = new CpuKvRange(layers, 200, p)) {
          assertThat(range.selectsInForward()).isTrue();
          int cut = 97;
          float[] got = new float[ids.length * vocab];
          System.arraycopy(forward(range, ids, 0, cut), 0, got, 0, cut * vocab);
          System.arraycopy(
              forward(range, ids, cut, ids.length),
              0,
              got,
              cut * vocab,
              (ids.length - cut) * vocab);
          assertThat(maxAbsDiff(got, want)).as("%s every row", p).isLessThan(1e-4);
          float[] last = Arrays.copyOfRange(want, (ids.length - 1) * vocab, ids.length * vocab);
          for (int step = 0; step < 3; step++) {
            int token = Ops.argmax(last, 0, vocab);
            last = transformer.decode(seq, token);
            float[] next =
                range.forwardLocal(new int[] {token}, new int[] {ids.length + step}, true);
            assertThat(maxAbsDiff(next, last)).as("%s decode %d", p, step).isLessThan(1e-4);
          }
        }
        // stepped layer by layer first (the coordinator selecting): no switch to Forward
        try (CpuKvRange stepped = new CpuKvRange(layers, 200, p)) {
          int[] first = Arrays.copyOf(ids, 4);
          int[] positions = {0, 1, 2, 3};
          float[] attention = null;
          for (int l = 0; l < loaded.config().layers(); l++) {
            KvRange.Queries q = stepped.advance(l, first, positions, attention);
            attention = new float[4 * loaded.config().queryDim()];
            stepped.attend(
                l,
                q.plain(),
                q.grouped(),
                positions,
                attention,
                new float[4 * loaded.config().heads()]);
          }
          assertThatThrownBy(() -> stepped.forwardLocal(new int[] {5}, new int[] {4}, true))
              .isInstanceOf(IllegalStateException.class)
              .hasMessageContaining("stepped by Forward from its first token");
        }
      }
    }
  }

  /** Rows [from, to) of {@code ids} in one forward step, every row's logits. */
  private static float[] forward(KvRange range, int[] ids, int from, int to) {
    int n = to - from;
    int[] positions = new int[n];
    int[] rows = new int[n];
    for (int i = 0; i < n; i++) {
      positions[i] = from + i;
      rows[i] = i;
    }
    return range.forwardLocal(Arrays.copyOfRange(ids, from, to), positions, rows);
  }

  private static double maxAbsDiff(float[] a, float[] b) {
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
    return max;
  }
}
