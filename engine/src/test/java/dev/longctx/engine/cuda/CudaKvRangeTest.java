package dev.longctx.engine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.IndexerTopK;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtendMode;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.inference.CpuKvRange;
import dev.longctx.engine.inference.KvRange;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.inference.TransformerLayers;
import dev.longctx.engine.kernel.Partial;
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
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GPU shards ({@link CudaKvRange}, DESIGN.md §4): a request split over three ranges is driven
 * through the shard protocol's steps (advance, attend every range's queries on every range, merge
 * the partials by LSE, advance with the merged output, logits) on the GPU and on the CPU ({@link
 * CpuKvRange}) in lockstep. Every query, every partial (output and LSE) and the logits must agree,
 * and the merged result must equal the single-process CPU {@link Transformer}. Dense, SelfExtend
 * (both position modes), sparse selections (per query and per KV head, with "every key" entries)
 * and two placements (contiguous, interleaved) on the real stories260K (head dim 8: the generic
 * attention kernel) and a head-dim-64 synthetic model (the split-K kernels, and the tensor-core
 * kernel for ranges of 64+ rows). Skips without a CUDA device; runs on the CPU emulation through
 * docs/tools/cuda-emulate/java-check.sh.
 */
class CudaKvRangeTest {

  private static final int SHARDS = 3;

  private static final class Lockstep {
    final LlamaConfig c;
    final KvRange[] cpu = new KvRange[SHARDS];
    final KvRange[] gpu = new KvRange[SHARDS];
    final SplittableRandom random;
    final boolean sparse;
    final String label;

    /** Relative tolerance of partials; looser when the tensor-core kernel (FP16 products) runs. */
    final double partialTolerance;

    int partialsCompared;

    Lockstep(
        LlamaConfig c,
        IntFunction<KvRange> cpuRanges,
        IntFunction<KvRange> gpuRanges,
        boolean sparse,
        long seed,
        String label,
        double partialTolerance) {
      this.c = c;
      this.partialTolerance = partialTolerance;
      for (int r = 0; r < SHARDS; r++) {
        cpu[r] = cpuRanges.apply(r);
        gpu[r] = gpuRanges.apply(r);
      }
      this.sparse = sparse;
      this.random = new SplittableRandom(seed);
      this.label = label;
    }

