package dev.longctx.engine.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetCount;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetName;
import static org.bytedeco.cuda.global.cudart.cuInit;

import dev.longctx.engine.cuda.Backend.Availability;

/**
 * Finds out whether CUDA is usable: the bindings and the driver load, {@code cuInit} succeeds and a
 * device exists. Never throws; the answer is computed once per process.
 */
public final class CudaProbe {

  private static volatile Availability cached;

  private CudaProbe() {}

  public static Availability probe() {
    Availability a = cached;
    if (a == null) {
      a = run();
      cached = a;
    }
    return a;
  }

  private static Availability run() {
    try {
      int status = cuInit(0);
      if (status != CUDA_SUCCESS) {
        return Availability.no(
            "cuInit failed with status " + status + " (" + Cuda.errorName(status) + ")");
      }
      int[] count = new int[1];
      status = cuDeviceGetCount(count);
      if (status != CUDA_SUCCESS) {
        return Availability.no("cuDeviceGetCount failed with status " + status);
      }
      if (count[0] == 0) {
        return Availability.no("the CUDA driver reports no device");
      }
      byte[] name = new byte[256];
      cuDeviceGetName(name, name.length, 0);
      return Availability.yes(Cuda.cString(name));
    } catch (LinkageError | RuntimeException e) {
      // UnsatisfiedLinkError (no libcuda / libcudart), NoClassDefFoundError (no bindings jar),
      // ExceptionInInitializerError (JavaCPP's loader failed).
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      return Availability.no("the CUDA driver or libraries could not be loaded: " + root);
    }
  }
}
