package dev.longctx.engine.cuda;

import static dev.longctx.engine.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
import static org.bytedeco.cuda.global.cudart.cuCtxSetCurrent;
import static org.bytedeco.cuda.global.cudart.cuCtxSynchronize;
import static org.bytedeco.cuda.global.cudart.cuDeviceGet;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetAttribute;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetName;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRelease;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRetain;
import static org.bytedeco.cuda.global.cudart.cuInit;
import static org.bytedeco.cuda.global.cudart.cuLaunchKernel;
import static org.bytedeco.cuda.global.cudart.cuMemAlloc;
import static org.bytedeco.cuda.global.cudart.cuMemFree;
import static org.bytedeco.cuda.global.cudart.cuMemGetInfo;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoD;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoH;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoD;
import static org.bytedeco.cuda.global.cudart.cuMemsetD32;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * One CUDA device with its primary context and the engine's kernel module: memory, copies and
 * kernel launches, every call's status checked ({@link CudaException} names the call).
 *
 * <p>All work goes to the legacy default stream, so kernels, copies and cuBLAS calls run in issue
 * order and a synchronous copy back to the host waits for everything before it: no event or stream
 * bookkeeping to get wrong. The driver API binds a context to a thread, so every public entry point
 * first makes this context current on the calling thread ({@link #bind}).
 */
public final class CudaContext implements AutoCloseable {

  private static final int STAGING_BYTES = 64 << 20;

  private final int device;
  private final String name;
  private final int computeCapability;
  private final CUctx_st context;
  private final CudaModule module;
  private final Map<String, CUfunc_st> functions = new HashMap<>();
  private CudaBlas blas;
  private boolean blasTried;
  private final String[] blasMissing = {null};
  private boolean closed;
  private final int multiprocessors;
  private final KernelArgs argSlots = new KernelArgs();
  // The graph recording the calling thread's step, if any (LaunchGraph.run): other threads'
  // calls (another model's work) go on directly.
  private final ThreadLocal<LaunchGraph> recording = new ThreadLocal<>();
  // The calling thread's kernel profile while CudaContext.profile runs its steps.
  private final ThreadLocal<KernelProfile> profiling = new ThreadLocal<>();

  private CudaContext(int ordinal) {
    check("cuInit", cuInit(0));
    int[] dev = new int[1];
    check("cuDeviceGet(" + ordinal + ")", cuDeviceGet(dev, ordinal));
    this.device = dev[0];
    byte[] nameBytes = new byte[256];
    check("cuDeviceGetName", cuDeviceGetName(nameBytes, nameBytes.length, device));
    this.name = Cuda.cString(nameBytes);
    int[] major = new int[1];
    int[] minor = new int[1];
    check(
        "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)",
        cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device));
    check(
        "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)",
        cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device));
    this.computeCapability = major[0] * 10 + minor[0];
    int[] sms = new int[1];
    check(
        "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)",
        cuDeviceGetAttribute(sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device));
    this.multiprocessors = Math.max(1, sms[0]);
    this.context = new CUctx_st();
    check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(context, device));
    check("cuCtxSetCurrent", cuCtxSetCurrent(context));
    try {
      this.module = CudaModule.load(computeCapability);
    } catch (RuntimeException e) {
      cuDevicePrimaryCtxRelease(device);
      throw e;
    }
  }

  /** Device 0, with the kernels loaded. Fails with the probe's reason when CUDA is unusable. */
  public static CudaContext open() {
    Backend.Availability a = CudaProbe.probe();
    if (!a.available()) {
      throw new IllegalStateException("CUDA is not usable: " + a.reason());
    }
    return new CudaContext(0);
  }

  public String deviceName() {
    return name;
  }

  /** Compute capability as major·10 + minor (90 for H100/H200). */
  public int computeCapability() {
    return computeCapability;
  }

  /** Where the kernels came from: the build's PTX or NVRTC at run time. */
  public String kernelSource() {
    return module.source();
  }

  /** Whether {@link #close} ran (the device memory and graphs went with the context). */
  boolean isClosed() {
    return closed;
  }

  /** Makes this context current on the calling thread. */
  public void bind() {
    if (closed) {
      throw new IllegalStateException("the CUDA context is closed");
    }
    check("cuCtxSetCurrent", cuCtxSetCurrent(context));
  }

  /** Waits for all work issued so far; surfaces asynchronous kernel faults with their call. */
  public void synchronize() {
    direct("cuCtxSynchronize");
    bind();
    check("cuCtxSynchronize", cuCtxSynchronize());
  }

  // ---- memory ---------------------------------------------------------------------------

  /** Device memory of {@code bytes} (at least 1), uninitialized. */
  public DeviceBuffer alloc(long bytes) {
    bind();
    long[] ptr = new long[1];
    check("cuMemAlloc(" + bytes + " bytes)", cuMemAlloc(ptr, Math.max(bytes, 1)));
    return new DeviceBuffer(this, ptr[0], bytes);
  }

  void free(long address) {
    if (!closed) {
      direct("cuMemFree");
      bind();
      check("cuMemFree", cuMemFree(address));
    }
  }

  /** A device copy of {@code values}. */
  public DeviceBuffer upload(float[] values) {
    DeviceBuffer b = alloc((long) values.length * Float.BYTES);
    write(b, 0, values, values.length);
    return b;
  }

  /** A device copy of {@code values}. */
  public DeviceBuffer upload(int[] values) {
    DeviceBuffer b = alloc((long) values.length * Integer.BYTES);
    write(b, 0, values, values.length);
    return b;
  }

  /** A device copy of {@code values}. */
  public DeviceBuffer upload(double[] values) {
    DeviceBuffer b = alloc((long) values.length * Double.BYTES);
    bind();
    try (DoublePointer p = new DoublePointer(values)) {
      check("cuMemcpyHtoD", cuMemcpyHtoD(b.address(), p, b.bytes()));
    }
    return b;
  }

  /** A device copy of {@code values}. */
  public DeviceBuffer upload(long[] values) {
    DeviceBuffer b = alloc((long) values.length * Long.BYTES);
    write(b, 0, values, values.length);
    return b;
  }

  /**
   * A device copy of the bytes of {@code data} (heap or mapped), staged through a bounded native
   * buffer so a multi-gigabyte weight file needs no second copy in host memory.
   */
  public DeviceBuffer upload(MemorySegment data) {
    DeviceBuffer b = alloc(data.byteSize());
    write(b, 0, data);
    return b;
  }

  /** Copies {@code data} to {@code dst} at byte {@code offset}, through a native staging block. */
  public void write(DeviceBuffer dst, long offset, MemorySegment data) {
    long size = data.byteSize();
    dst.checkRange(offset, size);
    direct("cuMemcpyHtoD");
    bind();
    int chunk = (int) Math.min(STAGING_BYTES, Math.max(size, 1));
    try (BytePointer staging = new BytePointer(chunk)) {
      MemorySegment stage = MemorySegment.ofAddress(staging.address()).reinterpret(chunk);
      for (long off = 0; off < size; off += chunk) {
        long n = Math.min(chunk, size - off);
        MemorySegment.copy(data, off, stage, 0, n);
        check("cuMemcpyHtoD", cuMemcpyHtoD(dst.address() + offset + off, staging, n));
      }
    }
  }

  /** {@code dst[offset ..] ← values[0, n)} (offset in elements). */
  public void write(DeviceBuffer dst, long offset, float[] values, int n) {
    dst.checkRange(offset * Float.BYTES, (long) n * Float.BYTES);
    direct("cuMemcpyHtoD");
    bind();
    try (FloatPointer p = new FloatPointer(n)) {
      p.put(values, 0, n);
      check(
          "cuMemcpyHtoD",
          cuMemcpyHtoD(dst.address() + offset * Float.BYTES, p, (long) n * Float.BYTES));
    }
  }

  /** {@code dst[offset ..] ← values[0, n)} (offset in elements). */
  public void write(DeviceBuffer dst, long offset, int[] values, int n) {
    dst.checkRange(offset * Integer.BYTES, (long) n * Integer.BYTES);
    direct("cuMemcpyHtoD");
    bind();
    try (IntPointer p = new IntPointer(n)) {
      p.put(values, 0, n);
      check(
          "cuMemcpyHtoD",
          cuMemcpyHtoD(dst.address() + offset * Integer.BYTES, p, (long) n * Integer.BYTES));
    }
  }

  /** {@code dst[offset ..] ← values[0, n)} (offset in elements). */
  public void write(DeviceBuffer dst, long offset, long[] values, int n) {
    dst.checkRange(offset * Long.BYTES, (long) n * Long.BYTES);
    direct("cuMemcpyHtoD");
    bind();
    try (LongPointer p = new LongPointer(n)) {
      p.put(values, 0, n);
      check(
          "cuMemcpyHtoD",
          cuMemcpyHtoD(dst.address() + offset * Long.BYTES, p, (long) n * Long.BYTES));
    }
  }

  /** {@code out[0, n) ← src[offset ..]} (offset in elements); waits for prior work. */
  public void read(DeviceBuffer src, long offset, float[] out, int n) {
    src.checkRange(offset * Float.BYTES, (long) n * Float.BYTES);
    direct("cuMemcpyDtoH");
    bind();
    try (FloatPointer p = new FloatPointer(n)) {
      check(
          "cuMemcpyDtoH",
          cuMemcpyDtoH(p, src.address() + offset * Float.BYTES, (long) n * Float.BYTES));
      p.get(out, 0, n);
    }
  }

  /** {@code out[0, n) ← src[offset ..]} (offset in elements); waits for prior work. */
  public void read(DeviceBuffer src, long offset, int[] out, int n) {
    src.checkRange(offset * Integer.BYTES, (long) n * Integer.BYTES);
    direct("cuMemcpyDtoH");
    bind();
    try (IntPointer p = new IntPointer(n)) {
      check(
          "cuMemcpyDtoH",
          cuMemcpyDtoH(p, src.address() + offset * Integer.BYTES, (long) n * Integer.BYTES));
      p.get(out, 0, n);
    }
  }

  /** {@code dst[0, bytes) ← src[0, bytes)} on the device. */
  public void copy(DeviceBuffer dst, DeviceBuffer src, long bytes) {
    dst.checkRange(0, bytes);
    src.checkRange(0, bytes);
    direct("cuMemcpyDtoD");
    bind();
    check("cuMemcpyDtoD", cuMemcpyDtoD(dst.address(), src.address(), bytes));
  }

  /** Fills {@code buffer} with copies of the 32-bit pattern {@code bits} (e.g. a NaN poison). */
  public void fill(DeviceBuffer buffer, int bits) {
    fill(buffer, 0, buffer.bytes() / 4, bits);
  }

  /** Fills the 32-bit words [offset, offset + count) of {@code buffer} with {@code bits}. */
  public void fill(DeviceBuffer buffer, long offset, long count, int bits) {
    buffer.checkRange(offset * 4, count * 4);
    direct("cuMemsetD32");
    bind();
    check("cuMemsetD32", cuMemsetD32(buffer.address() + offset * 4, bits, count));
  }

  // ---- kernels --------------------------------------------------------------------------

  /**
   * Launches {@code kernel} on a {@code grid} of blocks of {@code block} threads. Arguments in the
   * kernel's order: {@link DeviceBuffer} (or {@link Long} address; 0 for null) for pointers, {@link
   * Integer}, {@link Long} (long long), {@link Float}, {@link Double}.
   */
  /** CUDA's largest grid y dimension (every compute capability). */
  static final int MAX_GRID_Y = 65535;

  /** CUDA's largest block (every compute capability since 2.0). */
  static final int MAX_BLOCK = 1024;

  public synchronized void launch(String kernel, int gridX, int gridY, int block, Object... args) {
    bind();
    if (gridX <= 0 || gridY <= 0) {
      return; // nothing to do (an empty step); a zero grid is a launch error in CUDA
    }
    if (gridY > MAX_GRID_Y || block > MAX_BLOCK) {
      // the driver would answer CUDA_ERROR_INVALID_VALUE without saying which limit
      throw new IllegalArgumentException(
          String.format(
              "%s: grid %d x %d of %d-thread blocks is over CUDA's limits (grid y at most %d,"
                  + " a block at most %d threads)",
              kernel, gridX, gridY, block, MAX_GRID_Y, MAX_BLOCK));
    }
    if (args.length > KernelArgs.MAX) {
      throw new IllegalArgumentException(
          kernel + " has more than " + KernelArgs.MAX + " arguments");
    }
    CUfunc_st f = functions.computeIfAbsent(kernel, module::function);
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case DeviceBuffer b -> argSlots.set(i, b.address());
        case DeviceTensor t -> argSlots.set(i, t.address());
        case Long l -> argSlots.set(i, (long) l);
        case Integer v -> argSlots.set(i, (int) v);
        case Float v -> argSlots.set(i, (float) v);
        case Double v -> argSlots.set(i, (double) v);
        case null -> argSlots.set(i, 0L);
        default ->
            throw new IllegalArgumentException(
                "argument " + i + " of " + kernel + " has unsupported type " + args[i].getClass());
      }
    }
    LaunchGraph graph = recording.get();
    if (graph != null) {
      graph.add(kernel, f, gridX, gridY, block, args.length, argSlots);
      return;
    }
    KernelProfile profile = profiling.get();
    if (profile != null) {
      profile.before(kernel);
    }
    int status =
        cuLaunchKernel(
            f, gridX, gridY, 1, block, 1, 1, 0, (CUstream_st) null, argSlots.table(), null);
    if (profile != null) {
      profile.after();
    }
    if (status != 0) {
      check(
          "cuLaunchKernel(" + kernel + ", grid " + gridX + "x" + gridY + ", block " + block + ")",
          status);
    }
  }

  /**
   * Runs {@code step} {@code times} times with a CUDA event around each of its launches and cuBLAS
   * calls, and returns where the device time went (KernelProfile). Steps meant to run as a graph
   * run launch by launch here, so that each launch is seen; the events add a little time between
   * launches, so time the steps without it.
   */
  public KernelProfile.Result profile(int times, Runnable step) {
    if (recording.get() != null || profiling.get() != null) {
      throw new IllegalStateException("profile inside a recorded or profiled step");
    }
    bind();
    try (KernelProfile profile = new KernelProfile()) {
      profiling.set(profile);
      try {
        for (int i = 0; i < times; i++) {
          profile.beginStep();
          step.run();
          profile.endStep();
        }
      } finally {
        profiling.remove();
      }
      return profile.result();
    }
  }

  /** Whether the calling thread's launches are being profiled ({@link #profile}). */
  boolean isProfiling() {
    return profiling.get() != null;
  }

  /**
   * Runs a library call (cuBLAS) that launches kernels, profiled as one launch named {@code name}.
   */
  void libraryCall(String name, Runnable call) {
    KernelProfile profile = profiling.get();
    if (profile != null) {
      profile.before(name);
    }
    call.run();
    if (profile != null) {
      profile.after();
    }
  }

  /**
   * Hands the calling thread's kernel launches to {@code graph} until {@link #stopRecording}
   * (LaunchGraph.run).
   */
  void startRecording(LaunchGraph graph) {
    if (recording.get() != null) {
      throw new IllegalStateException("this thread is already recording a step");
    }
    recording.set(graph);
  }

  void stopRecording() {
    recording.remove();
  }

  /** Fails a call that would act at once while the calling thread's step is only being recorded. */
  private void direct(String call) {
    if (recording.get() != null) {
      throw new LaunchGraph.NotRecordable(call);
    }
  }

  /** Streaming multiprocessors of the device (at least 1). */
  public int multiprocessors() {
    return multiprocessors;
  }

  /** Device memory in bytes: free now, and total. */
  public record MemoryInfo(long free, long total) {}

  /** Device memory free and total (cuMemGetInfo), e.g. to size a KV cache after the weights. */
  public MemoryInfo memoryInfo() {
    bind();
    try (SizeTPointer free = new SizeTPointer(1);
        SizeTPointer total = new SizeTPointer(1)) {
      check("cuMemGetInfo", cuMemGetInfo(free, total));
      return new MemoryInfo(free.get(), total.get());
    }
  }

  /** cuBLAS on this context, or null when the library cannot be loaded here. */
  CudaBlas blas() {
    direct("cuBLAS");
    if (!blasTried) {
      blasTried = true;
      bind();
      blas = CudaBlas.tryCreate(this, blasMissing);
    }
    return blas;
  }

  /** "yes", or why cuBLAS is not available (prefill then runs on the matvec kernel). */
  public String blasStatus() {
    return blas() != null ? "yes" : "no: " + blasMissing[0];
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    bind();
    if (blas != null) {
      blas.close();
    }
    module.close();
    argSlots.close();
    closed = true;
    check("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease(device));
  }
}
