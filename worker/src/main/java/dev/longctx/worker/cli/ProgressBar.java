package dev.longctx.worker.cli;

import java.io.PrintStream;

/** A one-line progress bar on stderr, redrawn in place. */
final class ProgressBar {

  private ProgressBar() {}

  static void draw(PrintStream err, String label, long done, long total, long startNanos) {
    int width = 30;
    double fraction = Math.min(1.0, total == 0 ? 1.0 : (double) done / total);
    int filled = (int) Math.round(fraction * width);
    double seconds = (System.nanoTime() - startNanos) / 1e9;
    err.printf(
        "\r%s [%s%s] %d/%d %.0f%% %.1fs",
        label,
        "#".repeat(filled),
        ".".repeat(width - filled),
        done,
        total,
        fraction * 100,
        seconds);
    err.flush();
  }

  static void finish(PrintStream err) {
    err.println();
  }
}
