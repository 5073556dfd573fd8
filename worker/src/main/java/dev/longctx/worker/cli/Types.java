package dev.longctx.worker.cli;

import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.tensor.GgmlType;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** Parses a --type option and reports what the writer did with it. */
final class Types {

  private Types() {}

  /** One type for every matrix ({@code Q8_0}, any case) or a mix ({@code Q4_K_M}). */
  static MatrixTypes matrixTypes(String name) {
    return MatrixTypes.parse(name);
  }

  /** The matrices that fell back, by the type they got, in type order: {@code {"Q8_0": 13}}. */
  static Map<String, Object> fallbackTypes(GgufModelWriter.Written written) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (Map.Entry<GgmlType, Integer> e : new TreeMap<>(written.fallbacks()).entrySet()) {
      out.put(e.getKey().toString(), e.getValue());
    }
    return out;
  }

  /** How many matrices fell back, to what, for a one-line summary; empty when none did. */
  static String fallbackSummary(GgufModelWriter.Written written) {
    if (written.fallbackCount() == 0) {
      return "";
    }
    StringBuilder to = new StringBuilder();
    fallbackTypes(written)
        .forEach(
            (type, n) -> to.append(to.isEmpty() ? "" : ", ").append(n).append(" to ").append(type));
    return String.format(
        "; %d of %d matrices fell back (rows not whole blocks of their type): %s",
        written.fallbackCount(), written.matrices(), to);
  }
}
