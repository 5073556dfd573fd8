package dev.longctx.engine.cuda;

import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.util.Set;

/**
 * A weight matrix on the device in its GGUF layout (F32, F16, BF16, Q8_0 or Q4_0 blocks), uploaded
 * once: the kernels dequantize on the fly, so device memory holds the same bytes as the file.
 */
public record DeviceTensor(GgmlType type, int rows, int cols, DeviceBuffer buffer)
    implements AutoCloseable {

  /** The types the kernels read. */
  public static final Set<GgmlType> SUPPORTED =
      Set.of(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);

  /** Uploads {@code t}; fails naming the type when no kernel reads it (e.g. Q4_K). */
  public static DeviceTensor upload(CudaContext cx, FloatTensor t, String name) {
    if (!SUPPORTED.contains(t.type())) {
      throw new IllegalArgumentException(
          name
              + " is "
              + t.type()
              + "; the CUDA backend reads "
              + SUPPORTED
              + " (convert the model or use --backend cpu)");
    }
    return new DeviceTensor(t.type(), t.rows(), t.cols(), cx.upload(t.data()));
  }

  public long address() {
    return buffer.address();
  }

  public long bytes() {
    return buffer.bytes();
  }

  @Override
  public void close() {
    buffer.close();
  }
}
