package dev.longctx.worker.cli;

import dev.longctx.engine.inference.Perplexity;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.model.LoadedModel;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Perplexity of a text file, window by window. */
@Command(
    name = "perplexity",
    mixinStandardHelpOptions = true,
    description = {
      "Perplexity of a text: the tokens are cut into windows of --ctx tokens (each starting with BOS"
          + " with --bos); every token after a window's first is predicted from those before it;"
          + " perplexity = exp(mean negative log-likelihood).",
    })
public class PerplexityCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Mixin AttentionOptions attentionOptions;

  @Option(
      names = {"-f", "--file"},
      required = true,
      description = "Text file (UTF-8).")
  Path file;

  @Option(
      names = {"-c", "--ctx"},
      description = "Window length in tokens (default: the model's trained context).")
  Integer ctx;

  @Option(
      names = "--bos",
      description = "Start every window with BOS (it takes one of the ctx slots).")
  boolean bos;

  @Option(names = "--chars", description = "Use only the first N characters of the file.")
  Integer chars;

  @Option(
      names = "--chunks",
      defaultValue = "0",
      description = "Score at most this many windows (0: all).")
  int chunks;

  @Option(names = "--json", description = "Print one JSON object instead of text.")
  boolean json;

  @Option(names = "--top-k", description = "indexer-topk: keys attended per query.")
  void topK(int k) {
    attentionOptions.topK = k;
  }

  @Override
  public Integer call() {
    String text = TextFiles.read(file, chars);
    try (LoadedModel model = modelOptions.load()) {
      Transformer tr = attentionOptions.transformer(model);
      int window = ctx != null ? ctx : AttentionOptions.defaultContext(tr);
      tr.attentionPolicy().checkContext(window, model.config().contextLength());
      int[] tokens = model.tokenizer().encode(text);
      int bosId = bos ? model.tokenizer().bosId() : -1;
      int textPerWindow = bosId >= 0 ? window - 1 : window;
      long windows = (tokens.length + textPerWindow - 1) / Math.max(1, textPerWindow);
      long expected =
          Math.max(
              1,
              Math.min(
                  tokens.length,
                  (chunks > 0 ? Math.min(chunks, windows) : windows) * textPerWindow));
      PrintStream err = System.err;
      long t0 = System.nanoTime();
      Perplexity.Result r =
          Perplexity.evaluate(
              tr,
              tokens,
              window,
              bosId,
              chunks,
              done -> ProgressBar.draw(err, "perplexity", done, expected, t0));
      ProgressBar.finish(err);
      double seconds = (System.nanoTime() - t0) / 1e9;
      if (json) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("perplexity", r.perplexity());
        out.put("mean_nll", r.meanNll());
        out.put("predictions", r.predictions());
        out.put("windows", r.windows());
        out.put("ctx", window);
        out.put("attention", tr.attentionPolicy().toString());
        out.put("tokens_per_second", (r.predictions() + r.windows()) / seconds);
        System.out.println(JsonText.write(out));
      } else {
        System.out.printf(
            "perplexity %.4f over %d predictions in %d window(s) of %d tokens, %s (%.1f tokens/s)%n",
            r.perplexity(),
            r.predictions(),
            r.windows(),
            window,
            tr.attentionPolicy(),
            (r.predictions() + r.windows()) / seconds);
      }
      return 0;
    }
  }
}
