package dev.longctx.engine.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.cuGetErrorName;
import static org.bytedeco.cuda.global.cudart.cuGetErrorString;

import java.nio.charset.StandardCharsets;
import org.bytedeco.javacpp.BytePointer;

/** Status checking shared by every CUDA call of this package. */
final class Cuda {

  private Cuda() {}

  /** Throws a {@link CudaException} naming {@code call} unless {@code status} is success. */
  static void check(String call, int status) {
    if (status != CUDA_SUCCESS) {
      throw new CudaException(call, status, errorName(status) + ": " + errorString(status));
    }
  }

  static String errorName(int status) {
    try (BytePointer p = new BytePointer((BytePointer) null)) {
      return cuGetErrorName(status, p) == CUDA_SUCCESS && !p.isNull() ? p.getString() : "?";
    } catch (RuntimeException | LinkageError e) {
      return "?";
    }
  }

  private static String errorString(int status) {
    try (BytePointer p = new BytePointer((BytePointer) null)) {
      return cuGetErrorString(status, p) == CUDA_SUCCESS && !p.isNull() ? p.getString() : "?";
    } catch (RuntimeException | LinkageError e) {
      return "?";
    }
  }

  /** A NUL-terminated byte string. */
  static String cString(byte[] bytes) {
    int n = 0;
    while (n < bytes.length && bytes[n] != 0) {
      n++;
    }
    return new String(bytes, 0, n, StandardCharsets.UTF_8);
  }
}
