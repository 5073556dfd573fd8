package dev.longctx.engine.cuda;

/** One sequence on the GPU: its paged KV cache and its device activation buffers. */
public final class CudaSequence implements AutoCloseable {

  private final CudaKvCache cache;
  private CudaModel.Activations activations;

  CudaSequence(CudaKvCache cache) {
    this.cache = cache;
  }

  public CudaKvCache cache() {
    return cache;
  }

  /** Tokens fed so far. */
  public int length() {
    return cache.length();
  }

  /** Device bytes of the KV cache (whole pages). */
  public long bytesAllocated() {
    return cache.bytesAllocated();
  }

  CudaModel.Activations activations(CudaModel model, int rows) {
    if (activations == null || activations.capacity < rows) {
      if (activations != null) {
        activations.close();
      }
      activations = model.newActivations(rows);
    }
    return activations;
  }

  @Override
  public void close() {
    if (activations != null) {
      activations.close();
      activations = null;
    }
    cache.close();
  }
}
