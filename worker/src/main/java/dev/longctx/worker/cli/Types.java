package dev.longctx.worker.cli;

import dev.longctx.engine.tensor.GgmlType;
import dev.longctx.engine.tensor.Quantizer;
import java.util.Locale;

/** Parses a --type option. */
final class Types {

  private Types() {}

  static GgmlType matrixType(String name) {
    GgmlType t;
    try {
      t = GgmlType.valueOf(name.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      t = null;
    }
    if (t == null || !Quantizer.canQuantize(t)) {
      throw new IllegalArgumentException(
          "--type " + name + " is not one the writer produces (F32, F16, BF16, Q8_0, Q4_0)");
    }
    return t;
  }
}
