package dev.longctx.engine.model;

import dev.longctx.engine.ModelFormatException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A read-only memory mapping of a whole file, valid until its arena is closed. */
public final class MappedFile {

  private MappedFile() {}

  /**
   * Maps {@code file} read-only into {@code arena}. A missing or unreadable file becomes a {@link
   * ModelFormatException} naming it.
   */
  public static MemorySegment map(Path file, Arena arena) {
    if (!Files.exists(file)) {
      throw ModelFormatException.of(file, "no such file");
    }
    if (Files.isDirectory(file)) {
      throw ModelFormatException.of(file, "is a directory, expected a file");
    }
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
    } catch (NoSuchFileException e) {
      throw ModelFormatException.of(file, "no such file");
    } catch (IOException e) {
      throw ModelFormatException.of(file, "cannot read: " + e.getMessage(), e);
    }
  }
}
