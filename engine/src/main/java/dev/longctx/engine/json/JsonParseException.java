package dev.longctx.engine.json;

/**
 * Malformed JSON. {@link #offset()} is the character offset of the problem in the parsed text; the
 * message also gives the 1-based line and column, which is what a person looks for in an editor.
 */
public final class JsonParseException extends RuntimeException {

  private final int offset;
  private final int line;
  private final int column;
  private final String reason;

  JsonParseException(String reason, int offset, int line, int column) {
    super("line " + line + ", column " + column + " (offset " + offset + "): " + reason);
    this.reason = reason;
    this.offset = offset;
    this.line = line;
    this.column = column;
  }

  /** Character (UTF-16 unit) offset of the problem from the start of the text. */
  public int offset() {
    return offset;
  }

  public int line() {
    return line;
  }

  public int column() {
    return column;
  }

  /** The reason alone, without the position. */
  public String reason() {
    return reason;
  }
}
