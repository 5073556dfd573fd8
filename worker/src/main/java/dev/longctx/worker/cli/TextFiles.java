package dev.longctx.worker.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** The text files commands read (perplexity, distillation). */
final class TextFiles {

  private TextFiles() {}

  /**
   * {@code file} as UTF-8, cut to its first {@code chars} characters when not null; a missing file
   * is bad input naming it.
   */
  static String read(Path file, Integer chars) {
    String text;
    try {
      text = Files.readString(file);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException(file + ": no such file");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return chars != null && chars < text.length() ? text.substring(0, chars) : text;
  }
}
