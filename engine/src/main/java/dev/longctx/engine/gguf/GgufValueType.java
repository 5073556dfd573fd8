package dev.longctx.engine.gguf;

/**
 * The metadata value types of the GGUF format, with the numeric ids the file stores ({@code
 * gguf_type} in ggml). All numbers are little-endian; a STRING is a uint64 byte length followed by
 * UTF-8 bytes; an ARRAY is a uint32 element type, a uint64 count and the elements.
 */
public enum GgufValueType {
  UINT8(0, 1),
  INT8(1, 1),
  UINT16(2, 2),
  INT16(3, 2),
  UINT32(4, 4),
  INT32(5, 4),
  FLOAT32(6, 4),
  BOOL(7, 1),
  STRING(8, -1),
  ARRAY(9, -1),
  UINT64(10, 8),
  INT64(11, 8),
  FLOAT64(12, 8);

  private static final GgufValueType[] BY_ID = values();

  static {
    for (int i = 0; i < BY_ID.length; i++) {
      // The lookup indexes by id; this keeps the declaration order honest.
      if (BY_ID[i].id != i) {
        throw new AssertionError("GgufValueType ids must equal their ordinal: " + BY_ID[i]);
      }
    }
  }

  private final int id;
  private final int size;

  GgufValueType(int id, int size) {
    this.id = id;
    this.size = size;
  }

  /** The id stored in the file. */
  public int id() {
    return id;
  }

  /** Bytes of one value in the file, or -1 for the variable-length STRING and ARRAY. */
  public int fixedSize() {
    return size;
  }

  /**
   * The fewest bytes one value of this type can take in the file: its fixed size, 8 for a STRING
   * (the length), 12 for an ARRAY (element type and count). Used to reject absurd counts before
   * allocating anything.
   */
  public int minSize() {
    return switch (this) {
      case STRING -> 8;
      case ARRAY -> 12;
      default -> size;
    };
  }

  /** Whether values of this type are integers (of any width or signedness). */
  public boolean isInteger() {
    return switch (this) {
      case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
      default -> false;
    };
  }

  /** The type with file id {@code id}, or null when unknown. */
  public static GgufValueType fromId(long id) {
    return id >= 0 && id < BY_ID.length ? BY_ID[(int) id] : null;
  }
}
