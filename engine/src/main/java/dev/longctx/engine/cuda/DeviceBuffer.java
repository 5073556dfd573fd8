package dev.longctx.engine.cuda;

/** A block of device memory owned by a {@link CudaContext}; freed by {@link #close}. */
public final class DeviceBuffer implements AutoCloseable {

  private final CudaContext context;
  private final long address;
  private final long bytes;
  private boolean freed;

  DeviceBuffer(CudaContext context, long address, long bytes) {
    this.context = context;
    this.address = address;
    this.bytes = bytes;
  }

  /** The device address (for kernel arguments and page tables). */
  public long address() {
    if (freed) {
      throw new IllegalStateException("device buffer was freed");
    }
    return address;
  }

  public long bytes() {
    return bytes;
  }

  void checkRange(long offset, long length) {
    if (offset < 0 || length < 0 || offset + length > bytes) {
      throw new IndexOutOfBoundsException(
          "bytes ["
              + offset
              + ", "
              + (offset + length)
              + ") of a "
              + bytes
              + "-byte device buffer");
    }
  }

  @Override
  public void close() {
    if (!freed) {
      context.free(address); // may refuse (inside a recorded step): then the buffer stays
      freed = true;
    }
  }
}
