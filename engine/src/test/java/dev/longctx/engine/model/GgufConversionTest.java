package dev.longctx.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.inference.Generator;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.GgmlType;
import dev.longctx.engine.tokenizer.Vocabulary;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Models written by the project's GGUF writer load back and behave like the source: F32 gives the
 * same greedy tokens; Q8_0 stays within a stated perplexity delta; a synthetic lightning indexer
 * reads back as the weights it was written from.
 */
class GgufConversionTest {

  /**
   * Q8_0 keeps each weight to within half a quantization step (|w|max/254 per 32-block), which on
   * stories260K moves perplexity by well under 1 %; 2 % leaves room without hiding a broken path.
   */
  static final double Q8_0_PERPLEXITY_DELTA = 0.02;

  @TempDir Path tmp;

  @Test
  void stories260KConvertedToF32GivesTheSameGreedyTokensAndPerplexity() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.stories260K()) {
      Path gguf = convert(source, GgmlType.F32);
      try (LoadedModel converted = LoadedModel.load(gguf, null)) {
        assertThat(converted.format()).isEqualTo(LoadedModel.Format.GGUF);
        assertThat(converted.config()).isEqualTo(source.config());
        Generator.Result a = RealModelGoldenTest.greedyFromBos(source);
        Generator.Result b = RealModelGoldenTest.greedyFromBos(converted);
        assertThat(b.tokens()).containsExactly(a.tokens());
        assertThat(b.text()).isEqualTo(RealModelGoldenTest.STORIES260K_GREEDY);
        assertThat(converted.tokenizer().encodePrompt("Once upon a time"))
            .containsExactly(1, 403, 407, 261, 378);
        assertThat(RealModelGoldenTest.perplexityOfExcerpt(converted))
            .isCloseTo(RealModelGoldenTest.perplexityOfExcerpt(source), within(1e-4));
      }
    }
  }

  @Test
  void stories260KConvertedToQ8_0StaysWithinThePerplexityDelta() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.stories260K()) {
      Path gguf = convert(source, GgmlType.Q8_0);
      try (LoadedModel converted = LoadedModel.load(gguf, null)) {
        // dim 64 rows quantize; the 172-wide FFN down projection falls back to F16.
        assertThat(converted.weights().layers().getFirst().wq().type()).isEqualTo(GgmlType.Q8_0);
        assertThat(converted.weights().layers().getFirst().wDown().type()).isEqualTo(GgmlType.F16);
        double reference = RealModelGoldenTest.perplexityOfExcerpt(source);
        double quantized = RealModelGoldenTest.perplexityOfExcerpt(converted);
        assertThat(quantized).isCloseTo(reference, within(reference * Q8_0_PERPLEXITY_DELTA));
        assertThat(quantized).isNotEqualTo(reference);
      }
    }
  }

  @Test
  void huggingFaceRotateHalfModelWrittenAsLlamaGgufIsPermutedToInterleaved() throws IOException {
    try (LoadedModel source = RealModelGoldenTest.tinyStories656K()) {
      Path gguf = tmp.resolve("tinystories.gguf");
      GgufModelWriter.write(
          gguf,
          "tinystories-656k",
          GgufModelWriter.of(source.config(), source.weights()),
          SyntheticModel.vocabulary(source.config().vocabSize()),
          GgmlType.F32);
      try (GgufFile file = GgufFile.open(gguf)) {
        LlamaConfig config = GgufModelLoader.config(file);
        LlamaWeights weights = GgufModelLoader.weights(file, config);
        assertThat(config.ropeLayout()).isEqualTo(Rope.Layout.INTERLEAVED);
        Transformer a = source.transformer();
        Transformer b = new Transformer(config, weights);
        int[] prompt = source.tokenizer().encodePrompt("Once upon a time, there was a dog.");
        float[] la = a.prefill(a.newSequence(64), prompt);
        float[] lb = b.prefill(b.newSequence(64), prompt);
        for (int i = 0; i < la.length; i++) {
          assertThat(lb[i]).as("logit %d", i).isCloseTo(la[i], within(1e-3f));
        }
      }
    }
  }

  @Test
  void aSyntheticLightningIndexerReadsBackAsWrittenAndScoresAsTheFormula() throws IOException {
    SyntheticModel.Shape shape = SyntheticModel.Shape.TINY;
    GgufModelWriter.Source source =
        SyntheticModel.source(shape, 3, new SyntheticModel.IndexerShape(3, 8));
    Path gguf = tmp.resolve("tiny-indexer.gguf");
    GgufModelWriter.write(
        gguf, "tiny", source, SyntheticModel.vocabulary(shape.config().vocabSize()), GgmlType.F32);
    LlamaConfig c = shape.config();
    try (GgufFile file = GgufFile.open(gguf)) {
      assertThat(LightningIndexer.present(file)).isTrue();
      LightningIndexer ix = LightningIndexer.fromGguf(file, c.layers(), c.ropeTheta());
      assertThat(ix.heads()).isEqualTo(3);
      assertThat(ix.headDim()).isEqualTo(8);
      assertThat(ix.dim()).isEqualTo(c.dim());
      int last = c.layers() - 1;
      float[] row = new float[c.dim()];
      float[] want = new float[c.dim()];
      for (String name : new String[] {"attn_q_b", "attn_k", "proj"}) {
        GgufModelWriter.Matrix m = source.indexerMatrix(last, name);
        var t =
            switch (name) {
              case "attn_q_b" -> ix.layer(last).wq();
              case "attn_k" -> ix.layer(last).wk();
              default -> ix.layer(last).weightsProj();
            };
        assertThat(t.rows()).as(name).isEqualTo(m.rows());
        for (int r = 0; r < m.rows(); r++) {
          m.source().row(r, want, 0);
          t.dequantizeRow(r, row, 0);
          assertThat(row).as("%s row %d", name, r).isEqualTo(want);
        }
      }
      assertThat(ix.layer(last).kNormWeight()).isEqualTo(source.indexerVector(last, "k_norm"));
      assertThat(ix.layer(last).kNormBias()).isEqualTo(source.indexerVector(last, "k_norm.bias"));

      // I(t,s) = (H·d)^-½ Σ_j w_j·ReLU(q_j·k_s) (ALGORITHMS.md §1.2), in float64 from the weights.
      java.util.SplittableRandom random = new java.util.SplittableRandom(4);
      int n = 5;
      float[] x = new float[n * c.dim()];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) random.nextDouble(-1, 1);
      }
      float[] keys = new float[n * 8];
      ix.keys(last, x, n, 0, keys);
      float[] q = new float[n * 24];
      float[] w = new float[n * 3];
      ix.queries(last, x, n, 0, q, w);
      float[] scores = new float[n];
      ix.score(q, (n - 1) * 24, w, (n - 1) * 3, keys, n, scores);
      for (int s = 0; s < n; s++) {
        double sum = 0;
        for (int j = 0; j < 3; j++) {
          double dot = 0;
          for (int i = 0; i < 8; i++) {
            dot += (double) q[(n - 1) * 24 + j * 8 + i] * keys[s * 8 + i];
          }
          sum += w[(n - 1) * 3 + j] * Math.max(0, dot);
        }
        assertThat((double) scores[s])
            .as("score of key %d", s)
            .isCloseTo(sum / Math.sqrt(24), within(1e-5 * (1 + Math.abs(sum))));
      }
    }
    try (GgufFile plain = GgufFile.open(convertedWithoutIndexer())) {
      assertThat(LightningIndexer.present(plain)).isFalse();
    }
  }

  /**
   * The same random tiny model written as F32 and in each quantized choice, prefilled with the same
   * tokens: the last position's logits move from the F32 model's by the weights' quantization
   * error. Q4_K_M (Q6_K for the projection, attn_v, ffn_down) sits between Q6_K and plain Q4_K, and
   * every tensor gets the type the mix names.
   */
  @Test
  void kQuantModelsKeepTheFloatModelsLogitsInOrderOfTheirBits() throws IOException {
    SyntheticModel.Shape shape = SyntheticModel.Shape.TINY;
    GgufModelWriter.Source source = SyntheticModel.source(shape, 5);
    Vocabulary vocab = SyntheticModel.vocabulary(shape.config().vocabSize());
    int[] prompt = new int[24];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = 3 + (int) ((i * 2654435761L) % (shape.config().vocabSize() - 3));
    }
    float[] exact =
        lastLogits(
            tmp.resolve("tiny-f32.gguf"), source, vocab, MatrixTypes.of(GgmlType.F32), prompt);
    MatrixTypes[] choices = {
      MatrixTypes.of(GgmlType.Q8_0),
      MatrixTypes.of(GgmlType.Q6_K),
      MatrixTypes.Q4_K_M,
      MatrixTypes.of(GgmlType.Q4_K),
      MatrixTypes.of(GgmlType.Q4_0)
    };
    double[] rel = new double[choices.length];
    for (int c = 0; c < choices.length; c++) {
      Path out = tmp.resolve("tiny-" + choices[c] + ".gguf");
      float[] got = lastLogits(out, source, vocab, choices[c], prompt);
      double err = 0;
      double norm = 0;
      for (int i = 0; i < exact.length; i++) {
        err += (got[i] - exact[i]) * (got[i] - exact[i]);
        norm += exact[i] * exact[i];
      }
      rel[c] = Math.sqrt(err / norm);
    }
    System.out.printf(
        "tiny logits, relative RMS vs F32: Q8_0 %.4f Q6_K %.4f Q4_K_M %.4f Q4_K %.4f Q4_0 %.4f%n",
        rel[0], rel[1], rel[2], rel[3], rel[4]);
    assertThat(rel[0]).isLessThan(rel[1]);
    assertThat(rel[1]).isLessThan(rel[2]);
    assertThat(rel[2]).isLessThan(rel[3]);
    assertThat(rel[2])
        .as("Q4_K_M vs Q4_0 (same bits outside the Q6_K matrices)")
        .isLessThan(rel[4]);
    try (GgufFile f = GgufFile.open(tmp.resolve("tiny-Q4_K_M.gguf"))) {
      for (var t : f.tensors()) {
        GgmlType want =
            t.rank() == 1
                ? GgmlType.F32
                : t.name().equals("token_embd.weight") // tied: it is the output projection
                        || t.name().endsWith(".attn_v.weight")
                        || t.name().endsWith(".ffn_down.weight")
                    ? GgmlType.Q6_K
                    : GgmlType.Q4_K;
        assertThat(t.type()).as(t.name()).isEqualTo(want);
      }
    }
  }

  private static float[] lastLogits(
      Path out, GgufModelWriter.Source source, Vocabulary vocab, MatrixTypes types, int[] prompt)
      throws IOException {
    GgufModelWriter.Written w = GgufModelWriter.write(out, "tiny", source, vocab, types);
    assertThat(w.fallbackCount()).isZero();
    assertThat(w.matrices()).isEqualTo(29);
    try (GgufFile file = GgufFile.open(out)) {
      LlamaConfig config = GgufModelLoader.config(file);
      Transformer t = new Transformer(config, GgufModelLoader.weights(file, config));
      return t.prefill(t.newSequence(64), prompt).clone();
    }
  }

  /**
   * Where rows are not whole blocks: K-quants fall back to Q8_0 when rows are whole blocks of 32,
   * else (like every other block type) to F16; F32 stays F32.
   */
  @Test
  void typeForFallsBackFromKQuantsToQ8_0ThenF16() {
    assertThat(GgufModelWriter.typeFor(GgmlType.Q4_K, 512)).isEqualTo(GgmlType.Q4_K);
    assertThat(GgufModelWriter.typeFor(GgmlType.Q6_K, 896)).isEqualTo(GgmlType.Q8_0);
    assertThat(GgufModelWriter.typeFor(GgmlType.Q4_K, 64)).isEqualTo(GgmlType.Q8_0);
    assertThat(GgufModelWriter.typeFor(GgmlType.Q4_K, 172)).isEqualTo(GgmlType.F16);
    assertThat(GgufModelWriter.typeFor(GgmlType.Q4_0, 172)).isEqualTo(GgmlType.F16);
    assertThat(GgufModelWriter.typeFor(GgmlType.F32, 172)).isEqualTo(GgmlType.F32);
    assertThat(MatrixTypes.parse("q4_k_m")).isSameAs(MatrixTypes.Q4_K_M);
    assertThat(MatrixTypes.parse("q6_k")).isEqualTo(MatrixTypes.of(GgmlType.Q6_K));
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> MatrixTypes.parse("Q5_K"))
        .hasMessageContaining("Q5_K")
        .hasMessageContaining("Q4_K_M");
  }

  private Path convertedWithoutIndexer() throws IOException {
    SyntheticModel.Shape shape = SyntheticModel.Shape.TINY;
    Path out = tmp.resolve("tiny.gguf");
    GgufModelWriter.write(
        out,
        "tiny",
        SyntheticModel.source(shape, 3),
        SyntheticModel.vocabulary(shape.config().vocabSize()),
        GgmlType.F32);
    return out;
  }

  private Path convert(LoadedModel source, GgmlType type) throws IOException {
    Path out = tmp.resolve("stories260K-" + type + ".gguf");
    GgufModelWriter.write(
        out,
        "stories260K",
        GgufModelWriter.of(source.config(), source.weights()),
        source.vocabulary(),
        type);
    return out;
  }
}
