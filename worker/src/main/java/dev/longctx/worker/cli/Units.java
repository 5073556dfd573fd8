package dev.longctx.worker.cli;

/** Human-readable sizes and counts for tables. */
final class Units {

  private Units() {}

  static String bytes(long n) {
    if (n >= 1L << 30) {
      return String.format("%.2f GiB", n / (double) (1L << 30));
    }
    if (n >= 1L << 20) {
      return String.format("%.2f MiB", n / (double) (1L << 20));
    }
    return String.format("%.1f KiB", n / 1024.0);
  }

  static String count(long n) {
    if (n >= 1_000_000_000L) {
      return String.format("%.2f B", n / 1e9);
    }
    if (n >= 1_000_000L) {
      return String.format("%.2f M", n / 1e6);
    }
    return String.format("%.1f K", n / 1e3);
  }
}
