package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.BlockScore;
import dev.longctx.engine.attention.AttentionPolicy.BlockTopK;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.SyntheticContext;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.TestModels;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The top-k policies on the GPU ({@link CudaSelector}: selection on the device) against the CPU
 * {@link Transformer} under the same policy: logits after a multi-row prefill chunk and after each
 * greedy decode step, the greedy tokens, and the selector's byte accounting. Each policy is also
 * checked to change the logits against dense attention by far more than the tolerance, so a
 * selection that were ignored (or wrong) fails. Skips without a CUDA device.
 */
class CudaSelectorTest {

  private static final double TOLERANCE = 2e-3;

  /**
   * Runs {@code policy} on both backends over {@code prompt} and {@code steps} decode steps and
   * compares them; {@code minEffect} is how far the CPU's sparse logits must lie from dense ones.
   */
  private static void compare(
      Transformer cpu,
      CudaModel gpu,
      AttentionPolicy policy,
      int[] prompt,
      int steps,
      double minEffect) {
    Sequence cs = cpu.newSequence(prompt.length + steps, policy);
    List<float[]> expected = CudaTests.greedyLogits(cpu, cs, prompt, steps);
    List<float[]> dense = CudaTests.greedyLogits(cpu, cpu.newSequence(prompt.length), prompt, 0);
    assertThat(CudaTests.maxAbsDiff(expected.get(0), dense.get(0)))
        .as("%s changes the logits against dense attention", policy)
        .isGreaterThan(minEffect);
    try (CudaSequence gs = gpu.newSequence(prompt.length + steps, policy)) {
      List<float[]> actual = CudaTests.greedyLogits(gpu, gs, prompt, steps);
      for (int s = 0; s <= steps; s++) {
        float[] e = expected.get(s);
        float[] g = actual.get(s);
        assertThat(Ops.argmax(g, 0, g.length))
            .as("%s greedy token after step %d", policy, s)
            .isEqualTo(Ops.argmax(e, 0, e.length));
        assertThat(CudaTests.maxAbsDiff(g, e))
            .as("%s logits after step %d", policy, s)
            .isLessThan(TOLERANCE);
      }
      assertThat(gs.length()).isEqualTo(cs.length());
      assertThat(gs.selectorBytes())
          .as("%s selector bytes", policy)
          .isEqualTo(cs.bytesAllocated() - cs.cache().bytesAllocated());
      assertThat(gs.cache().bytesPerToken()).isEqualTo(cs.cache().bytesPerToken());
    }
  }

