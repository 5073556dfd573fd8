package dev.longctx.engine.cuda;

/** A failed CUDA, cuBLAS or NVRTC call: names the call, its status code and the library's text. */
public final class CudaException extends RuntimeException {

  private final int status;

  public CudaException(String call, int status, String detail) {
    super(call + " failed with status " + status + (detail == null ? "" : " (" + detail + ")"));
    this.status = status;
  }

  public CudaException(String message, Throwable cause) {
    super(message, cause);
    this.status = -1;
  }

  /** The library's status code, or −1 when the failure was not a status. */
  public int status() {
    return status;
  }
}
