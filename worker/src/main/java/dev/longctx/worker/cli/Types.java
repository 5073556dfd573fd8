package dev.longctx.worker.cli;

import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.tensor.GgmlType;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** Reports what the GGUF writer did with a --type ({@code MatrixTypes.parse} reads the option). */
final class Types {

  private Types() {}

  /**
   * Adds what {@code written} holds to a JSON summary: bytes, matrices, and the fallbacks (count
   * and {@link #fallbackTypes}).
   */
  static void putWritten(Map<String, Object> o, GgufModelWriter.Written written) {
    o.put("bytes", written.bytes());
    o.put("matrices", written.matrices());
    o.put("fallbacks", written.fallbackCount());
    o.put("fallbackTypes", fallbackTypes(written));
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