  /**
   * stories260K (head dim 8: the generic attention kernel) with a 100-token prompt: indexer top-k
   * with the own-heads selector (k = 16: stage 1 page pruning from 65 tokens on, sinks and local
   * window forced), with SelfExtend and a dense-below bound; block top-k with Quest and MoBA-mean
   * scores, with SelfExtend in llama.cpp mode; a model-file lightning indexer.
   */
  @Test
  void topKPoliciesMatchTheCpuBackend() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] prompt = new SplittableRandom(3).ints(100, 3, loaded.config().vocabSize()).toArray();
      LightningIndexer indexer = TestModels.randomIndexer(loaded.config(), 11);
      for (AttentionPolicy p :
          new AttentionPolicy[] {
            new IndexerTopK(16),
            new IndexerTopK(16, 40, IndexerSource.ownHeads(), new SelfExtend(2, 8)),
            new BlockTopK(8, 3, BlockScore.QUEST, null),
            new BlockTopK(4, 4, BlockScore.MEAN, new SelfExtend(2, 8, SelfExtendMode.LLAMACPP)),
            new IndexerTopK(12, 0, new IndexerSource.ModelFile(indexer), null),
          }) {
        compare(cpu, gpu, p, prompt, 3, 0.02);
      }
      // a prompt of two GPU prefill chunks (512 + 88 rows): the second chunk's queries select
      // among keys of the first, in slices, and rows past the trained 512 positions
      int[] longPrompt =
          new SplittableRandom(8).ints(600, 3, loaded.config().vocabSize()).toArray();
      assertThat(longPrompt.length).isGreaterThan(CudaModel.CHUNK);
      compare(cpu, gpu, new IndexerTopK(64), longPrompt, 1, 0.02);
    }
  }

  /**
   * A one-layer random-weight model with head dimension 64 and GQA groups of 2, whose sparse rows
   * take the split-K kernel in its selected mode (per query and per KV head lists) rather than the
   * generic one: own heads with exact SelfExtend, block top-k.
   */
  @Test
  void topKPoliciesMatchTheCpuBackendOnTheHeadDim64Kernels(@TempDir Path tmp) throws IOException {
    CudaContext cx = CudaTests.context();
    LlamaConfig shape =
        new LlamaConfig(
            "qwen2", 128, 128, 1, 2, 1, 64, 260, 512, 1e-6f, 10000f, Rope.Layout.ROTATE_HALF, null);
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("topk-d64.gguf"), shape, 5)) {
      LlamaConfig c = model.config();
      LlamaWeights weights = model.weights();
      Transformer cpu = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(9).ints(90, 0, c.vocabSize()).toArray();
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        for (AttentionPolicy p :
            new AttentionPolicy[] {
              new IndexerTopK(16, 0, IndexerSource.ownHeads(), new SelfExtend(4, 16)),
              new BlockTopK(8, 3, BlockScore.QUEST, null)
            }) {
          compare(cpu, gpu, p, prompt, 2, 0.01);
        }
      }
    }
  }

  /**
   * The selection itself, op by op: random queries, keys and layer inputs go through the CPU {@code
   * SequenceAttention.select} and the device {@link CudaSelector} in chunks (a long prefill chunk,
   * decode steps, a second chunk), and every sparse row's key set must be the CPU's exactly on the
   * emulation (the dense rows too); on a GPU, whose fused multiply-adds round differently, a
   * near-tie at the k-th key may swap in at most 1 % of the lists. Stage 1 page pruning of the
   * own-heads selector, SelfExtend's grouped scoring in both modes, Quest and mean block scores,
   * per-KV-head block lists, the lightning indexer; rows selected in slices of a few rows, as a
   * long context's are.
   */
  @Test
  void selectionsEqualTheCpuSelectionOnRandomInputs() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      LightningIndexer indexer = TestModels.randomIndexer(c, 5);
      int[] chunks = {150, 1, 1, 37, 1};
      int total = 0;
      for (int n : chunks) {
        total += n;
      }
      for (AttentionPolicy p :
          new AttentionPolicy[] {
            new IndexerTopK(32),
            new IndexerTopK(24, 60, IndexerSource.ownHeads(), new SelfExtend(4, 32)),
            new IndexerTopK(
                20, 0, IndexerSource.ownHeads(), new SelfExtend(2, 16, SelfExtendMode.LLAMACPP)),
            new BlockTopK(16, 4, BlockScore.QUEST, null),
            new BlockTopK(8, 3, BlockScore.MEAN, new SelfExtend(2, 8)),
            new IndexerTopK(40, 0, new IndexerSource.ModelFile(indexer), null),
          }) {
        SplittableRandom r = new SplittableRandom(p.hashCode());
        SequenceAttention cpu = new SequenceAttention(p, c, total);
        CudaSelector sel = CudaSelector.of(gpu, p, total);
        // a few rows per slice, so the prefill chunk goes through many (as long contexts do)
        sel.setSliceBytes(16 << 10);
        try (sel;
            CudaModel.Activations a = gpu.newActivations(chunks[0], p.positions())) {
          int start = 0;
          int[] compared = new int[2];
          for (int n : chunks) {
            for (int l : new int[] {0, c.layers() - 1}) {
              compareLayer(compared, cx, c, p, cpu, sel, a, r, l, start, n);
            }
            start += n;
          }
          assertThat(compared[1])
              .as("%s: lists differing by a near-tie swap, of %d", p, compared[0])
              .isLessThanOrEqualTo(1 + compared[0] / 100);
          assertThat(sel.bytesAllocated()).as("%s bytes", p).isEqualTo(cpu.bytesAllocated());
        }
      }
    }
  }

  /**
   * Compares layer l's selections of a chunk; counts into {@code compared} the lists compared and
   * those that differ (only on a real GPU, and only by a near-tie swap).
   */
  private static void compareLayer(
      int[] compared,
      CudaContext cx,
      LlamaConfig c,
      AttentionPolicy p,
      SequenceAttention cpu,
      CudaSelector sel,
      CudaModel.Activations a,
      SplittableRandom r,
      int l,
      int start,
      int n) {
    boolean se = p.positions() != null;
    float[] q = gaussian(r, n * c.queryDim());
    float[] k = gaussian(r, n * c.kvDim());
    float[] qg = se ? gaussian(r, n * c.queryDim()) : null;
    float[] kg = se ? gaussian(r, n * c.kvDim()) : null;
    float[] x = gaussian(r, n * c.dim());
    int[] positions = new int[n];
    for (int t = 0; t < n; t++) {
      positions[t] = start + t;
    }
    cpu.reserve(start + n);
    cpu.append(l, start, n, k, kg, x);
    int[][] expected = cpu.select(l, start, n, q, qg, x);
    cx.write(a.qkv, 0, q, q.length);
    cx.write(a.qkv, (long) n * c.queryDim(), k, k.length);
    if (se) {
      cx.write(a.qkGrouped, 0, qg, qg.length);
      cx.write(a.qkGrouped, (long) n * c.queryDim(), kg, kg.length);
    }
    cx.write(a.xb, 0, x, x.length);
    cx.write(a.positions, 0, positions, n);
    sel.reserve(start + n);
    sel.append(l, a, start, n);
    int dense = sel.denseRows(start, n);
    int kvHeads = c.kvHeads();
    for (int t = 0; t < dense; t++) {
      assertThat(expected[t * kvHeads]).as("%s row %d is dense", p, start + t).isNull();
    }
    if (dense == n) {
      return;
    }
    CudaSelector.Lists lists = sel.select(l, a, start, n, dense);
    int[] got = sel.read(lists, n - dense);
    for (int t = dense; t < n; t++) {
      for (int g = 0; g < kvHeads; g++) {
        int at = (t - dense) * lists.rowStride() + (lists.perKvHead() ? g * lists.count() : 0);
        int[] actual =
            Arrays.stream(got, at, at + lists.count()).filter(v -> v >= 0).sorted().toArray();
        int[] want = expected[t * kvHeads + g];
        assertThat(want).as("%s row %d has a selection", p, start + t).isNotNull();
        compared[0]++;
        if (Arrays.equals(actual, want)) {
          continue;
        }
        String where = String.format("%s layer %d position %d KV head %d", p, l, start + t, g);
        if (emulated(cx)) {
          assertThat(actual).as(where).isEqualTo(want); // the emulation rounds as Java does
        }
        // A GPU rounds differently (fused multiply-adds): a near-tie at the k-th key may swap.
        compared[1]++;
        assertThat(actual.length).as(where).isEqualTo(want.length);
        assertThat(Arrays.stream(actual).filter(v -> Arrays.binarySearch(want, v) < 0).count())
            .as("%s: keys swapped at the boundary", where)
            .isLessThanOrEqualTo(2);
      }
    }
  }

  /** Whether the device is the CPU emulation of docs/tools/cuda-emulate (Java's rounding). */
  private static boolean emulated(CudaContext cx) {
    return cx.deviceName().contains("emulation");
  }

  private static float[] gaussian(SplittableRandom r, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      double u = r.nextDouble(1e-12, 1);
      v[i] = (float) (Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.nextDouble()));
    }
    return v;
  }

  /**
   * The benchmarks' synthetic context ({@link CudaModel#extendSynthetic}, replicating resident
   * tokens up to a depth on the device) decodes as the CPU's {@code SyntheticContext.extend} does:
   * the KV cache and the selector state equal the CPU's, so the decode logits after it match, dense
   * and sparse; a lightning indexer is refused on both.
   */
  @Test
  void aSyntheticContextDecodesAsOnTheCpu() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      Transformer cpu = new Transformer(loaded.config(), loaded.weights());
      int[] prompt = new SplittableRandom(4).ints(20, 3, loaded.config().vocabSize()).toArray();
      int depth = 150;
      for (AttentionPolicy p :
          new AttentionPolicy[] {
            AttentionPolicy.dense(),
            new IndexerTopK(16, 0, IndexerSource.ownHeads(), new SelfExtend(2, 8)),
            new BlockTopK(8, 3, BlockScore.QUEST, null)
          }) {
        Sequence cs = cpu.newSequence(depth + 2, p);
        cpu.prefill(cs, prompt);
        SyntheticContext.extend(cs, depth);
        try (CudaSequence gs = gpu.newSequence(depth + 2, p)) {
          gpu.prefill(gs, prompt);
          gpu.extendSynthetic(gs, depth);
          assertThat(gs.length()).isEqualTo(depth);
          assertThat(gs.selectorBytes())
              .isEqualTo(cs.bytesAllocated() - cs.cache().bytesAllocated());
          for (int token : new int[] {5, 77}) {
            float[] e = cpu.decode(cs, token);
            float[] g = gpu.decode(gs, token);
            assertThat(CudaTests.maxAbsDiff(g, e))
                .as("%s decode after the synthetic context", p)
                .isLessThan(TOLERANCE);
          }
        }
      }
      LightningIndexer indexer = TestModels.randomIndexer(loaded.config(), 2);
      try (CudaSequence gs =
          gpu.newSequence(
              depth, new IndexerTopK(8, 0, new IndexerSource.ModelFile(indexer), null))) {
        gpu.prefill(gs, prompt);
        assertThatThrownBy(() -> gpu.extendSynthetic(gs, depth))
            .hasMessageContaining("own-heads indexer only");
      }
    }
  }

  /**
   * The per-token selector bytes a server budgets with ({@link CudaModel#bytesPerToken}) are what
   * the selector allocates per token of capacity, for every policy.
   */
  @Test
  void selectorBytesPerTokenAreWhatItAllocates() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      for (AttentionPolicy p :
          new AttentionPolicy[] {
            new IndexerTopK(32),
            new IndexerTopK(32, 0, IndexerSource.ownHeads(), new SelfExtend(4, 8)),
            new BlockTopK(16, 4),
            new IndexerTopK(
                8, 0, new IndexerSource.ModelFile(TestModels.randomIndexer(c, 1)), null),
            AttentionPolicy.dense()
          }) {
        int tokens = 1024;
        try (CudaSequence seq = gpu.newSequence(tokens, p)) {
          if (seq.selector() != null) {
            seq.selector().reserve(tokens);
          }
          assertThat(seq.selectorBytes())
              .as("%s", p)
              .isEqualTo(CudaSelector.bytesPerToken(c, p) * tokens);
          assertThat(gpu.bytesPerToken(p))
              .isEqualTo(CudaSelector.bytesPerToken(c, p) + seq.cache().bytesPerToken());
        }
      }
    }
  }

  @Test
  void policiesTheGpuCannotRunAreRefusedNamingTheLimit() {
    assertThat(CudaModel.supports(new IndexerTopK(CudaKernels.TOPK_MAX))).isTrue();
    assertThat(CudaModel.supports(new BlockTopK(64, 8))).isTrue();
    assertThatThrownBy(() -> CudaModel.requireSupported(new IndexerTopK(CudaKernels.TOPK_MAX + 1)))
        .hasMessageContaining("indexer-topk")
        .hasMessageContaining("at most " + CudaKernels.TOPK_MAX + " keys");
    // A distilled indexer's file runs on the device as a model file's indexer does.
    assertThat(
            CudaModel.supports(
                new IndexerTopK(
                    8,
                    0,
                    new IndexerSource.IndexerFile(
                        Path.of("ix.gguf"),
                        TestModels.randomIndexer(
                            new LlamaConfig(
                                "llama",
                                64,
                                128,
                                2,
                                2,
                                1,
                                64,
                                260,
                                512,
                                1e-5f,
                                10000f,
                                Rope.Layout.INTERLEAVED,
                                null),
                            3)),
                    null)))
        .isTrue();
  }

  /** A lightning indexer of 2 heads of dimension 8 with random weights for {@code c}'s layers. */
}
