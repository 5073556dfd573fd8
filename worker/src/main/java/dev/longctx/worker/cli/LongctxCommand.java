package dev.longctx.worker.cli;

import io.quarkus.picocli.runtime.annotations.TopCommand;
import picocli.CommandLine.Command;

/** The {@code longctx} command line: one subcommand per job. */
@TopCommand
@Command(
    name = "longctx",
    mixinStandardHelpOptions = true,
    version = "longctx 0.1.0",
    description = "Long-context LLM inference: run models, measure them, serve them.",
    subcommands = {
      GenerateCommand.class,
      TokenizeCommand.class,
      PerplexityCommand.class,
      BenchCommand.class,
      SynthCommand.class,
      DistillIndexerCommand.class,
      ConvertCommand.class,
      ServeCommand.class,
      ClientCommand.class,
      ServeBenchCommand.class
    })
public class LongctxCommand {}
