package dev.longctx.engine.gguf;

import dev.longctx.engine.tensor.GgmlType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Builds a GGUF version 3 file: metadata in insertion order, then tensor infos, then tensor data,
 * each tensor's offset computed here and padded to the alignment ({@code general.alignment}, 32
 * unless {@link #alignment(int)} sets another power of two).
 *
 * <p>Only the header (metadata and tensor infos) is held in memory. Tensor bytes come from a {@link
 * TensorSource} that is asked to write itself when the file is written, so a model of several GB
 * can be produced without holding it. Each source must write exactly {@code
 * type.byteSize(elements)} bytes, which is checked.
 *
 * <p>Putting a key twice replaces its value and keeps its first position. The writer is not
 * thread-safe and may be written more than once (each time asking the sources again).
 */
public final class GgufWriter {

  /** Tensor data, produced when the file is written. */
  @FunctionalInterface
  public interface TensorSource {

    /** Writes exactly the tensor's bytes (little-endian, ggml block layout) to {@code out}. */
    void writeTo(WritableByteChannel out) throws IOException;

    /**
     * The bytes of {@code data}, read when the file is written (so {@code data} must still be alive
     * then). Native and mapped segments are written without an intermediate copy.
     */
    static TensorSource of(MemorySegment data) {
      return out -> {
        long size = data.byteSize();
        if (data.isNative()) {
          for (long off = 0; off < size; off += CHUNK) {
            writeFully(out, data.asSlice(off, Math.min(CHUNK, size - off)).asByteBuffer());
          }
          return;
        }
        // Heap segments over non-byte arrays cannot be viewed as a ByteBuffer: copy in chunks.
        ByteBuffer buf = ByteBuffer.allocateDirect((int) Math.min(CHUNK, Math.max(size, 1)));
        MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
        for (long off = 0; off < size; off += buf.capacity()) {
          int n = (int) Math.min(buf.capacity(), size - off);
          MemorySegment.copy(data, off, bufSeg, 0, n);
          writeFully(out, buf.clear().limit(n));
        }
      };
    }

    /** {@code values} as little-endian float32 (an F32 tensor), read when the file is written. */
    static TensorSource ofFloats(float[] values) {
      return out -> {
        int perChunk = (int) Math.min(CHUNK / Float.BYTES, Math.max(values.length, 1));
        ByteBuffer buf = ByteBuffer.allocateDirect(perChunk * Float.BYTES);
        MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
        for (int i = 0; i < values.length; i += perChunk) {
          int n = Math.min(perChunk, values.length - i);
          MemorySegment.copy(values, i, bufSeg, LE_FLOAT, 0, n);
          writeFully(out, buf.clear().limit(n * Float.BYTES));
        }
      };
    }
  }

  private static final int CHUNK = 1 << 20;
  private static final ValueLayout.OfFloat LE_FLOAT =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  private record PendingTensor(
      String name, GgmlType type, long[] dims, long byteSize, TensorSource source) {}

  private final Map<String, GgufValue> metadata = new LinkedHashMap<>();
  private final List<PendingTensor> tensors = new ArrayList<>();
  private final Set<String> tensorNames = new HashSet<>();

  /** Sets the data alignment, stored as {@code general.alignment} (UINT32). */
  public GgufWriter alignment(int alignment) {
    if (alignment <= 0 || Integer.bitCount(alignment) != 1) {
      throw new IllegalArgumentException("alignment " + alignment + " is not a power of two");
    }
    return put(GgufFile.ALIGNMENT_KEY, GgufValue.uint32(alignment));
  }

  /** Puts any value (nested arrays included); see the typed methods for the common cases. */
  public GgufWriter put(String key, GgufValue value) {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(value, "value");
    if (key.isEmpty()) {
      throw new IllegalArgumentException("empty metadata key");
    }
    metadata.put(key, value);
    return this;
  }

  /** Puts every entry of {@code values} in its iteration order (e.g. another file's metadata). */
  public GgufWriter putAll(Map<String, GgufValue> values) {
    values.forEach(this::put);
    return this;
  }

  public GgufWriter putUInt8(String key, int value) {
    return put(key, GgufValue.uint8(value));
  }

  public GgufWriter putInt8(String key, int value) {
    return put(key, GgufValue.int8(value));
  }

  public GgufWriter putUInt16(String key, int value) {
    return put(key, GgufValue.uint16(value));
  }

  public GgufWriter putInt16(String key, int value) {
    return put(key, GgufValue.int16(value));
  }

  public GgufWriter putUInt32(String key, long value) {
    return put(key, GgufValue.uint32(value));
  }

  public GgufWriter putInt32(String key, int value) {
    return put(key, GgufValue.int32(value));
  }

  /** A UINT64 from its raw 64 bits. */
  public GgufWriter putUInt64(String key, long bits) {
    return put(key, GgufValue.uint64(bits));
  }

  public GgufWriter putInt64(String key, long value) {
    return put(key, GgufValue.int64(value));
  }

  public GgufWriter putFloat32(String key, float value) {
    return put(key, GgufValue.float32(value));
  }

  public GgufWriter putFloat64(String key, double value) {
    return put(key, GgufValue.float64(value));
  }

  public GgufWriter putBool(String key, boolean value) {
    return put(key, GgufValue.bool(value));
  }

  public GgufWriter putString(String key, String value) {
    return put(key, GgufValue.string(value));
  }

  public GgufWriter putUInt8Array(String key, byte[] values) {
    return put(key, GgufValue.uint8Array(values));
  }

  public GgufWriter putInt8Array(String key, byte[] values) {
    return put(key, GgufValue.int8Array(values));
  }

  public GgufWriter putUInt16Array(String key, short[] values) {
    return put(key, GgufValue.uint16Array(values));
  }

  public GgufWriter putInt16Array(String key, short[] values) {
    return put(key, GgufValue.int16Array(values));
  }

  public GgufWriter putUInt32Array(String key, int[] values) {
    return put(key, GgufValue.uint32Array(values));
  }

  public GgufWriter putInt32Array(String key, int[] values) {
    return put(key, GgufValue.int32Array(values));
  }

  public GgufWriter putUInt64Array(String key, long[] values) {
    return put(key, GgufValue.uint64Array(values));
  }

  public GgufWriter putInt64Array(String key, long[] values) {
    return put(key, GgufValue.int64Array(values));
  }

  public GgufWriter putFloat32Array(String key, float[] values) {
    return put(key, GgufValue.float32Array(values));
  }

  public GgufWriter putFloat64Array(String key, double[] values) {
    return put(key, GgufValue.float64Array(values));
  }

  public GgufWriter putBoolArray(String key, boolean[] values) {
    return put(key, GgufValue.boolArray(values));
  }

  public GgufWriter putStringArray(String key, String... values) {
    return put(key, GgufValue.stringArray(values));
  }

  public GgufWriter putStringArray(String key, List<String> values) {
    return put(key, GgufValue.stringArray(values.toArray(String[]::new)));
  }

  /**
   * Adds a tensor whose bytes {@code source} writes when the file is written.
   *
   * @param dims ggml's {@code ne}, innermost first: a {@code rows × cols} matrix is {@code {cols,
   *     rows}}; 1 to 4 dims, each positive, {@code dims[0]} a multiple of the type's block size
   * @throws IllegalArgumentException on a duplicate name or a bad shape
   */
  public GgufWriter addTensor(String name, GgmlType type, long[] dims, TensorSource source) {
    Objects.requireNonNull(source, "source");
    long[] d = dims.clone();
    long byteSize = byteSize(name, type, d);
    if (!tensorNames.add(name)) {
      throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
    }
    tensors.add(new PendingTensor(name, type, d, byteSize, source));
    return this;
  }

  /** Checks the shape as the reader will, and returns the tensor's size in bytes. */
  private static long byteSize(String name, GgmlType type, long[] dims) {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(type, "type");
    if (dims.length < 1 || dims.length > GgufFile.MAX_DIMS) {
      throw new IllegalArgumentException(
          "tensor '" + name + "' has " + dims.length + " dims, outside 1.." + GgufFile.MAX_DIMS);
    }
    long elements = 1;
    for (long x : dims) {
      if (x <= 0) {
        throw new IllegalArgumentException(
            "tensor '" + name + "' has a dim <= 0: " + Arrays.toString(dims));
      }
      elements = Math.multiplyExact(elements, x);
    }
    if (dims[0] % type.blockSize() != 0) {
      throw new IllegalArgumentException(
          "tensor '"
              + name
              + "' of type "
              + type
              + " has dims[0] = "
              + dims[0]
              + ", not a multiple of the block size "
              + type.blockSize());
    }
    return type.byteSize(elements);
  }

  /**
   * Adds a tensor with the bytes of {@code data}, whose size must be {@code
   * type.byteSize(elements)}; {@code data} is read when the file is written.
   */
  public GgufWriter addTensor(String name, GgmlType type, long[] dims, MemorySegment data) {
    long expected = byteSize(name, type, dims);
    if (data.byteSize() != expected) {
      throw new IllegalArgumentException(
          "tensor '"
              + name
              + "' of type "
              + type
              + " and dims "
              + Arrays.toString(dims)
              + " needs "
              + expected
              + " bytes, got "
              + data.byteSize());
    }
    return addTensor(name, type, dims, TensorSource.of(data));
  }

  /** Adds an F32 tensor; {@code values.length} must equal the product of the dims. */
  public GgufWriter addTensor(String name, long[] dims, float[] values) {
    long elements = 1;
    for (long x : dims) {
      elements *= x;
    }
    if (values.length != elements) {
      throw new IllegalArgumentException(
          "tensor '"
              + name
              + "' of dims "
              + Arrays.toString(dims)
              + " needs "
              + elements
              + " floats, got "
              + values.length);
    }
    return addTensor(name, GgmlType.F32, dims, TensorSource.ofFloats(values));
  }

  /** The tensor infos as they will be written, offsets relative to the data section. */
  public List<GgufTensorInfo> tensorInfos() {
    int alignment = alignment();
    List<GgufTensorInfo> out = new ArrayList<>(tensors.size());
    long offset = 0;
    for (PendingTensor t : tensors) {
      out.add(new GgufTensorInfo(t.name, t.dims, t.type, offset, t.byteSize));
      offset = GgufFile.alignUp(offset + t.byteSize, alignment);
    }
    return out;
  }

  /** Writes the file to {@code path} (created or truncated); returns its size in bytes. */
  public long write(Path path) throws IOException {
    try (FileChannel ch =
        FileChannel.open(
            path,
            StandardOpenOption.CREATE,
            StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
      return write(ch);
    }
  }

  /**
   * Streams the file to {@code out}; returns the number of bytes written.
   *
   * @throws IllegalStateException when a source writes more or fewer bytes than its tensor needs
   *     (the output is then incomplete)
   */
  public long write(WritableByteChannel out) throws IOException {
    int alignment = alignment();
    List<GgufTensorInfo> infos = tensorInfos();
    LittleEndianOutput header = new LittleEndianOutput();
    header.u32(GgufFile.MAGIC);
    header.u32(3);
    header.u64(tensors.size());
    header.u64(metadata.size());
    for (Map.Entry<String, GgufValue> e : metadata.entrySet()) {
      header.string(e.getKey());
      header.u32(e.getValue().type().id());
      value(header, e.getValue());
    }
    for (GgufTensorInfo t : infos) {
      header.string(t.name());
      header.u32(t.rank());
      for (long d : t.dims()) {
        header.u64(d);
      }
      header.u32(t.type().id());
      header.u64(t.offset());
    }
    long written = header.size();
    writeFully(out, ByteBuffer.wrap(header.bytes(), 0, header.size()));
    if (!tensors.isEmpty()) {
      // Like gguf-py, a file without tensors ends right after its metadata (the vocab-only files
      // of llama.cpp do), so such a file is reproduced byte for byte.
      written += pad(out, written, alignment);
    }
    for (int i = 0; i < tensors.size(); i++) {
      PendingTensor t = tensors.get(i);
      CountingChannel counting = new CountingChannel(out);
      t.source.writeTo(counting);
      if (counting.count != t.byteSize) {
        throw new IllegalStateException(
            "tensor '"
                + t.name
                + "': its source wrote "
                + counting.count
                + " bytes, but "
                + t.type
                + " "
                + Arrays.toString(t.dims)
                + " needs "
                + t.byteSize);
      }
      written += t.byteSize;
      // Like llama.cpp, pad after every tensor, the last included, so the file size is aligned.
      written += pad(out, written, alignment);
    }
    return written;
  }

  private int alignment() {
    GgufValue v = metadata.get(GgufFile.ALIGNMENT_KEY);
    if (v == null) {
      return GgufFile.DEFAULT_ALIGNMENT;
    }
    long a = v.type().isInteger() ? ((Number) v.value()).longValue() : -1;
    if (a <= 0 || a > (1 << 30) || Long.bitCount(a) != 1) {
      throw new IllegalStateException(
          GgufFile.ALIGNMENT_KEY + " is " + v.describe() + ", not a power of two in [1, 2^30]");
    }
    return (int) a;
  }

  private static void value(LittleEndianOutput o, GgufValue v) {
    switch (v.type()) {
      case UINT8, INT8, BOOL ->
          o.u8(v.value() instanceof Boolean b ? (b ? 1 : 0) : (Integer) v.value());
      case UINT16, INT16 -> o.u16((Integer) v.value());
      case INT32 -> o.u32((Integer) v.value());
      case UINT32 -> o.u32((Long) v.value());
      case UINT64, INT64 -> o.u64((Long) v.value());
      case FLOAT32 -> o.u32(Float.floatToRawIntBits((Float) v.value()));
      case FLOAT64 -> o.u64(Double.doubleToRawLongBits((Double) v.value()));
      case STRING -> o.string((String) v.value());
      case ARRAY -> array(o, v);
    }
  }

  // A nested ARRAY element is written without its own type id: the outer array's element type
  // already says ARRAY, so each element is element type + count + elements.
  private static void array(LittleEndianOutput o, GgufValue v) {
    o.u32(v.elementType().id());
    o.u64(v.arrayLength());
    switch (v.value()) {
      case byte[] a -> o.bytes(a);
      case boolean[] a -> {
        for (boolean b : a) {
          o.u8(b ? 1 : 0);
        }
      }
      case short[] a -> {
        for (short s : a) {
          o.u16(s);
        }
      }
      case int[] a -> {
        for (int x : a) {
          o.u32(x);
        }
      }
      case long[] a -> {
        for (long x : a) {
          o.u64(x);
        }
      }
      case float[] a -> {
        for (float x : a) {
          o.u32(Float.floatToRawIntBits(x));
        }
      }
      case double[] a -> {
        for (double x : a) {
          o.u64(Double.doubleToRawLongBits(x));
        }
      }
      case String[] a -> {
        for (String s : a) {
          o.string(s);
        }
      }
      case GgufValue[] a -> {
        for (GgufValue nested : a) {
          array(o, nested);
        }
      }
      default -> throw new AssertionError(v);
    }
  }

  private static long pad(WritableByteChannel out, long position, int alignment)
      throws IOException {
    int n = (int) (GgufFile.alignUp(position, alignment) - position);
    if (n > 0) {
      writeFully(out, ByteBuffer.allocate(n));
    }
    return n;
  }

  /**
   * Writes all of {@code buf} ({@link WritableByteChannel#write} may write less than asked); a
   * helper for {@link TensorSource} implementations.
   */
  public static void writeFully(WritableByteChannel out, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      out.write(buf);
    }
  }

  /** Counts what a {@link TensorSource} writes, so its size can be checked. */
  private static final class CountingChannel implements WritableByteChannel {
    private final WritableByteChannel out;
    long count;

    CountingChannel(WritableByteChannel out) {
      this.out = out;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = out.write(src);
      count += n;
      return n;
    }

    @Override
    public boolean isOpen() {
      return out.isOpen();
    }

    @Override
    public void close() {
      // The writer owns the underlying channel; a source closing it would end the file early.
    }
  }

  /** A growable little-endian byte buffer for the header. */
  private static final class LittleEndianOutput extends ByteArrayOutputStream {

    LittleEndianOutput() {
      super(1 << 16);
    }

    byte[] bytes() {
      return buf;
    }

    void u8(int v) {
      write(v);
    }

    void u16(int v) {
      write(v);
      write(v >>> 8);
    }

    void u32(long v) {
      u16((int) v);
      u16((int) (v >>> 16));
    }

    void u64(long v) {
      u32(v);
      u32(v >>> 32);
    }

    void bytes(byte[] b) {
      write(b, 0, b.length);
    }

    void string(String s) {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      u64(b.length);
      bytes(b);
    }
  }
}
