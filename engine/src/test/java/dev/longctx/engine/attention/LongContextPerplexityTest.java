package dev.longctx.engine.attention;

import static org.assertj.core.api.Assertions.assertThat;

import dev.longctx.engine.TestData;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.inference.Perplexity;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import org.junit.jupiter.api.Test;

/**
 * The seed result of SelfExtend at small scale (issue target): stories260K, trained on 512 tokens,
 * read 2048-token windows with SelfExtend and stays within 10% of its perplexity at 512 on the same
 * text, while dense attention degrades; top-k sparse attention stays within 3% of its dense
 * counterpart.
 */
class LongContextPerplexityTest {

  @Test
  void stories260KAt2048TokensWithSelfExtendStaysWithinTenPercentOfItsTrainedLength()
      throws IOException {
    String text = Files.readString(TestData.file("text/tinystories_train_excerpt.txt"));
    try (LoadedModel model = TestModels.stories260K()) {
      int[] tokens = model.tokenizer().encode(text);
      int bos = model.tokenizer().bosId();
      Transformer dense = model.transformer();
      // The same 4094 predicted tokens: 8 windows of 512 vs 2 windows of 2048.
      double at512 = Perplexity.evaluate(dense, tokens, 512, bos, 8, n -> {}).perplexity();
      double dense2048 = Perplexity.evaluate(dense, tokens, 2048, bos, 2, n -> {}).perplexity();
      SelfExtend se = new SelfExtend(8, 256);
      double se2048 =
          Perplexity.evaluate(dense.withAttention(se), tokens, 2048, bos, 2, n -> {}).perplexity();
      double sparse2048 =
          Perplexity.evaluate(
                  dense.withAttention(new IndexerTopK(256, 0, IndexerSource.ownHeads(), se)),
                  tokens,
                  2048,
                  bos,
                  2,
                  n -> {})
              .perplexity();
      assertThat(se2048).isLessThanOrEqualTo(1.1 * at512);
      assertThat(dense2048).isGreaterThan(1.1 * at512);
      assertThat(sparse2048).isLessThanOrEqualTo(1.03 * se2048);
    }
  }

  @Test
  void tinyStories656KTopK256WithSelfExtendStaysWithinThreePercentOfSelfExtendDense()
      throws IOException {
    String text = Files.readString(TestData.file("text/tinystories_train_excerpt.txt"));
    try (LoadedModel model = TestModels.tinyStories656K()) {
      int[] tokens = model.tokenizer().encode(text.substring(0, 40_000));
      int bos = model.tokenizer().bosId();
      SelfExtend se = new SelfExtend(32, 256);
      Transformer tr = model.transformer();
      double dense =
          Perplexity.evaluate(tr.withAttention(se), tokens, 2048, bos, 4, n -> {}).perplexity();
      double sparse =
          Perplexity.evaluate(
                  tr.withAttention(new IndexerTopK(256, 0, IndexerSource.ownHeads(), se)),
                  tokens,
                  2048,
                  bos,
                  4,
                  n -> {})
              .perplexity();
      // The sparse-quality target (k = 256 within 3%) on the model where the one-pass
      // own-heads selector missed it by 7–14% (docs/LONG_CONTEXT.md).
      assertThat(sparse).isLessThanOrEqualTo(1.03 * dense);
    }
  }
}
