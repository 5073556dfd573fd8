package dev.longctx.worker.cli;

import dev.longctx.engine.ModelFormatException;
import io.quarkus.picocli.runtime.PicocliCommandLineFactory;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Produces;
import java.io.UncheckedIOException;
import picocli.CommandLine;

/**
 * Turns every expected failure (bad model file, bad option value, missing file) into one clear line
 * on stderr and a non-zero exit code, never a stack trace. {@code LONGCTX_DEBUG=1} prints the trace
 * too.
 */
@ApplicationScoped
public class CliSupport {

  /** Exit code for bad input (files, options). */
  public static final int EXIT_BAD_INPUT = 2;

  @Produces
  CommandLine commandLine(PicocliCommandLineFactory factory) {
    return factory
        .create()
        .setExecutionExceptionHandler(
            (ex, cmd, parseResult) -> {
              String message =
                  switch (ex) {
                    case ModelFormatException m -> m.getMessage();
                    case IllegalArgumentException i -> i.getMessage();
                    case IllegalStateException i -> i.getMessage();
                    case UncheckedIOException u -> u.getCause().getMessage();
                    default -> ex.getClass().getSimpleName() + ": " + ex.getMessage();
                  };
              cmd.getErr().println("longctx " + cmd.getCommandName() + ": error: " + message);
              if (System.getenv("LONGCTX_DEBUG") != null) {
                ex.printStackTrace(cmd.getErr());
              }
              return EXIT_BAD_INPUT;
            });
  }
}
