package dev.longctx.engine.cuda;

import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.util.List;
import java.util.Set;

/**
 * A weight matrix on the device in its GGUF layout (F32, F16, BF16, Q8_0 or Q4_0 blocks), uploaded
 * once: the kernels dequantize on the fly, so device memory holds the same bytes as the file. A
 * tensor may be a row range of a larger upload ({@link #rows(int, int)}); only the tensor that owns
 * the buffer frees it.
 */
public record DeviceTensor(
    GgmlType type, int rows, int cols, DeviceBuffer buffer, long offset, boolean owner)
    implements AutoCloseable {

  /** The types the kernels read. */
  public static final Set<GgmlType> SUPPORTED =
      Set.of(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);

  /** Uploads {@code t}; fails naming the type when no kernel reads it (e.g. Q4_K). */
  public static DeviceTensor upload(CudaContext cx, FloatTensor t, String name) {
    return stack(cx, List.of(t), name);
  }

  /**
   * Uploads {@code parts} (one type, one column count) as one matrix, their rows one after the
   * other: the decode step then reads e.g. the query, key and value projections in one launch whose
   * thousands of rows fill the device, where the 1024-row key and value matrices alone cannot. Row
   * ranges of the result address each part.
   */
  public static DeviceTensor stack(CudaContext cx, List<FloatTensor> parts, String name) {
    FloatTensor first = parts.getFirst();
    long bytes = 0;
    int rows = 0;
    for (FloatTensor t : parts) {
      if (!SUPPORTED.contains(t.type())) {
        throw new IllegalArgumentException(
            name
                + " is "
                + t.type()
                + "; the CUDA backend reads "
                + SUPPORTED
                + " (convert the model or use --backend cpu)");
      }
      if (t.type() != first.type() || t.cols() != first.cols()) {
        throw new IllegalArgumentException(
            name + ": stacked parts differ in type or columns: " + t + " vs " + first);
      }
      bytes += t.data().byteSize();
      rows += t.rows();
    }
    DeviceBuffer buffer = cx.alloc(bytes);
    try {
      long at = 0;
      for (FloatTensor t : parts) {
        cx.write(buffer, at, t.data());
        at += t.data().byteSize();
      }
    } catch (RuntimeException e) {
      buffer.close();
      throw e;
    }
    return new DeviceTensor(first.type(), rows, first.cols(), buffer, 0, true);
  }

  /** Whether {@code parts} can be {@link #stack stacked}: one supported type, one column count. */
  public static boolean stackable(List<FloatTensor> parts) {
    FloatTensor first = parts.getFirst();
    return parts.stream()
        .allMatch(
            t ->
                SUPPORTED.contains(t.type())
                    && t.type() == first.type()
                    && t.cols() == first.cols());
  }

  /** Rows [from, from + count) as a tensor over the same device memory (not an owner). */
  public DeviceTensor rows(int from, int count) {
    if (from < 0 || count < 0 || from + count > rows) {
      throw new IndexOutOfBoundsException(
          "rows [" + from + ", " + (from + count) + ") of a " + rows + "-row tensor");
    }
    long rowBytes = type.byteSize((long) cols);
    return new DeviceTensor(type, count, cols, buffer, offset + from * rowBytes, false);
  }

  public long address() {
    return buffer.address() + offset;
  }

  /** Device bytes of these rows. */
  public long bytes() {
    return type.byteSize((long) rows * cols);
  }

  @Override
  public void close() {
    if (owner) {
      buffer.close();
    }
  }
}