    /**
     * One step: {@code owner[i]} is the range that holds token i (at position {@code
     * positions[i]}). Returns the GPU's logits of the step's last token (after checking the CPU's).
     */
    float[] step(int[] tokens, int[] positions, int[] owner) {
      int[][] tok = new int[SHARDS][];
      int[][] pos = new int[SHARDS][];
      for (int r = 0; r < SHARDS; r++) {
        int rr = r;
        int[] idx =
            java.util.stream.IntStream.range(0, tokens.length)
                .filter(i -> owner[i] == rr)
                .toArray();
        tok[r] = Arrays.stream(idx).map(i -> tokens[i]).toArray();
        pos[r] = Arrays.stream(idx).map(i -> positions[i]).toArray();
      }
      float[][] attCpu = new float[SHARDS][];
      float[][] attGpu = new float[SHARDS][];
      for (int l = 0; l < c.layers(); l++) {
        KvRange.Queries[] qc = new KvRange.Queries[SHARDS];
        KvRange.Queries[] qg = new KvRange.Queries[SHARDS];
        for (int r = 0; r < SHARDS; r++) {
          qc[r] = cpu[r].advance(l, tok[r], pos[r], attCpu[r]);
          qg[r] = gpu[r].advance(l, tok[r], pos[r], attGpu[r]);
          assertClose(qg[r].plain(), qc[r].plain(), 1e-4, "queries of range %d layer %d", r, l);
          if (qc[r].grouped() != null) {
            assertClose(
                qg[r].grouped(), qc[r].grouped(), 1e-4, "grouped queries %d layer %d", r, l);
          }
          assertClose(
              gpu[r].stepKeys(false), cpu[r].stepKeys(false), 1e-4, "keys %d layer %d", r, l);
          assertClose(
              gpu[r].stepNormedInput(),
              cpu[r].stepNormedInput(),
              1e-4,
              "normed input %d layer %d",
              r,
              l);
        }
        for (int r = 0; r < SHARDS; r++) {
          int m = pos[r].length;
          int[][] selected = sparse && m > 0 ? selections(pos[r]) : null;
          float[][] outs = new float[SHARDS][];
          float[][] lses = new float[SHARDS][];
          for (int s = 0; s < SHARDS; s++) {
            float[] oc = new float[m * c.queryDim()];
            float[] lc = new float[m * c.heads()];
            float[] og = new float[m * c.queryDim()];
            float[] lg = new float[m * c.heads()];
            // The GPU attends the GPU's queries: the CPU's are its own; both were compared above.
            cpu[s].attend(l, qc[r].plain(), qc[r].grouped(), pos[r], selected, oc, lc);
            gpu[s].attend(l, qc[r].plain(), qc[r].grouped(), pos[r], selected, og, lg);
            double tol = partialTolerance;
            assertClose(og, oc, tol, "partial output of %d's queries on %d, layer %d", r, s, l);
            assertClose(lg, lc, tol, "partial LSE of %d's queries on %d, layer %d", r, s, l);
            partialsCompared++;
            outs[s] = oc;
            lses[s] = lc;
          }
          attCpu[r] = merge(outs, lses, m);
          attGpu[r] = attCpu[r].clone();
        }
      }
      int last = owner[owner.length - 1];
      int row = pos[last].length - 1;
      float[] lc = cpu[last].logits(attCpu[last], new int[] {row});
      float[] lg = gpu[last].logits(attGpu[last], new int[] {row});
      assertClose(lg, lc, 10 * partialTolerance, "logits");
      for (int r = 0; r < SHARDS; r++) {
        assertThat(gpu[r].slots()).isEqualTo(cpu[r].slots());
      }
      return lc;
    }

    /**
     * Random selections for the queries at {@code positions}: per query or per query and KV head,
     * each a random ascending subset of [0, position + 3] (positions past the query and ones held
     * elsewhere are dropped by the ranges) or null (every key).
     */
    int[][] selections(int[] positions) {
      boolean perHead = random.nextBoolean() && c.kvHeads() > 1;
      int units = perHead ? c.kvHeads() : 1;
      int[][] selected = new int[positions.length * units][];
      for (int u = 0; u < selected.length; u++) {
        int p = positions[u / units];
        if (random.nextInt(4) == 0) {
          continue; // every key
        }
        selected[u] =
            java.util.stream.IntStream.rangeClosed(0, p + 3)
                .filter(j -> random.nextInt(3) != 0)
                .toArray();
      }
      return selected;
    }

    /** The LSE merge of the ranges' partials, row by row (ALGORITHMS.md §4.2). */
    float[] merge(float[][] outs, float[][] lses, int m) {
      int heads = c.heads();
      int hd = c.headDim();
      float[] out = new float[m * c.queryDim()];
      float[] rowOut = new float[heads * hd];
      float[] rowLse = new float[heads];
      for (int t = 0; t < m; t++) {
        float[][] o = new float[SHARDS][];
        float[][] s = new float[SHARDS][];
        for (int r = 0; r < SHARDS; r++) {
          o[r] = Arrays.copyOfRange(outs[r], t * heads * hd, (t + 1) * heads * hd);
          s[r] = Arrays.copyOfRange(lses[r], t * heads, (t + 1) * heads);
        }
        Partial.mergeHeads(o, s, heads, hd, rowOut, rowLse);
        System.arraycopy(rowOut, 0, out, t * heads * hd, heads * hd);
      }
      return out;
    }

    void close() {
      for (int r = 0; r < SHARDS; r++) {
        cpu[r].close();
        gpu[r].close();
      }
    }
  }

