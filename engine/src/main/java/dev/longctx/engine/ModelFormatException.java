package dev.longctx.engine;

import java.nio.file.Path;

/**
 * A model, tokenizer or tensor file that cannot be used. The message always names the file, where
 * in it (a byte offset or a metadata key) and why, in one line, so the CLI can print it as is.
 */
public final class ModelFormatException extends RuntimeException {

  private final Path file;

  private ModelFormatException(Path file, String where, String reason, Throwable cause) {
    super(file + (where.isEmpty() ? "" : ": " + where) + ": " + reason, cause);
    this.file = file;
  }

  /** A problem at a byte offset of {@code file}. */
  public static ModelFormatException atOffset(Path file, long offset, String reason) {
    return new ModelFormatException(file, "offset " + offset, reason, null);
  }

  /** A problem with a named metadata key, tensor or JSON field of {@code file}. */
  public static ModelFormatException atKey(Path file, String key, String reason) {
    return new ModelFormatException(file, "key '" + key + "'", reason, null);
  }

  /** A problem with the file as a whole (missing, unreadable, mismatched with another file). */
  public static ModelFormatException of(Path file, String reason) {
    return new ModelFormatException(file, "", reason, null);
  }

  public static ModelFormatException of(Path file, String reason, Throwable cause) {
    return new ModelFormatException(file, "", reason, cause);
  }

  public Path file() {
    return file;
  }
}
