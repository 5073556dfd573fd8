package dev.longctx.engine.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cublas.cublasGetStatusString;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * cuBLAS GEMMs for prefill: {@code Y[n, rows] = X[n, cols] · W[rows, cols]ᵀ} with FP16 or BF16 (or
 * FP32) inputs and FP32 accumulation and output. On the default stream like every other call of the
 * backend. Optional: when libcublas is missing, {@link #tryCreate} returns null and prefill uses
 * the matrix-vector kernel per token.
 */
final class CudaBlas implements AutoCloseable {

  /** Element types of the GEMM inputs. */
  enum Precision {
    FP16,
    BF16,
    FP32
  }

  private final CudaContext cx;
  private final cublasContext handle;

  private CudaBlas(CudaContext cx, cublasContext handle) {
    this.cx = cx;
    this.handle = handle;
  }

  /** cuBLAS on {@code cx} (current), or null (with the reason in {@code why[0]}). */
  static CudaBlas tryCreate(CudaContext cx, String[] why) {
    try {
      cublasContext h = new cublasContext();
      check("cublasCreate", cublasCreate_v2(h));
      return new CudaBlas(cx, h);
    } catch (LinkageError | CudaException e) {
      why[0] = e.toString();
      return null;
    }
  }

  /**
   * Row-major {@code y[n, rows] = x[n, cols] · w[rows, cols]ᵀ}. cuBLAS is column-major: row-major w
   * is column-major wᵀ (ld = cols), so {@code yᵀ = op_T(wᵀ) · xᵀ} is a TN GEMM with m = rows.
   */
  void gemm(Precision p, long w, long x, long y, int rows, int cols, int n) {
    int type =
        switch (p) {
          case FP16 -> CUDA_R_16F;
          case BF16 -> CUDA_R_16BF;
          case FP32 -> CUDA_R_32F;
        };
    cx.libraryCall("cublasGemmEx " + p, () -> gemmEx(type, p, w, x, y, rows, cols, n));
  }

  private void gemmEx(int type, Precision p, long w, long x, long y, int rows, int cols, int n) {
    try (FloatPointer alpha = new FloatPointer(1f);
        FloatPointer beta = new FloatPointer(0f)) {
      check(
          "cublasGemmEx(" + p + ", " + rows + "x" + cols + " by " + n + ")",
          cublasGemmEx(
              handle,
              CUBLAS_OP_T,
              CUBLAS_OP_N,
              rows,
              n,
              cols,
              alpha,
              device(w),
              type,
              cols,
              device(x),
              type,
              cols,
              beta,
              device(y),
              CUDA_R_32F,
              rows,
              CUBLAS_COMPUTE_32F,
              CUBLAS_GEMM_DEFAULT));
    }
  }

  /** A JavaCPP pointer holding a device address (cuBLAS takes device pointers as void*). */
  private static Pointer device(long address) {
    return new DeviceAddress(address);
  }

  private static final class DeviceAddress extends Pointer {
    DeviceAddress(long address) {
      this.address = address;
    }
  }

  private static void check(String call, int status) {
    if (status != CUBLAS_STATUS_SUCCESS) {
      String text;
      try {
        text = cublasGetStatusString(status).getString();
      } catch (RuntimeException | LinkageError e) {
        text = "?";
      }
      throw new CudaException(call, status, text);
    }
  }

  @Override
  public void close() {
    check("cublasDestroy", cublasDestroy_v2(handle));
  }
}