  private static void assertClose(
      float[] actual, float[] expected, double tol, String what, Object... args) {
    assertThat(actual.length).as(what, args).isEqualTo(expected.length);
    for (int i = 0; i < actual.length; i++) {
      float a = actual[i];
      float e = expected[i];
      if (e == Float.NEGATIVE_INFINITY || a == Float.NEGATIVE_INFINITY) {
        assertThat(a).as(what + " [%d]", append(args, i)).isEqualTo(e);
        continue;
      }
      assertThat((double) Math.abs(a - e))
          .as(what + " [%d]: %s vs %s", append(args, i, a, e))
          .isLessThanOrEqualTo(tol * Math.max(1, Math.abs(e)));
    }
  }

  private static Object[] append(Object[] args, Object... more) {
    Object[] all = Arrays.copyOf(args, args.length + more.length);
    System.arraycopy(more, 0, all, args.length, more.length);
    return all;
  }

  /**
   * Runs a prompt of {@code prompt.length} tokens and {@code decode} more tokens through three GPU
   * ranges and three CPU ranges in lockstep; placement contiguous (interleaved false) or
   * interleaved in blocks of 4; checks the merged logits against the one-process transformer.
   */
  private static void shardedRun(
      CudaModel gpu,
      TransformerLayers layers,
      Transformer single,
      AttentionPolicy policy,
      int[] prompt,
      int decode,
      boolean interleaved,
      boolean sparse) {
    shardedRun(gpu, layers, single, policy, prompt, decode, interleaved, sparse, 2e-4);
  }

  private static void shardedRun(
      CudaModel gpu,
      TransformerLayers layers,
      Transformer single,
      AttentionPolicy policy,
      int[] prompt,
      int decode,
      boolean interleaved,
      boolean sparse,
      double partialTolerance) {
    LlamaConfig c = layers.config();
    int capacity = prompt.length + decode;
    Lockstep run =
        new Lockstep(
            c,
            r -> new CpuKvRange(layers, capacity, policy),
            r -> gpu.newRange(capacity, policy),
            sparse,
            prompt.length * 31L + decode,
            policy.name(),
            partialTolerance);
    try {
      int n = prompt.length;
      int[] positions = java.util.stream.IntStream.range(0, n).toArray();
      int[] owner = new int[n];
      for (int i = 0; i < n; i++) {
        owner[i] = interleaved ? (i / 4) % SHARDS : i * SHARDS / n;
      }
      float[] logits = run.step(prompt, positions, owner);
      Sequence seq = single.newSequence(capacity, policy);
      float[] expected = single.prefill(seq, prompt);
      if (!sparse) {
        assertClose(
            logits, expected, 10 * partialTolerance, "sharded vs one process, %s", policy.name());
      }
      for (int d = 0; d < decode; d++) {
        int token = dev.longctx.engine.kernel.Ops.argmax(logits, 0, logits.length);
        logits = run.step(new int[] {token}, new int[] {n + d}, new int[] {d % SHARDS});
        expected = single.decode(seq, token);
        if (!sparse) {
          assertClose(
              logits, expected, 10 * partialTolerance, "sharded decode %d, %s", d, policy.name());
        }
      }
      assertThat(run.partialsCompared).isGreaterThan(0);
    } finally {
      run.close();
    }
  }

  // Small windows so that a short prompt (the CPU emulation is slow) has grouped keys.
  private static final AttentionPolicy DENSE = AttentionPolicy.dense();
  private static final AttentionPolicy EXACT = new SelfExtend(4, 8);
  private static final AttentionPolicy LLAMACPP = new SelfExtend(2, 6, SelfExtendMode.LLAMACPP);

