package dev.longctx.worker.cli;

import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.cuda.CudaModel;
import dev.longctx.engine.cuda.CudaSequence;
import dev.longctx.engine.cuda.KernelProfile;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.inference.Sequence;
import dev.longctx.engine.inference.SyntheticContext;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.Parallel;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * llama-bench-style throughput: {@code ppN} prefills N random tokens into an empty sequence, {@code
 * tgN} generates N tokens one at a time from an empty sequence; each test runs once to warm the JIT
 * and then {@code -r} times, reporting mean ± sample standard deviation of tokens/s.
 */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    description = "Prefill (pp) and decode (tg) tokens/s, as a llama-bench-style table.")
public class BenchCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Mixin AttentionOptions attentionOptions;

  @Mixin GpuOptions gpuOptions;

  @Option(
      names = {"-p", "--n-prompt"},
      split = ",",
      defaultValue = "512",
      description = "Prompt lengths to prefill (comma-separated; 0 to skip).")
  List<Integer> prompts;

  @Option(
      names = {"-n", "--n-gen"},
      split = ",",
      defaultValue = "128",
      description = "Tokens to generate (comma-separated; 0 to skip).")
  List<Integer> gens;

  @Option(
      names = {"-r", "--repetitions"},
      defaultValue = "3",
      description = "Timed repetitions per test.")
  int reps;

  @Option(
      names = {"-d", "--depth"},
      split = ",",
      defaultValue = "0",
      description =
          "Context already in the sequence before each test (comma-separated; prefilled untimed),"
              + " as llama-bench's -d: tgN at depth D times decode steps D+1..D+N.")
  List<Integer> depths;

  @Option(
      names = "--depth-fill",
      defaultValue = "prefill",
      description =
          "How the -d context is built: prefill (a real forward pass over D random tokens) or"
              + " replicate (prefill min(D, 256) random tokens, then copy their KV rows"
              + " cyclically up to D: the cache has the size and scale of a real one, for timing"
              + " decode at depths whose prefill is unaffordable; outputs are meaningless).")
  String depthFill;

  /** Tokens really prefilled before replication under {@code --depth-fill replicate}. */
  static final int REPLICATE_CHUNK = 256;

  @Option(names = "--json", description = "Print one JSON object per test instead of a table.")
  boolean json;

  @Option(
      names = "--profile",
      description =
          "On the GPU (--backend cuda): after each test's timed runs, one more run with a CUDA"
              + " event around every kernel launch, printed as the test's device time by kernel"
              + " (launches and µs per token or prefill, and the time outside the launches).")
  boolean profile;

  @Option(names = "--top-k", description = "indexer-topk: keys attended per query.")
  void topK(int k) {
    attentionOptions.topK = k;
  }

  @Override
  public Integer call() {
    if (reps < 1) {
      throw new IllegalArgumentException("--repetitions must be >= 1, got " + reps);
    }
    if (!depthFill.equals("prefill") && !depthFill.equals("replicate")) {
      throw new IllegalArgumentException(
          "--depth-fill must be prefill or replicate, got '" + depthFill + "'");
    }
    boolean replicate = depthFill.equals("replicate");
    Backend backend = modelOptions.backend();
    var kvCacheType = gpuOptions.resolve(backend, GpuOptions.Configured.NONE);
    if (profile && backend == Backend.CPU) {
      throw new IllegalArgumentException("--profile needs the cuda backend");
    }
    try (LoadedModel model = modelOptions.load()) {
      Transformer tr = attentionOptions.transformer(model);
      if (backend == Backend.CUDA) {
        // A policy the GPU does not run (a top-k beyond its limit) fails here, before the upload.
        CudaModel.requireSupported(tr.attentionPolicy());
        try (CudaModel gpu = gpuOptions.openGpu(model, GpuOptions.Configured.NONE);
            CudaModel withPolicy = gpu.withAttention(tr.attentionPolicy())) {
          String label =
              " (cuda, "
                  + kvCacheType.label()
                  + " KV"
                  + (gpu.decodeGraphs() ? ", CUDA graphs" : "")
                  + (gpu.quantizedActivations() ? ", int8 activations" : "")
                  + ")";
          return run(model, tr, withPolicy, label, replicate);
        }
      }
      return run(model, tr, tr, "", replicate);
    }
  }

  private Integer run(
      LoadedModel model, Transformer tr, Decoder<?> decoder, String suffix, boolean replicate) {
    long weightBytes = bytesReadPerToken(model.weights());
    String name = model.path().getFileName() + suffix;
    String size = String.format("%.2f GiB", totalBytes(model.weights()) / (double) (1L << 30));
    String params =
        String.format(
            "%.2f B", model.config().parameterCount(model.weights().tiedEmbeddings()) / 1e9);
    String type = model.weights().layers().getFirst().wq().type().toString();
    int threads = Parallel.threads();
    if (!json) {
      System.out.println("| model | type | size | params | threads | test | t/s | GB/s |");
      System.out.println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    }
    List<String[]> tests = new ArrayList<>();
    List<Profiled> profiles = new ArrayList<>();
    for (int p : prompts) {
      if (p > 0) {
        tests.add(new String[] {"pp", String.valueOf(p)});
      }
    }
    for (int n : gens) {
      if (n > 0) {
        tests.add(new String[] {"tg", String.valueOf(n)});
      }
    }
    for (int depth : depths) {
      for (String[] test : tests) {
        int n = Integer.parseInt(test[1]);
        boolean prefill = test[0].equals("pp");
        if (depth + n > tr.maxContext()) {
          throw new IllegalArgumentException(
              "depth "
                  + depth
                  + " + "
                  + test[0]
                  + n
                  + " exceeds the attention policy's maximum context "
                  + tr.maxContext());
        }
        if (depth + n > model.config().contextLength()) {
          System.err.printf(
              "note: depth %d + %s%d exceeds the trained context %d%n",
              depth, test[0], n, model.config().contextLength());
        }
        double[] rates = new double[reps];
        SplittableRandom random = new SplittableRandom(42);
        for (int r = -1; r < reps; r++) {
          double rate = measure(decoder, prefill, depth, n, replicate, random, Runnable::run);
          if (r >= 0) {
            rates[r] = rate;
          }
        }
        if (profile && decoder instanceof CudaModel gpu) {
          String what = test[0] + n + (depth > 0 ? " @ d" + depth : "");
          measure(
              decoder,
              prefill,
              depth,
              n,
              replicate,
              random,
              body -> profiles.add(new Profiled(what, prefill, n, gpu.context().profile(1, body))));
        }
        double mean = 0;
        for (double x : rates) {
          mean += x / reps;
        }
        double var = 0;
        for (double x : rates) {
          var += (x - mean) * (x - mean) / Math.max(1, reps - 1);
        }
        double sd = Math.sqrt(var);
        // Decode reads every weight once per token: bytes/token × tokens/s is the bandwidth
        // reached.
        Double gbs = prefill ? null : weightBytes * mean / 1e9;
        if (json) {
          Map<String, Object> out = new LinkedHashMap<>();
          out.put("model", name);
          out.put("type", type);
          out.put("threads", threads);
          out.put("backend", suffix.isEmpty() ? "cpu" : "cuda");
          out.put("test", test[0] + n);
          out.put("depth", depth);
          out.put("depth_fill", depthFill);
          out.put("attention", tr.attentionPolicy().name());
          out.put("tokens_per_second", mean);
          out.put("stddev", sd);
          out.put("gb_per_second", gbs);
          System.out.println(JsonText.write(out));
        } else {
          System.out.printf(
              "| %s | %s | %s | %s | %d | %s%d%s | %.2f ± %.2f | %s |%n",
              name,
              type,
              size,
              params,
              threads,
              test[0],
              n,
              depth > 0 ? " @ d" + depth + (replicate ? " (replicated)" : "") : "",
              mean,
              sd,
              gbs == null ? "" : String.format("%.1f", gbs));
        }
      }
    }
    for (Profiled p : profiles) {
      p.print(json, name);
    }
    return 0;
  }

  /** One test's run by kernel: {@code n} tokens decoded, or one prefill of n tokens. */
  private record Profiled(String test, boolean prefill, int n, KernelProfile.Result result) {

    void print(boolean json, String model) {
      // per prefill, or per token of a decode run profiled as one step
      KernelProfile.Result r = prefill ? result : result.perUnit(n);
      double per = r.steps();
      if (!json) {
        System.out.println();
        System.out.print(r.table(model + ", " + test, prefill ? "prefill" : "token"));
        return;
      }
      List<Map<String, Object>> kernels = new ArrayList<>();
      for (KernelProfile.Entry e : r.entries()) {
        Map<String, Object> k = new LinkedHashMap<>();
        k.put("kernel", e.name());
        k.put("launches", e.launches() / per);
        k.put("microseconds", e.microseconds() / per);
        kernels.add(k);
      }
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("model", model);
      out.put("profile", test);
      out.put("per", prefill ? "prefill" : "token");
      out.put("kernels", kernels);
      out.put("outside_microseconds", r.outsideMicroseconds() / per);
      out.put("span_microseconds", r.spanMicroseconds() / per);
      System.out.println(JsonText.write(out));
    }
  }

  /**
   * Tokens per second of one prefill of n tokens or of n decode steps, after {@code depth} tokens:
   * random tokens prefilled, or under {@code replicate} (CPU) a prefilled chunk replicated up to
   * the depth ({@link SyntheticContext}). {@code timed} runs the measured part (as it is, or
   * profiled).
   */
  private static <S> double measure(
      Decoder<S> tr,
      boolean prefill,
      int depth,
      int n,
      boolean replicate,
      SplittableRandom random,
      java.util.function.Consumer<Runnable> timed) {
    int[] tokens = randomTokens(tr, n, random);
    S seq = tr.newSequence(depth + n);
    try {
      if (depth > 0) {
        int real = replicate ? Math.min(depth, REPLICATE_CHUNK) : depth;
        tr.prefill(seq, randomTokens(tr, real, random));
        if (replicate && seq instanceof CudaSequence gs) {
          ((CudaModel) tr).extendSynthetic(gs, depth);
        } else if (replicate) {
          SyntheticContext.extend((Sequence) seq, depth);
        }
      }
      // A collection of the previous repetition's multi-GiB cache must not land in the timed loop.
      System.gc();
      long t0 = System.nanoTime();
      timed.accept(
          () -> {
            if (prefill) {
              tr.prefill(seq, tokens);
            } else {
              for (int i = 0; i < n; i++) {
                tr.decode(seq, tokens[i]);
              }
            }
          });
      return n / ((System.nanoTime() - t0) / 1e9);
    } finally {
      tr.release(seq);
    }
  }

  private static int[] randomTokens(Decoder<?> tr, int n, SplittableRandom random) {
    int[] tokens = new int[n];
    for (int i = 0; i < n; i++) {
      tokens[i] = random.nextInt(tr.config().vocabSize());
    }
    return tokens;
  }

  /** Bytes of every matrix a decode step streams (all blocks and the output projection). */
  static long bytesReadPerToken(LlamaWeights w) {
    long sum = w.output().data().byteSize();
    for (LlamaWeights.Layer l : w.layers()) {
      for (FloatTensor t : List.of(l.wq(), l.wk(), l.wv(), l.wo(), l.wGate(), l.wUp(), l.wDown())) {
        sum += t.data().byteSize();
      }
    }
    return sum;
  }

  private static long totalBytes(LlamaWeights w) {
    long sum = bytesReadPerToken(w);
    return w.tiedEmbeddings() ? sum : sum + w.tokenEmbedding().data().byteSize();
  }
}
