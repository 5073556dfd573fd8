package dev.longctx.engine.inference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The shards' half of the distributed top-k (ALGORITHMS.md §4.5, test case 7): ranges holding a
 * random partition of a request's positions index their own lightning-indexer keys; the merge of
 * their local top-k lists is, query by query, exactly the single-process selection — the same
 * positions, and the same scores in the same order as one range holding every key.
 */
class KvRangeScoreTest {

  static final int TOKENS = 150;

  @Test
  void shardsScoringTheirOwnKeysSelectWhatOneProcessSelects() {
    try (LoadedModel loaded = TestModels.stories260K()) {
      LlamaConfig c = loaded.config();
      TransformerLayers layers = new TransformerLayers(c, loaded.weights());
      LightningIndexer indexer = TestModels.randomIndexer(c, 4);
      int k = 24;
      AttentionPolicy policy = new IndexerTopK(k, 0, new IndexerSource.ModelFile(indexer), null);
      SplittableRandom random = new SplittableRandom(8);
      int[] ids = random.ints(TOKENS, 3, c.vocabSize()).toArray();
      int width = indexer.heads() * indexer.headDim();

      // One range holding every position: the layer input the single process indexes.
      CpuKvRange whole = new CpuKvRange(layers, TOKENS, policy);
      int[] all = new int[TOKENS];
      Arrays.setAll(all, i -> i);
      float[] queries = whole.advance(0, ids, all, null).plain();
      float[] x = whole.stepNormedInput();
      KvRange.IndexQueries wholeQueries = whole.indexStep();
      SequenceAttention single = new SequenceAttention(policy, c, TOKENS);
      single.append(0, 0, TOKENS, whole.stepKeys(false), null, x);
      int[][] want = single.select(0, 0, TOKENS, queries, null, x);

      for (int p : new int[] {1, 2, 3, 5}) {
        // Every position on a random shard (some shards may hold few keys, or none early on).
        int[] shardOf = random.ints(TOKENS, 0, p).toArray();
        List<CpuKvRange> ranges = new ArrayList<>();
        float[] iq = new float[TOKENS * width];
        float[] iw = new float[TOKENS * indexer.heads()];
        for (int r = 0; r < p; r++) {
          int shard = r;
          int[] mine =
              java.util.stream.IntStream.range(0, TOKENS)
                  .filter(i -> shardOf[i] == shard)
                  .toArray();
          CpuKvRange range = new CpuKvRange(layers, TOKENS, policy);
          ranges.add(range);
          if (mine.length == 0) {
            continue;
          }
          int[] tokens = Arrays.stream(mine).map(i -> ids[i]).toArray();
          range.advance(0, tokens, mine, null);
          KvRange.IndexQueries q = range.indexStep();
          for (int j = 0; j < mine.length; j++) {
            System.arraycopy(q.queries(), j * width, iq, mine[j] * width, width);
            System.arraycopy(
                q.weights(), j * indexer.heads(), iw, mine[j] * indexer.heads(), indexer.heads());
          }
        }
        assertThat(iq).as("P=%d indexer queries", p).isEqualTo(wholeQueries.queries());
        assertThat(iw).as("P=%d head weights", p).isEqualTo(wholeQueries.weights());
        int sparse = 0;
        for (int t = 0; t < TOKENS; t++) {
          if (t + 1 <= k) {
            assertThat(want[t * c.kvHeads()]).as("query %d attends densely", t).isNull();
            continue;
          }
          sparse++;
          float[] q = Arrays.copyOfRange(iq, t * width, (t + 1) * width);
          float[] w = Arrays.copyOfRange(iw, t * indexer.heads(), (t + 1) * indexer.heads());
          int[] at = {t};
          List<TopK.Candidates> lists = new ArrayList<>();
          for (CpuKvRange range : ranges) {
            TopK.Candidates local = range.score(0, q, w, at, k)[0];
            assertThat(local.size()).isLessThanOrEqualTo(k);
            lists.add(local);
          }
          TopK.Candidates merged = TopK.merge(lists, k);
          TopK.Candidates reference = whole.score(0, q, w, at, k)[0];
          assertThat(merged.positions())
              .as("P=%d query %d order", p, t)
              .isEqualTo(reference.positions());
          assertThat(merged.scores())
              .as("P=%d query %d scores", p, t)
              .isEqualTo(reference.scores());
          int[] chosen = merged.positions().clone();
          Arrays.sort(chosen);
          assertThat(chosen).as("P=%d query %d selection", p, t).isEqualTo(want[t * c.kvHeads()]);
        }
        assertThat(sparse).isEqualTo(TOKENS - k);
      }
    }
  }

  @Test
  void scoringNeedsEveryStepIndexedAndAModelIndexer() {
    try (LoadedModel loaded = TestModels.stories260K()) {
      LlamaConfig c = loaded.config();
      TransformerLayers layers = new TransformerLayers(c, loaded.weights());
      LightningIndexer indexer = TestModels.randomIndexer(c, 5);
      int width = indexer.heads() * indexer.headDim();
      AttentionPolicy policy = new IndexerTopK(4, 0, new IndexerSource.ModelFile(indexer), null);
      float[] q = new float[width];
      float[] w = new float[indexer.heads()];
      try (CpuKvRange range = new CpuKvRange(layers, 16, policy)) {
        range.advance(0, new int[] {5, 6}, new int[] {0, 1}, null);
        range.indexStep();
        assertThat(range.score(0, q, w, new int[] {1}, 4)[0].positions()).containsExactly(0, 1);
        assertThat(range.score(0, q, w, new int[] {0}, 4)[0].positions()).containsExactly(0);
        // a second step not indexed: its keys would be missing from every score
        range.advance(0, new int[] {7}, new int[] {2}, null);
        assertThatThrownBy(() -> range.score(0, q, w, new int[] {2}, 4))
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("cover 2 of the 3 positions");
        assertThatThrownBy(() -> range.score(0, q, w, new int[] {2}, 0))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("top_k must be >= 1");
        assertThatThrownBy(() -> range.score(0, new float[1], w, new int[] {2}, 4))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("indexer queries must be [1, " + width + "]");
        // the threshold exchange: a threshold round needs the summary round's kept lists
        range.indexStep();
        assertThatThrownBy(() -> range.keptAbove(0, new float[] {0f}))
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("no local lists of layer 0 are kept");
        TopK.Candidates[] lists = range.score(0, q, w, new int[] {2}, 4);
        range.keep(0, lists);
        assertThatThrownBy(() -> range.keptAbove(0, new float[] {0f, 0f}))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("the summary round had 1 queries, the threshold round 2");
        float second = lists[0].scores()[1];
        TopK.Candidates above = range.keptAbove(0, new float[] {second})[0];
        // the kept list's prefix scoring ≥ its second score (all three here: q = 0 ties them)
        assertThat(above.positions()).containsExactly(lists[0].positions());
        assertThatThrownBy(() -> range.keptAbove(0, new float[] {second}))
            .as("forgotten after the threshold round")
            .isInstanceOf(IllegalStateException.class);
      }
      try (CpuKvRange dense = new CpuKvRange(layers, 16, AttentionPolicy.dense())) {
        dense.advance(0, new int[] {5}, new int[] {0}, null);
        assertThatThrownBy(dense::indexStep)
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("no model-file lightning indexer");
      }
    }
  }
}