  @Test
  void threeGpuRangesEqualThreeCpuRangesAndOneProcessOnStories260K() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      TransformerLayers layers = new TransformerLayers(c, loaded.weights());
      Transformer single = new Transformer(c, loaded.weights());
      int[] prompt = new SplittableRandom(3).ints(20, 1, c.vocabSize()).toArray();
      shardedRun(gpu, layers, single, DENSE, prompt, 2, false, false);
      shardedRun(gpu, layers, single, EXACT, prompt, 1, true, false);
      shardedRun(gpu, layers, single, LLAMACPP, prompt, 1, false, false);
      shardedRun(gpu, layers, single, DENSE, prompt, 1, true, true);
      shardedRun(gpu, layers, single, LLAMACPP, prompt, 1, true, true);
    }
  }

  @Test
  void threeGpuRangesEqualThreeCpuRangesOnTheHeadDim64Kernels(@TempDir Path tmp)
      throws IOException {
    CudaContext cx = CudaTests.context();
    LlamaConfig shape =
        new LlamaConfig(
            "qwen2", 128, 128, 2, 4, 2, 64, 260, 512, 1e-6f, 10000f, Rope.Layout.ROTATE_HALF, null);
    try (CudaTests.Synthetic model =
        CudaTests.syntheticModel(tmp.resolve("range-d64.gguf"), shape, 7)) {
      LlamaConfig c = model.config();
      LlamaWeights weights = model.weights();
      TransformerLayers layers = new TransformerLayers(c, weights);
      Transformer single = new Transformer(c, weights);
      int[] prompt = new SplittableRandom(5).ints(24, 0, c.vocabSize()).toArray();
      try (CudaModel gpu = new CudaModel(cx, c, weights)) {
        shardedRun(gpu, layers, single, DENSE, prompt, 1, true, false);
        shardedRun(gpu, layers, single, EXACT, prompt, 1, false, true);
        // 64+ rows per range: the tensor-core kernel in range mode (another range's queries over
        // every slot held, the own rows over their causal prefix); FP16 products
        int[] longPrompt = new SplittableRandom(6).ints(200, 0, c.vocabSize()).toArray();
        shardedRun(gpu, layers, single, DENSE, longPrompt, 0, false, false, 3e-3);
      }
    }
  }

  /**
   * A range's decode steps in {@link KvRange#forwardLocal} (a shard serving a request alone) as
   * CUDA graph launches give the logits of direct launches bit for bit; a SelfExtend range's steps
   * are not recorded (they copy on the device).
   */
  @Test
  void decodeStepsOfARangeAsGraphsEqualDirectLaunches() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      int[] prompt = new SplittableRandom(5).ints(40, 1, loaded.config().vocabSize()).toArray();
      int chunk = 16;
      for (AttentionPolicy policy : List.of(DENSE, EXACT)) {
        List<float[]> runs = new java.util.ArrayList<>();
        for (boolean graphs : new boolean[] {false, true}) {
          gpu.setDecodeGraphs(graphs);
          CudaKvRange range = gpu.newRange(prompt.length, policy);
          try {
            int[] pos = java.util.stream.IntStream.range(0, prompt.length).toArray();
            float[] all =
                range.forwardLocal(Arrays.copyOf(prompt, chunk), Arrays.copyOf(pos, chunk), true);
            for (int t = chunk; t < prompt.length; t++) {
              float[] step = range.forwardLocal(new int[] {prompt[t]}, new int[] {t}, true);
              all = concat(all, step);
            }
            runs.add(all);
            long decodes = prompt.length - chunk;
            assertThat(range.graphStats().replays())
                .as("%s graph launches, graphs %s", policy.name(), graphs)
                .isEqualTo(graphs && policy.positions() == null ? decodes : 0);
          } finally {
            range.close();
            gpu.setDecodeGraphs(false);
          }
        }
        assertThat(runs.get(1)).as("%s logits", policy.name()).isEqualTo(runs.get(0));
      }
    }
  }

  private static float[] concat(float[] a, float[] b) {
    float[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  /**
   * One range holding the whole request runs {@link KvRange#forwardLocal} on the device (slots are
   * positions); one whose positions start past 0 takes the layer-by-layer path. Both equal the CPU
   * range's logits; the device bytes follow the CPU cache's accounting; a released range fails
   * clearly.
   */
  @Test
  void forwardLocalOnTheDeviceEqualsTheCpu() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      TransformerLayers layers = new TransformerLayers(c, loaded.weights());
      int[] prompt = new SplittableRandom(11).ints(30, 1, c.vocabSize()).toArray();
      for (AttentionPolicy policy : List.of(DENSE, EXACT)) {
        for (int offset : new int[] {0, 5}) {
          CpuKvRange cpu = new CpuKvRange(layers, 40, policy);
          CudaKvRange dev = gpu.newRange(40, policy);
          try {
            int[] pos = java.util.stream.IntStream.range(offset, offset + 20).toArray();
            int[] first = Arrays.copyOf(prompt, 20);
            // a chunk without logits, then one with, then single tokens
            cpu.forwardLocal(Arrays.copyOf(first, 12), Arrays.copyOf(pos, 12), false);
            assertThat(dev.forwardLocal(Arrays.copyOf(first, 12), Arrays.copyOf(pos, 12), false))
                .isEmpty();
            int[] rest = Arrays.copyOfRange(first, 12, 20);
            int[] restPos = Arrays.copyOfRange(pos, 12, 20);
            assertClose(
                dev.forwardLocal(rest, restPos, true),
                cpu.forwardLocal(rest, restPos, true),
                2e-3,
                "%s offset %d chunk logits",
                policy.name(),
                offset);
            for (int d = 0; d < 3; d++) {
              int[] tok = {prompt[20 + d]};
              int[] p = {offset + 20 + d};
              assertClose(
                  dev.forwardLocal(tok, p, true),
                  cpu.forwardLocal(tok, p, true),
                  2e-3,
                  "%s offset %d decode %d",
                  policy.name(),
                  offset,
                  d);
            }
            long perToken = (policy.positions() != null ? 3L : 2L) * c.layers() * c.kvDim() * 4;
            assertThat(dev.cache().bytesResident()).isEqualTo(23 * perToken);
          } finally {
            dev.close();
          }
          assertThatThrownBy(() -> dev.forwardLocal(new int[] {1}, new int[] {60}, true))
              .isInstanceOf(IllegalStateException.class)
              .hasMessageContaining("released");
        }
      }
    }
  }

  /**
   * A trained indexer scored by GPU ranges (ALGORITHMS.md §4.5): each range keeps its slots'
   * indexer keys on the device and scores them there; the merge of three ranges' lists (a random
   * partition of the positions) is exactly one GPU range's list, and that list selects what a CPU
   * range selects, with the same scores to rounding. Past the top-k kernel's k the range scores on
   * the host over a copy of its keys.
   */
  @Test
  void gpuRangesScoreTheirIndexerKeysOnTheDeviceAsCpuRangesDo() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      TransformerLayers layers = new TransformerLayers(c, loaded.weights());
      LightningIndexer indexer = TestModels.randomIndexer(c, 4);
      int k = 24;
      AttentionPolicy policy = new IndexerTopK(k, 0, new IndexerSource.ModelFile(indexer), null);
      int tokens = 90;
      SplittableRandom random = new SplittableRandom(8);
      int[] ids = random.ints(tokens, 3, c.vocabSize()).toArray();
      int[] all = java.util.stream.IntStream.range(0, tokens).toArray();
      int width = indexer.heads() * indexer.headDim();
      int[] shardOf = random.ints(tokens, 0, SHARDS).toArray();
      CpuKvRange cpu = new CpuKvRange(layers, tokens, policy);
      CudaKvRange whole = gpu.newRange(tokens, policy);
      CudaKvRange[] parts = new CudaKvRange[SHARDS];
      try {
        cpu.advance(0, ids, all, null);
        KvRange.IndexQueries want = cpu.indexStep();
        whole.advance(0, ids, all, null);
        KvRange.IndexQueries got = whole.indexStep();
        assertClose(got.queries(), want.queries(), 1e-4, "indexer queries");
        assertClose(got.weights(), want.weights(), 1e-4, "head weights");
        for (int r = 0; r < SHARDS; r++) {
          int shard = r;
          int[] mine =
              java.util.stream.IntStream.range(0, tokens)
                  .filter(i -> shardOf[i] == shard)
                  .toArray();
          parts[r] = gpu.newRange(tokens, policy);
          parts[r].advance(0, Arrays.stream(mine).map(i -> ids[i]).toArray(), mine, null);
          parts[r].indexStep();
        }
        int[] queries = java.util.stream.IntStream.range(k, tokens).toArray();
        float[] q = Arrays.copyOfRange(got.queries(), k * width, tokens * width);
        float[] w =
            Arrays.copyOfRange(got.weights(), k * indexer.heads(), tokens * indexer.heads());
        TopK.Candidates[] single = whole.score(0, q, w, queries, k);
        TopK.Candidates[] onCpu = cpu.score(0, q, w, queries, k);
        List<TopK.Candidates[]> local = new java.util.ArrayList<>();
        for (CudaKvRange part : parts) {
          local.add(part.score(0, q, w, queries, k));
        }
        for (int i = 0; i < queries.length; i++) {
          int row = i;
          TopK.Candidates merged = TopK.merge(local.stream().map(list -> list[row]).toList(), k);
          assertThat(merged.positions())
              .as("query %d", queries[i])
              .isEqualTo(single[i].positions());
          assertThat(merged.scores()).as("query %d", queries[i]).isEqualTo(single[i].scores());
          assertThat(sorted(single[i].positions()))
              .as("query %d against the CPU", queries[i])
              .isEqualTo(sorted(onCpu[i].positions()));
          assertClose(single[i].scores(), onCpu[i].scores(), 1e-4, "query %d scores", queries[i]);
        }
        // past the top-k kernel: every visible key, scored on the host from the device's keys
        int big = CudaKernels.TOPK_MAX + 1;
        TopK.Candidates host = whole.score(0, q, w, queries, big)[queries.length - 1];
        TopK.Candidates reference = cpu.score(0, q, w, queries, big)[queries.length - 1];
        assertThat(host.size()).isEqualTo(tokens);
        assertThat(sorted(host.positions())).isEqualTo(sorted(reference.positions()));
      } finally {
        whole.close();
        for (CudaKvRange part : parts) {
          if (part != null) {
            part.close();
          }
        }
      }
    }
  }

  /**
   * A trained indexer's weights live on the device beside the model's: the KV budget of a policy
   * that uses one is sized after they are uploaded, so the first such request cannot find the
   * memory taken. (The emulation's free memory shrinks with its allocations, as a device's does.)
   */
  @Test
  void theKvBudgetOfATrainedIndexerPolicyLeavesRoomForItsWeights() {
    CudaContext cx = CudaTests.context();
    try (LoadedModel loaded = TestModels.stories260K();
        CudaModel gpu = new CudaModel(cx, loaded.config(), loaded.weights())) {
      LlamaConfig c = loaded.config();
      int heads = 64;
      int d = 128; // DeepSeek-V3.2's indexer shape, over this model's width
      List<LightningIndexer.Layer> layers = new java.util.ArrayList<>();
      for (int l = 0; l < c.layers(); l++) {
        layers.add(
            new LightningIndexer.Layer(
                dev.longctx.engine.tensor.FloatTensor.ofFloats(
                    new float[heads * d * c.dim()], heads * d, c.dim()),
                dev.longctx.engine.tensor.FloatTensor.ofFloats(new float[d * c.dim()], d, c.dim()),
                new float[d],
                null,
                dev.longctx.engine.tensor.FloatTensor.ofFloats(
                    new float[heads * c.dim()], heads, c.dim())));
      }
      AttentionPolicy policy =
          new IndexerTopK(
              64,
              0,
              new IndexerSource.ModelFile(new LightningIndexer(layers, c.ropeTheta())),
              null);
      long perToken = gpu.bytesPerToken(policy);
      long weightsOnly = gpu.tokensThatFit(perToken, 0);
      long withIndexer = gpu.tokensThatFit(policy, 0);
      long indexerBytes = (long) c.layers() * (heads * d + d + heads) * c.dim() * Float.BYTES;
      long page = CudaKvCache.PAGE_TOKENS;
      assertThat((weightsOnly - withIndexer) * perToken)
          .as("tokens given up for %d bytes of indexer weights", indexerBytes)
          .isBetween(indexerBytes - page * perToken, indexerBytes + 2 * page * perToken);
      // uploaded once: asking again sizes the same
      assertThat(gpu.tokensThatFit(policy, 0)).isEqualTo(withIndexer);
    }
  }

  private static int[] sorted(int[] a) {
    int[] b = a.clone();
    Arrays.sort(b);
    return b;
  }
}
