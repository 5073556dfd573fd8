package dev.longctx.worker.cli;

import dev.longctx.engine.cuda.Backend;
import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tensor.Parallel;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options shared by every command that loads a model. */
public class ModelOptions {

  @Option(
      names = {"-m", "--model"},
      required = true,
      description =
          "Model: a .gguf file, a llama2.c .bin, or a Hugging Face directory / .safetensors file.")
  Path model;

  @Option(
      names = "--tokenizer",
      description =
          "Tokenizer when the model does not carry one: llama2.c tokenizer.bin, tokenizer.json or a"
              + " GGUF vocabulary (default: the model's own, or a tok*.bin beside a llama2.c model).")
  Path tokenizer;

  @Option(
      names = {"-t", "--threads"},
      description = "Compute threads (default: all cores).")
  Integer threads;

  @Option(
      names = "--backend",
      defaultValue = "auto",
      description =
          "Where the model runs: auto (CUDA when a GPU is usable, else the CPU), cpu or cuda"
              + " (default: ${DEFAULT-VALUE}). In-process generate and bench run dense and"
              + " self-extend attention on the GPU; generate --shards runs its shards there"
              + " (every method). serve has its own --backend.")
  String backend;

  /** The backend to run on; {@code cuda} without a usable GPU fails with the reason. */
  Backend backend() {
    return Backend.parse(backend).select();
  }

  LoadedModel load() {
    if (threads != null) {
      Parallel.setThreads(threads);
    }
    return LoadedModel.load(model, tokenizer);
  }
}
