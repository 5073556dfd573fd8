package dev.longctx.worker.cli;

import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.model.SyntheticModel;
import dev.longctx.engine.tokenizer.GgufVocabulary;
import dev.longctx.engine.tokenizer.Vocabulary;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Writes a random-weight GGUF of a real architecture's shape, for benchmarks. */
@Command(
    name = "synth",
    mixinStandardHelpOptions = true,
    description =
        "Write a random-weight GGUF with the shape of a published model (same bytes and FLOPs per"
            + " token), for benchmarks.")
public class SynthCommand implements Callable<Integer> {

  @Option(
      names = "--shape",
      required = true,
      description = "tiny, tiny-qwen2, llama-3.2-1b, llama-3.1-8b or qwen2.5-0.5b.")
  String shape;

  @Option(
      names = "--type",
      defaultValue = "Q8_0",
      description =
          "Matrix type: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, or Q4_K_M (Q6_K for output,"
              + " attn_v and ffn_down, Q4_K for the rest). A matrix whose rows are not whole"
              + " blocks of its type falls back (K-quants to Q8_0, else F16) and the summary"
              + " counts it (default: ${DEFAULT-VALUE}).")
  String type;

  @Option(
      names = {"-o", "--out"},
      required = true,
      description = "Output .gguf file.")
  Path out;

  @Option(
      names = "--seed",
      defaultValue = "1",
      description = "Seed of the random weights (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(
      names = "--vocab",
      description =
          "Copy the tokenizer from this GGUF (e.g. a vocab-only GGUF of the real model); its size"
              + " must match the shape. Default: a byte-fallback vocabulary of the shape's size.")
  Path vocab;

  @Option(
      names = "--indexer-heads",
      defaultValue = "0",
      description =
          "Add a random lightning indexer with this many heads to every layer, for --attention"
              + " indexer-topk --indexer model (default: none; DeepSeek-V3.2 has 64).")
  int indexerHeads;

  @Option(
      names = "--indexer-dim",
      defaultValue = "128",
      description = "The indexer's head dimension, a multiple of 4 (default: ${DEFAULT-VALUE}).")
  int indexerDim;

  @Option(names = "--json", description = "Print one JSON object instead of text.")
  boolean json;

  @Override
  public Integer call() {
    SyntheticModel.Shape s = SyntheticModel.Shape.byId(shape);
    MatrixTypes t = MatrixTypes.parse(type);
    Vocabulary v;
    if (vocab != null) {
      try (GgufFile g = GgufFile.open(vocab)) {
        v = GgufVocabulary.read(g);
      }
      if (v.size() != s.config().vocabSize()) {
        throw new IllegalArgumentException(
            vocab
                + ": has "
                + v.size()
                + " tokens, the "
                + s.id()
                + " shape needs "
                + s.config().vocabSize());
      }
    } else {
      v = SyntheticModel.vocabulary(s.config().vocabSize());
    }
    long t0 = System.nanoTime();
    GgufModelWriter.Written written;
    try {
      Path parent = out.toAbsolutePath().getParent();
      if (parent != null) {
        Files.createDirectories(parent);
      }
      written =
          GgufModelWriter.write(
              out,
              "synthetic " + s.id() + " " + t,
              SyntheticModel.source(
                  s,
                  seed,
                  indexerHeads == 0
                      ? null
                      : new SyntheticModel.IndexerShape(indexerHeads, indexerDim)),
              v,
              t);
    } catch (IOException e) {
      throw new UncheckedIOException(out + ": cannot write: " + e.getMessage(), e);
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    long bytes = written.bytes();
    if (json) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("file", out.toString());
      o.put("shape", s.id());
      o.put("type", t.toString());
      Types.putWritten(o, written);
      o.put("parameters", s.config().parameterCount(s.tied()));
      o.put("seconds", seconds);
      System.out.println(JsonText.write(o));
    } else {
      long parameters = s.config().parameterCount(s.tied());
      System.out.printf(
          "wrote %s: %s shape, %s, %s parameters, %s in %.1f s%s%n",
          out,
          s.id(),
          t,
          parameters >= 1e9
              ? String.format("%.2f B", parameters / 1e9)
              : String.format("%.2f M", parameters / 1e6),
          bytes >= 1L << 30
              ? String.format("%.2f GiB", bytes / (double) (1L << 30))
              : String.format("%.2f MiB", bytes / (double) (1L << 20)),
          seconds,
          Types.fallbackSummary(written));
    }
    return 0;
  }
}
