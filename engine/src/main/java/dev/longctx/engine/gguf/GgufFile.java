package dev.longctx.engine.gguf;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * A GGUF (version 2 or 3) file, memory-mapped read-only. Opening parses the header, all metadata
 * and all tensor infos eagerly and validates them, so that every later access is in bounds; tensor
 * data stays in the mapping and is handed out as {@link MemorySegment} slices, never copied.
 *
 * <p>Layout (all little-endian): magic {@code "GGUF"} (uint32 0x46554747), uint32 version, uint64
 * tensor count, uint64 metadata count, the metadata key/value pairs (STRING key, uint32 {@link
 * GgufValueType} id, value), the tensor infos (STRING name, uint32 n_dims, n_dims × uint64 {@code
 * ne}, uint32 {@link GgmlType} id, uint64 offset), then padding up to {@code general.alignment}
 * (default 32), then the data section; each tensor's offset is relative to the data section and a
 * multiple of the alignment.
 *
 * <p>Every defect of the file is reported as a {@link ModelFormatException} naming the file, the
 * byte offset (or metadata key / tensor name) and the reason. Metadata accessors throw one naming
 * the key when the key is missing or has an incompatible type; the {@code (key, default)} variants
 * return the default only when the key is absent, not when it has the wrong type.
 *
 * <p>The mapping belongs to a shared {@link Arena}: segments and tensors may be used from any
 * thread until {@link #close()}, after which touching them throws {@link IllegalStateException}.
 */
public final class GgufFile implements AutoCloseable {

  /** "GGUF" read as a little-endian uint32. */
  public static final int MAGIC = 0x46554747;

  /** Data alignment when the file has no {@code general.alignment}. */
  public static final int DEFAULT_ALIGNMENT = 32;

  /** The metadata key holding the data alignment. */
  public static final String ALIGNMENT_KEY = "general.alignment";

  /** ggml's GGML_MAX_DIMS. */
  static final int MAX_DIMS = 4;

  /** Nested ARRAY values deeper than this are rejected, so a crafted file cannot blow the stack. */
  static final int MAX_ARRAY_DEPTH = 8;

  private static final ValueLayout.OfShort LE_SHORT =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfInt LE_INT =
      ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfLong LE_LONG =
      ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfFloat LE_FLOAT =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfDouble LE_DOUBLE =
      ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private final Path path;
  private final Arena arena;
  private final MemorySegment file;
  private final int version;
  private final int alignment;
  private final long dataOffset;
  private final Map<String, GgufValue> metadata;
  private final List<GgufTensorInfo> tensors;
  private final Map<String, GgufTensorInfo> tensorsByName;
  private boolean closed;

  private GgufFile(Path path, Arena arena, MemorySegment file) {
    this.path = path;
    this.arena = arena;
    this.file = file;
    Parser p = new Parser(path, file);
    this.version = p.header();
    this.metadata = Collections.unmodifiableMap(p.metadata());
    this.alignment = alignmentOf(path, metadata);
    List<GgufTensorInfo> infos = p.tensorInfos(alignment);
    this.tensors = List.copyOf(infos);
    this.dataOffset = alignUp(p.pos, alignment);
    Map<String, GgufTensorInfo> byName = new HashMap<>();
    for (GgufTensorInfo t : tensors) {
      byName.put(t.name(), t);
    }
    this.tensorsByName = byName;
    checkTensorData(path, file.byteSize(), dataOffset, tensors);
  }

  /**
   * Maps and parses {@code path}.
   *
   * @throws ModelFormatException when the file cannot be read or is not a valid GGUF v2/v3 file
   */
  public static GgufFile open(Path path) {
    Arena arena = Arena.ofShared();
    try {
      MemorySegment segment;
      try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
        segment = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
      }
      return new GgufFile(path, arena, segment);
    } catch (IOException e) {
      arena.close();
      throw ModelFormatException.of(path, "cannot read: " + e, e);
    } catch (RuntimeException | Error e) {
      arena.close();
      throw e;
    }
  }

  /**
   * Parses GGUF bytes already in memory; {@code path} only names them in messages. The caller keeps
   * ownership of {@code data}; {@link #close()} does not release it.
   */
  public static GgufFile of(Path path, MemorySegment data) {
    return new GgufFile(path, null, data);
  }

  /** The file this was opened from. */
  public Path path() {
    return path;
  }

  /** The GGUF version, 2 or 3 (the two share one layout). */
  public int version() {
    return version;
  }

  /** Data alignment in bytes: {@code general.alignment}, or 32. */
  public int alignment() {
    return alignment;
  }

  /** Absolute byte offset of the data section (the end of the tensor infos, aligned up). */
  public long dataOffset() {
    return dataOffset;
  }

  /** Size of the file in bytes. */
  public long fileSize() {
    return file.byteSize();
  }

  // ---- metadata ----

  /** All metadata in file order (unmodifiable). See {@link GgufValue} for the representations. */
  public Map<String, GgufValue> metadata() {
    return metadata;
  }

  /** Whether the metadata holds {@code key}. */
  public boolean has(String key) {
    return metadata.containsKey(key);
  }

  /** The value of {@code key}; throws naming the key when it is missing. */
  public GgufValue value(String key) {
    GgufValue v = metadata.get(key);
    if (v == null) {
      throw ModelFormatException.atKey(path, key, "missing from the metadata");
    }
    return v;
  }

  /** The value of {@code key}, if present. */
  public Optional<GgufValue> find(String key) {
    return Optional.ofNullable(metadata.get(key));
  }

  /**
   * The value of {@code key} converted by {@code as} (a {@link GgufValue} accessor such as {@code
   * GgufValue::asStringArray}), if present; a failed conversion throws naming the key.
   */
  public <T> Optional<T> find(String key, Function<GgufValue, T> as) {
    GgufValue v = metadata.get(key);
    return v == null ? Optional.empty() : Optional.of(convert(key, v, as));
  }

  /** A STRING value. */
  public String getString(String key) {
    return convert(key, value(key), GgufValue::asString);
  }

  public String getString(String key, String defaultValue) {
    return find(key, GgufValue::asString).orElse(defaultValue);
  }

  /** Any integer type whose value fits an int. */
  public int getInt(String key) {
    return convert(key, value(key), GgufValue::asInt);
  }

  public int getInt(String key, int defaultValue) {
    return find(key, GgufValue::asInt).orElse(defaultValue);
  }

  /** Any integer type whose value fits a signed long. */
  public long getLong(String key) {
    return convert(key, value(key), GgufValue::asLong);
  }

  public long getLong(String key, long defaultValue) {
    return find(key, GgufValue::asLong).orElse(defaultValue);
  }

  /** FLOAT32, or FLOAT64 narrowed. */
  public float getFloat(String key) {
    return convert(key, value(key), GgufValue::asFloat);
  }

  public float getFloat(String key, float defaultValue) {
    return find(key, GgufValue::asFloat).orElse(defaultValue);
  }

  /** FLOAT64 or FLOAT32. */
  public double getDouble(String key) {
    return convert(key, value(key), GgufValue::asDouble);
  }

  public double getDouble(String key, double defaultValue) {
    return find(key, GgufValue::asDouble).orElse(defaultValue);
  }

  /** A BOOL value. */
  public boolean getBoolean(String key) {
    return convert(key, value(key), GgufValue::asBoolean);
  }

  public boolean getBoolean(String key, boolean defaultValue) {
    return find(key, GgufValue::asBoolean).orElse(defaultValue);
  }

  /** An ARRAY of STRING (a copy). */
  public String[] getStringArray(String key) {
    return convert(key, value(key), GgufValue::asStringArray);
  }

  public Optional<String[]> findStringArray(String key) {
    return find(key, GgufValue::asStringArray);
  }

  /** An ARRAY of any integer type whose elements fit an int. */
  public int[] getIntArray(String key) {
    return convert(key, value(key), GgufValue::asIntArray);
  }

  public Optional<int[]> findIntArray(String key) {
    return find(key, GgufValue::asIntArray);
  }

  /** An ARRAY of any integer type whose elements fit a signed long. */
  public long[] getLongArray(String key) {
    return convert(key, value(key), GgufValue::asLongArray);
  }

  /** An ARRAY of FLOAT32 (or FLOAT64, narrowed). */
  public float[] getFloatArray(String key) {
    return convert(key, value(key), GgufValue::asFloatArray);
  }

  public Optional<float[]> findFloatArray(String key) {
    return find(key, GgufValue::asFloatArray);
  }

  private <T> T convert(String key, GgufValue v, Function<GgufValue, T> as) {
    try {
      return as.apply(v);
    } catch (IllegalStateException e) {
      throw ModelFormatException.atKey(path, key, e.getMessage());
    }
  }

  // ---- tensors ----

  /** Tensor infos in file order. */
  public List<GgufTensorInfo> tensors() {
    return tensors;
  }

  /** Whether the file has a tensor called {@code name}. */
  public boolean hasTensor(String name) {
    return tensorsByName.containsKey(name);
  }

  /** The tensor info of {@code name}; throws naming the tensor when there is none. */
  public GgufTensorInfo tensor(String name) {
    GgufTensorInfo t = tensorsByName.get(name);
    if (t == null) {
      throw ModelFormatException.atKey(path, name, "no such tensor in the file");
    }
    return t;
  }

  /** The tensor info of {@code name}, if present. */
  public Optional<GgufTensorInfo> findTensor(String name) {
    return Optional.ofNullable(tensorsByName.get(name));
  }

  /** The bytes of tensor {@code info} (of this file), as a slice of the mapping. */
  public MemorySegment tensorData(GgufTensorInfo info) {
    if (!info.equals(tensorsByName.get(info.name()))) {
      throw new IllegalArgumentException("tensor info " + info + " is not from " + path);
    }
    return file.asSlice(dataOffset + info.offset(), info.byteSize());
  }

  /** The bytes of tensor {@code name}. */
  public MemorySegment tensorData(String name) {
    return tensorData(tensor(name));
  }

  /**
   * Tensor {@code name} as a {@link FloatTensor} over the mapping, with {@code cols = dims[0]} and
   * {@code rows} the product of the other dims (1 for a vector).
   *
   * @throws ModelFormatException naming the tensor when it is missing, its type is one the engine
   *     cannot compute with, or its shape does not fit int rows and cols
   */
  public FloatTensor floatTensor(String name) {
    GgufTensorInfo t = tensor(name);
    if (!t.type().supported()) {
      String supported =
          Arrays.stream(GgmlType.values())
              .filter(GgmlType::supported)
              .map(GgmlType::name)
              .collect(Collectors.joining(", "));
      throw ModelFormatException.atKey(
          path,
          name,
          "tensor '"
              + name
              + "' has type "
              + t.type()
              + ", which the engine cannot compute with (supported: "
              + supported
              + ")");
    }
    long cols = t.dim(0);
    long rows = t.elementCount() / cols;
    if (cols > Integer.MAX_VALUE || rows > Integer.MAX_VALUE) {
      throw ModelFormatException.atKey(
          path,
          name,
          "tensor '" + name + "' of " + rows + " x " + cols + " does not fit int rows and cols");
    }
    try {
      return FloatTensor.of(t.type(), tensorData(t), (int) rows, (int) cols);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.atKey(path, name, "tensor '" + name + "': " + e.getMessage());
    }
  }

  /** Unmaps the file (when opened by {@link #open}); idempotent. */
  @Override
  public void close() {
    if (!closed) {
      closed = true;
      if (arena != null) {
        arena.close();
      }
    }
  }

  @Override
  public String toString() {
    return "GgufFile["
        + path
        + ", v"
        + version
        + ", "
        + metadata.size()
        + " keys, "
        + tensors.size()
        + " tensors]";
  }

  // ---- validation after parsing ----

  private static int alignmentOf(Path path, Map<String, GgufValue> metadata) {
    GgufValue v = metadata.get(ALIGNMENT_KEY);
    if (v == null) {
      return DEFAULT_ALIGNMENT;
    }
    if (!v.type().isInteger()) {
      throw ModelFormatException.atKey(
          path, ALIGNMENT_KEY, "expected an integer, found " + v.describe());
    }
    long a = ((Number) v.value()).longValue();
    if (a <= 0 || a > (1 << 30) || Long.bitCount(a) != 1) {
      throw ModelFormatException.atKey(
          path, ALIGNMENT_KEY, "alignment " + a + " is not a power of two in [1, 2^30]");
    }
    return (int) a;
  }

  private static void checkTensorData(
      Path path, long fileSize, long dataOffset, List<GgufTensorInfo> tensors) {
    for (GgufTensorInfo t : tensors) {
      long start = dataOffset + t.offset(); // offset <= 2^62 (checked while parsing): no overflow
      if (start > fileSize || t.byteSize() > fileSize - start) {
        throw ModelFormatException.atOffset(
            path,
            start,
            "truncated: tensor '"
                + t.name()
                + "' needs bytes ["
                + start
                + ", "
                // both terms are below 2^63, so the sum is exact as an unsigned number
                + Long.toUnsignedString(start + t.byteSize())
                + ") but the file has "
                + fileSize);
      }
    }
    // Tensors must not share bytes: a writer bug would otherwise go unnoticed until inference.
    List<GgufTensorInfo> byOffset = new ArrayList<>(tensors);
    byOffset.sort(Comparator.comparingLong(GgufTensorInfo::offset));
    for (int i = 1; i < byOffset.size(); i++) {
      GgufTensorInfo prev = byOffset.get(i - 1);
      GgufTensorInfo next = byOffset.get(i);
      if (next.offset() < prev.offset() + prev.byteSize()) {
        throw ModelFormatException.atOffset(
            path,
            dataOffset + next.offset(),
            "tensor '"
                + next.name()
                + "' at data offset "
                + next.offset()
                + " overlaps tensor '"
                + prev.name()
                + "' at data offset "
                + prev.offset()
                + " ("
                + prev.byteSize()
                + " bytes)");
      }
    }
  }

  static long alignUp(long pos, long alignment) {
    return (pos + alignment - 1) / alignment * alignment;
  }

  /**
   * A bounds-checked little-endian cursor over the file. Every read first checks the bytes are
   * there, so a truncated or corrupt file fails with the offset and what was being read instead of
   * an IndexOutOfBoundsException.
   */
  private static final class Parser {
    private final Path path;
    private final MemorySegment seg;
    private final long size;
    long pos;
    private long tensorCount;
    private long kvCount;

    Parser(Path path, MemorySegment seg) {
      this.path = path;
      this.seg = seg;
      this.size = seg.byteSize();
    }

    int header() {
      if (size < 4) {
        throw truncated(4, "the magic");
      }
      int magic = seg.get(LE_INT, 0);
      if (magic != MAGIC) {
        throw ModelFormatException.atOffset(
            path,
            0,
            "not a GGUF file: magic is "
                + describeBytes(0, 4)
                + ", expected 47 47 55 46 (\"GGUF\")");
      }
      pos = 4;
      long version = u32("the version");
      if (version == 1) {
        throw ModelFormatException.atOffset(
            path,
            4,
            "GGUF version 1 is not supported (only 2 and 3); re-convert the model with a current"
                + " llama.cpp");
      }
      if (version != 2 && version != 3) {
        String hint =
            (version & 0xFFFF) == 0
                ? " (a big-endian GGUF file? only little-endian is supported)"
                : "";
        throw ModelFormatException.atOffset(
            path, 4, "unsupported GGUF version " + version + hint + "; supported: 2, 3");
      }
      long tensorCountPos = pos;
      tensorCount = u64("the tensor count");
      long kvCountPos = pos;
      kvCount = u64("the metadata count");
      // Both counts are bounded by the bytes left, so a corrupt count cannot make us allocate or
      // loop absurdly. Smallest key/value: 8-byte key length + 4-byte type + 1-byte value;
      // smallest tensor info: 8-byte name length + 4 n_dims + 8 dim + 4 type + 8 offset.
      checkCount(kvCountPos, kvCount, 13, "metadata entries");
      checkCount(tensorCountPos, tensorCount, 32, "tensor infos");
      return (int) version;
    }

    Map<String, GgufValue> metadata() {
      Map<String, GgufValue> out = LinkedHashMap.newLinkedHashMap((int) kvCount);
      for (long i = 0; i < kvCount; i++) {
        long keyPos = pos;
        String key = string("metadata key #" + i);
        long typePos = pos;
        long typeId = u32("the value type of metadata '" + key + "'");
        GgufValueType type = GgufValueType.fromId(typeId);
        if (type == null) {
          throw ModelFormatException.atOffset(
              path,
              typePos,
              "metadata '" + key + "' has unknown value type id " + typeId + " (known: 0..12)");
        }
        GgufValue value = value(type, key, 0);
        if (out.putIfAbsent(key, value) != null) {
          throw ModelFormatException.atOffset(path, keyPos, "duplicate metadata key '" + key + "'");
        }
      }
      return out;
    }

    List<GgufTensorInfo> tensorInfos(int alignment) {
      List<GgufTensorInfo> out = new ArrayList<>((int) tensorCount);
      Map<String, Boolean> seen = new HashMap<>();
      for (long i = 0; i < tensorCount; i++) {
        long infoPos = pos;
        String name = string("the name of tensor info #" + i);
        String what = "tensor '" + name + "'";
        long nDimsPos = pos;
        long nDims = u32("n_dims of " + what);
        if (nDims < 1 || nDims > MAX_DIMS) {
          throw ModelFormatException.atOffset(
              path, nDimsPos, what + " has n_dims " + nDims + ", outside 1.." + MAX_DIMS);
        }
        long[] dims = new long[(int) nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++) {
          long dimPos = pos;
          dims[d] = u64("dims[" + d + "] of " + what);
          if (dims[d] <= 0) {
            throw ModelFormatException.atOffset(
                path,
                dimPos,
                what + " has dims[" + d + "] = " + Long.toUnsignedString(dims[d]) + ", not > 0");
          }
          try {
            elements = Math.multiplyExact(elements, dims[d]);
          } catch (ArithmeticException e) {
            throw ModelFormatException.atOffset(
                path, dimPos, what + " has dims " + Arrays.toString(dims) + ": too many elements");
          }
        }
        long typePos = pos;
        long typeId = u32("the type of " + what);
        GgmlType type = typeId <= Integer.MAX_VALUE ? GgmlType.fromId((int) typeId) : null;
        if (type == null) {
          throw ModelFormatException.atOffset(
              path, typePos, what + " has unknown ggml type id " + typeId);
        }
        // ggml quantizes along the rows: each row (dims[0] elements) must be whole blocks.
        if (dims[0] % type.blockSize() != 0) {
          throw ModelFormatException.atOffset(
              path,
              typePos,
              what
                  + " of type "
                  + type
                  + " has dims[0] = "
                  + dims[0]
                  + ", not a multiple of the block size "
                  + type.blockSize());
        }
        long byteSize;
        try {
          byteSize = Math.multiplyExact(elements / type.blockSize(), type.bytesPerBlock());
        } catch (ArithmeticException e) {
          throw ModelFormatException.atOffset(path, infoPos, what + " is too large");
        }
        long offsetPos = pos;
        long offset = u64("the data offset of " + what);
        if (offset < 0 || offset > (1L << 62) || offset % alignment != 0) {
          throw ModelFormatException.atOffset(
              path,
              offsetPos,
              what
                  + " has data offset "
                  + Long.toUnsignedString(offset)
                  + ", not a multiple of the alignment "
                  + alignment);
        }
        if (seen.put(name, Boolean.TRUE) != null) {
          throw ModelFormatException.atOffset(
              path, infoPos, "duplicate tensor name '" + name + "'");
        }
        out.add(new GgufTensorInfo(name, dims, type, offset, byteSize));
      }
      return out;
    }

    private GgufValue value(GgufValueType type, String key, int depth) {
      String what = "metadata '" + key + "'";
      return switch (type) {
        case UINT8 -> new GgufValue(type, null, u8(what));
        case INT8 -> new GgufValue(type, null, (int) (byte) u8(what));
        case UINT16 -> new GgufValue(type, null, u16(what));
        case INT16 -> new GgufValue(type, null, (int) (short) u16(what));
        case UINT32 -> new GgufValue(type, null, u32(what));
        case INT32 -> new GgufValue(type, null, (int) u32(what));
        case FLOAT32 -> new GgufValue(type, null, Float.intBitsToFloat((int) u32(what)));
        case BOOL -> new GgufValue(type, null, u8(what) != 0);
        case STRING -> new GgufValue(type, null, string(what));
        case ARRAY -> array(key, depth);
        case UINT64, INT64 -> new GgufValue(type, null, u64(what));
        case FLOAT64 -> new GgufValue(type, null, Double.longBitsToDouble(u64(what)));
      };
    }

    private GgufValue array(String key, int depth) {
      String what = "metadata '" + key + "'";
      if (depth >= MAX_ARRAY_DEPTH) {
        throw ModelFormatException.atOffset(
            path, pos, what + " nests arrays deeper than " + MAX_ARRAY_DEPTH);
      }
      long typePos = pos;
      long typeId = u32("the array element type of " + what);
      GgufValueType et = GgufValueType.fromId(typeId);
      if (et == null) {
        throw ModelFormatException.atOffset(
            path,
            typePos,
            what + " has unknown array element type id " + typeId + " (known: 0..12)");
      }
      long countPos = pos;
      long count = u64("the array length of " + what);
      checkCount(countPos, count, et.minSize(), et + " elements of " + what);
      int n = (int) count;
      long start = pos;
      Object values =
          switch (et) {
            case UINT8, INT8 -> {
              byte[] a = new byte[n];
              MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, start, a, 0, n);
              yield a;
            }
            case BOOL -> {
              boolean[] a = new boolean[n];
              for (int i = 0; i < n; i++) {
                a[i] = seg.get(ValueLayout.JAVA_BYTE, start + i) != 0;
              }
              yield a;
            }
            case UINT16, INT16 -> {
              short[] a = new short[n];
              MemorySegment.copy(seg, LE_SHORT, start, a, 0, n);
              yield a;
            }
            case UINT32, INT32 -> {
              int[] a = new int[n];
              MemorySegment.copy(seg, LE_INT, start, a, 0, n);
              yield a;
            }
            case FLOAT32 -> {
              float[] a = new float[n];
              MemorySegment.copy(seg, LE_FLOAT, start, a, 0, n);
              yield a;
            }
            case UINT64, INT64 -> {
              long[] a = new long[n];
              MemorySegment.copy(seg, LE_LONG, start, a, 0, n);
              yield a;
            }
            case FLOAT64 -> {
              double[] a = new double[n];
              MemorySegment.copy(seg, LE_DOUBLE, start, a, 0, n);
              yield a;
            }
            case STRING -> {
              String[] a = new String[n];
              for (int i = 0; i < n; i++) {
                a[i] = string(what + " element " + i);
              }
              yield a;
            }
            case ARRAY -> {
              GgufValue[] a = new GgufValue[n];
              for (int i = 0; i < n; i++) {
                a[i] = array(key, depth + 1);
              }
              yield a;
            }
          };
      if (et.fixedSize() > 0) {
        pos = start + count * et.fixedSize(); // in bounds: checkCount saw count * size bytes
      }
      return GgufValue.array(et, values);
    }

    /**
     * Rejects a count whose elements cannot fit in the rest of the file even at their smallest, or
     * that a Java array cannot hold.
     */
    private void checkCount(long countPos, long count, int minSize, String what) {
      long left = size - pos;
      if (count < 0 || count > left / minSize) {
        throw ModelFormatException.atOffset(
            path,
            countPos,
            "truncated or corrupt: count of "
                + Long.toUnsignedString(count)
                + " "
                + what
                + " cannot fit: each needs at least "
                + minSize
                + " bytes, but only "
                + left
                + " are left in the file of "
                + size);
      }
      if (count > Integer.MAX_VALUE - 8) {
        throw ModelFormatException.atOffset(
            path, countPos, "count of " + count + " " + what + " exceeds what Java arrays hold");
      }
    }

    String string(String what) {
      long lenPos = pos;
      long len = u64("the length of " + what);
      long left = size - pos;
      if (len < 0 || len > left) {
        throw ModelFormatException.atOffset(
            path,
            lenPos,
            "truncated or corrupt: string length "
                + Long.toUnsignedString(len)
                + " of "
                + what
                + " exceeds the "
                + left
                + " bytes left in the file of "
                + size);
      }
      if (len > Integer.MAX_VALUE - 8) {
        throw ModelFormatException.atOffset(
            path, lenPos, "string length " + len + " of " + what + " exceeds what Java holds");
      }
      byte[] bytes = new byte[(int) len];
      MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, pos, bytes, 0, bytes.length);
      pos += len;
      // Invalid UTF-8 becomes U+FFFD rather than failing the load; GGUF writers emit UTF-8.
      return new String(bytes, StandardCharsets.UTF_8);
    }

    int u8(String what) {
      need(1, what);
      return seg.get(ValueLayout.JAVA_BYTE, pos++) & 0xFF;
    }

    int u16(String what) {
      need(2, what);
      int v = seg.get(LE_SHORT, pos) & 0xFFFF;
      pos += 2;
      return v;
    }

    long u32(String what) {
      need(4, what);
      long v = seg.get(LE_INT, pos) & 0xFFFF_FFFFL;
      pos += 4;
      return v;
    }

    long u64(String what) {
      need(8, what);
      long v = seg.get(LE_LONG, pos);
      pos += 8;
      return v;
    }

    private void need(long n, String what) {
      if (n > size - pos) {
        throw truncated(n, what);
      }
    }

    private ModelFormatException truncated(long n, String what) {
      return ModelFormatException.atOffset(
          path,
          pos,
          "truncated: "
              + what
              + " needs "
              + n
              + " bytes but only "
              + (size - pos)
              + " are left in the file of "
              + size);
    }

    private String describeBytes(long from, int n) {
      StringBuilder hex = new StringBuilder();
      StringBuilder text = new StringBuilder();
      for (int i = 0; i < n; i++) {
        int b = seg.get(ValueLayout.JAVA_BYTE, from + i) & 0xFF;
        hex.append(i == 0 ? "" : " ").append(String.format("%02x", b));
        text.append(b >= 0x20 && b < 0x7F ? (char) b : '.');
      }
      return hex + " (\"" + text + "\")";
    }
  }
}
