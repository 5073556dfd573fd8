package dev.longctx.worker.cli;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.distill.IndexerDistillation;
import dev.longctx.engine.distill.IndexerDistiller;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LoadedModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Distills a lightning indexer for a model that has none (ALGORITHMS.md §5.3) and writes it as an
 * indexer file for {@code --attention indexer-topk --indexer FILE}.
 */
@Command(
    name = "distill-indexer",
    mixinStandardHelpOptions = true,
    description = {
      "Train a lightning indexer (DeepSeek Sparse Attention's scorer) on the model's own attention:"
          + " the frozen model reads the text in windows of its trained context, every layer's"
          + " indexer learns that layer's attention distribution (KL loss, Adam; ALGORITHMS.md"
          + " §5.3), and the result is written as an indexer file for --attention indexer-topk"
          + " --indexer FILE. Prints the held-out loss while training and the attention-mass"
          + " recall of the top-k selection before and after, with the oracle's for reference.",
    })
public class DistillIndexerCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Option(
      names = {"-f", "--file"},
      required = true,
      description = "Training text (UTF-8).")
  Path file;

  @Option(
      names = {"-o", "--out"},
      required = true,
      description = "Indexer file to write (GGUF).")
  Path out;

  @Option(names = "--chars", description = "Use only the first N characters of the text.")
  Integer chars;

  @Option(
      names = "--indexer-heads",
      defaultValue = "4",
      description = "Indexer heads H_I (default: ${DEFAULT-VALUE}; DeepSeek-V3.2 has 64).")
  int heads;

  @Option(
      names = "--indexer-dim",
      defaultValue = "32",
      description =
          "Indexer head dimension d_I, a multiple of 4; RoPE rotates its first half (default:"
              + " ${DEFAULT-VALUE}; DeepSeek-V3.2 has 128).")
  int headDim;

  @Option(
      names = "--steps",
      defaultValue = "300",
      description = "Adam steps (default: ${DEFAULT-VALUE}).")
  int steps;

  @Option(
      names = "--lr",
      defaultValue = "3e-3",
      description = "Adam learning rate (default: ${DEFAULT-VALUE}; DeepSeek's warm-up used 1e-3).")
  double learningRate;

  @Option(
      names = "--batch",
      defaultValue = "4",
      description = "Windows per step (default: ${DEFAULT-VALUE}).")
  int batch;

  @Option(
      names = {"-c", "--ctx"},
      description =
          "Window length in tokens, BOS included (default: the model's trained context; with"
              + " --group-size up to SelfExtend's maximum).")
  Integer ctx;

  @Option(
      names = "--group-size",
      description =
          "Teach with SelfExtend's attention (group size G, with --neighbor-window): the"
              + " distribution the indexer selects for when it serves prompts past the trained"
              + " context under SelfExtend.")
  Integer groupSize;

  @Option(names = "--neighbor-window", description = "SelfExtend neighbor window w of the teacher.")
  Integer neighborWindow;

  @Option(
      names = "--rows",
      description =
          "Query rows of the loss per window, drawn at random (default: every row); long windows"
              + " cost rows × ctx instead of ctx².")
  Integer rows;

  @Option(
      names = "--windows",
      defaultValue = "0",
      description = "Training windows at most (default: all the text gives).")
  int windows;

  @Option(
      names = "--held-out",
      defaultValue = "2",
      description =
          "Windows from the end of the text kept for evaluation (default: ${DEFAULT-VALUE}).")
  int heldOut;

  @Option(
      names = "--recall-k",
      split = ",",
      defaultValue = "16,64,256",
      description = "k of the recall report (default: ${DEFAULT-VALUE}).")
  int[] recallK;

  @Option(names = "--seed", defaultValue = "1", description = "Initialization and batch order.")
  long seed;

  @Option(
      names = "--json",
      description = "Print one JSON object instead of text (the progress goes to stderr).")
  boolean json;

  @Override
  public Integer call() {
    String text = TextFiles.read(file, chars);
    try (LoadedModel model = modelOptions.load()) {
      LlamaConfig c = model.config();
      if ((groupSize == null) != (neighborWindow == null)) {
        throw new IllegalArgumentException("--group-size and --neighbor-window go together");
      }
      AttentionPolicy.SelfExtend se =
          groupSize == null ? null : new AttentionPolicy.SelfExtend(groupSize, neighborWindow);
      int window = ctx != null ? ctx : c.contextLength();
      int max = se == null ? c.contextLength() : se.maxContext(c.contextLength());
      if (window > max) {
        throw new IllegalArgumentException(
            "--ctx "
                + window
                + " is past "
                + (se == null
                    ? "the model's trained context " + max + " (teach with SelfExtend for more)"
                    : "SelfExtend's maximum context " + max));
      }
      int[] tokens = model.tokenizer().encode(text);
      int bos = model.tokenizer().bosId();
      IndexerDistillation.Options o =
          new IndexerDistillation.Options(
              new IndexerDistiller.Options(heads, headDim, steps, learningRate, batch, seed),
              window,
              heldOut,
              windows,
              bos,
              recallK,
              se,
              rows != null ? rows : window);
      System.err.printf(
          "longctx distill-indexer: %d layers × %d heads of %d on a model of width %d, %d text"
              + " tokens in windows of %d, teacher %s%n",
          c.layers(),
          heads,
          headDim,
          c.dim(),
          tokens.length,
          window,
          se == null ? "dense" : "self-extend G=" + groupSize + " w=" + neighborWindow);
      long t0 = System.nanoTime();
      java.io.PrintStream progress = json ? System.err : System.out;
      IndexerDistillation.Report report =
          IndexerDistillation.run(
              model.transformer().layers(),
              tokens,
              o,
              p ->
                  progress.printf(
                      "step %5d  train loss %s  held-out loss %.4f%n",
                      p.step(),
                      Double.isNaN(p.trainLoss()) ? "   —  " : String.format("%.4f", p.trainLoss()),
                      p.heldOutLoss()),
              s -> System.err.println("longctx distill-indexer: " + s));
      double seconds = (System.nanoTime() - t0) / 1e9;
      if (!json) {
        System.out.printf(
            "%nheld-out KL per query: %.4f → %.4f (%d training windows, %d tokens, %.0f s)%n%n",
            report.initialLoss(),
            report.finalLoss(),
            report.trainWindows(),
            report.trainTokens(),
            seconds);
        System.out.println("| k | recall before | recall after | oracle |");
        System.out.println("|---:|---:|---:|---:|");
        for (IndexerDistillation.Recall r : report.recall()) {
          System.out.printf(
              "| %d | %.3f | %.3f | %.3f |%n", r.k(), r.before(), r.after(), r.oracle());
        }
      }
      Map<String, String> provenance = new LinkedHashMap<>();
      provenance.put("model", modelOptions.model.getFileName().toString());
      provenance.put("text", file.getFileName().toString());
      provenance.put("train_tokens", Long.toString(report.trainTokens()));
      provenance.put("window_tokens", Integer.toString(window));
      provenance.put(
          "teacher", se == null ? "dense" : "self-extend " + groupSize + "/" + neighborWindow);
      provenance.put("steps", Integer.toString(steps));
      provenance.put("learning_rate", Double.toString(learningRate));
      provenance.put("held_out_kl", String.format("%.6f", report.finalLoss()));
      provenance.put("recall_k", Arrays.toString(recallK));
      IndexerDistillation.write(out, report.indexer(), c, provenance);
      if (json) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("file", out.toString());
        j.put("train_windows", report.trainWindows());
        j.put("held_out_windows", report.heldOutWindows());
        j.put("train_tokens", report.trainTokens());
        j.put("held_out_kl_before", report.initialLoss());
        j.put("held_out_kl_after", report.finalLoss());
        List<Map<String, Object>> recall = new ArrayList<>();
        for (IndexerDistillation.Recall r : report.recall()) {
          Map<String, Object> e = new LinkedHashMap<>();
          e.put("k", r.k());
          e.put("before", r.before());
          e.put("after", r.after());
          e.put("oracle", r.oracle());
          recall.add(e);
        }
        j.put("recall", recall);
        j.put("seconds", seconds);
        System.out.println(JsonText.write(j));
      }
      System.err.printf(
          "longctx distill-indexer: wrote %s; use it with --attention indexer-topk --indexer %s%n",
          out, out);
      return 0;
    }
  }
}
