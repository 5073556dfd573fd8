package dev.longctx.worker.cli;

import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.model.MatrixTypes;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Writes any loadable model as GGUF. */
@Command(
    name = "convert",
    mixinStandardHelpOptions = true,
    description = "Write a model (llama2.c, safetensors or GGUF) as GGUF with matrices in --type.")
public class ConvertCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Option(
      names = "--type",
      defaultValue = "F32",
      description =
          "Matrix type: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K or Q4_K_M (see synth --help)"
              + " (default: ${DEFAULT-VALUE}).")
  String type;

  @Option(
      names = {"-o", "--out"},
      required = true,
      description = "Output .gguf file.")
  Path out;

  @Option(names = "--json", description = "Print one JSON object instead of text.")
  boolean json;

  @Override
  public Integer call() {
    MatrixTypes t = MatrixTypes.parse(type);
    try (LoadedModel model = modelOptions.load()) {
      if (model.vocabulary() == null) {
        throw new IllegalArgumentException(
            model.path()
                + ": its tokenizer.json vocabulary cannot be written as GGUF yet; convert a GGUF or"
                + " llama2.c model, or pass --tokenizer with a llama2.c/GGUF vocabulary");
      }
      GgufModelWriter.Written written =
          GgufModelWriter.write(
              out,
              model.path().getFileName().toString(),
              GgufModelWriter.of(model.config(), model.weights()),
              model.vocabulary(),
              t);
      if (json) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("file", out.toString());
        o.put("type", t.toString());
        Types.putWritten(o, written);
        System.out.println(JsonText.write(o));
      } else {
        System.out.printf(
            "wrote %s: %s, %s%s%n",
            out, t, Units.bytes(written.bytes()), Types.fallbackSummary(written));
      }
      return 0;
    } catch (IOException e) {
      throw new UncheckedIOException(out + ": cannot write: " + e.getMessage(), e);
    }
  }
}
