package dev.longctx.engine.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.longctx.engine.cuda.Backend.Availability;

/**
 * The device the CUDA tests share, or a skip with the reason when none is usable (also under
 * CI=true: CI machines have no GPU; the device checks run through docs/tools/gpu-check.sh).
 */
final class CudaTests {

  private static CudaContext shared;

  private CudaTests() {}

  static synchronized CudaContext context() {
    Availability a = CudaProbe.probe();
    assumeTrue(a.available(), () -> "no usable CUDA device (" + a.reason() + "); skipping");
    if (shared == null) {
      shared = CudaContext.open();
      System.out.println(
          "CUDA tests on "
              + shared.deviceName()
              + " (sm_"
              + shared.computeCapability()
              + ", kernels from "
              + shared.kernelSource()
              + ")");
    }
    shared.bind();
    return shared;
  }

  /** A quiet NaN bit pattern, to poison output buffers so unwritten elements fail comparisons. */
  static final int NAN_BITS = 0x7fc00000;

  /** A device buffer of {@code n} floats filled with NaN. */
  static DeviceBuffer poisoned(CudaContext cx, long n) {
    DeviceBuffer b = cx.alloc(n * Float.BYTES);
    cx.fill(b, NAN_BITS);
    return b;
  }

  static float[] read(CudaContext cx, DeviceBuffer b, int n) {
    float[] out = new float[n];
    cx.read(b, 0, out, n);
    return out;
  }
}
