package dev.longctx.engine.cuda;

import static dev.longctx.engine.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.cuModuleGetFunction;
import static org.bytedeco.cuda.global.cudart.cuModuleLoadData;
import static org.bytedeco.cuda.global.cudart.cuModuleUnload;
import static org.bytedeco.cuda.global.nvrtc.NVRTC_SUCCESS;
import static org.bytedeco.cuda.global.nvrtc.nvrtcCompileProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcCreateProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcDestroyProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetErrorString;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetPTX;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetPTXSize;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetProgramLog;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetProgramLogSize;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * The kernels of {@code src/main/cuda/longctx.cu} loaded into the current context: the PTX the
 * build compiled with nvcc (sm_90 on compute capability ≥ 9.0, sm_80 on 8.x; the driver JITs PTX to
 * the exact device), or, when the jar has no PTX for this device, the shipped source compiled by
 * NVRTC now.
 */
final class CudaModule implements AutoCloseable {

  static final String RESOURCE_DIR = "/dev/longctx/engine/cuda/";
  static final String SOURCE = "longctx.cu";

  private final CUmod_st module;
  private final String source;

  private CudaModule(CUmod_st module, String source) {
    this.module = module;
    this.source = source;
  }

  /** The PTX resource for a device of compute capability {@code cc}, or null below sm_80. */
  static String ptxResource(int cc) {
    if (cc >= 90) {
      return RESOURCE_DIR + "longctx.sm_90.ptx";
    }
    return cc >= 80 ? RESOURCE_DIR + "longctx.sm_80.ptx" : null;
  }

  static CudaModule load(int computeCapability) {
    String resource = ptxResource(computeCapability);
    byte[] ptx = resource == null ? null : readResource(resource);
    String origin = "PTX " + resource;
    if (ptx == null) {
      byte[] cu = readResource(RESOURCE_DIR + SOURCE);
      if (cu == null) {
        throw new IllegalStateException("the jar holds neither PTX nor " + SOURCE);
      }
      ptx = compile(new String(cu, StandardCharsets.UTF_8), computeCapability);
      origin = "NVRTC (compute_" + computeCapability + ")";
    }
    CUmod_st module = new CUmod_st();
    byte[] image = Arrays.copyOf(ptx, ptx.length + 1); // NUL-terminated for the JIT
    try (BytePointer p = new BytePointer(image)) {
      check("cuModuleLoadData(" + origin + ")", cuModuleLoadData(module, p));
    }
    return new CudaModule(module, origin);
  }

  String source() {
    return source;
  }

  CUfunc_st function(String name) {
    CUfunc_st f = new CUfunc_st();
    check("cuModuleGetFunction(" + name + ")", cuModuleGetFunction(f, module, name));
    return f;
  }

  static byte[] readResource(String path) {
    try (InputStream in = CudaModule.class.getResourceAsStream(path)) {
      return in == null ? null : in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read resource " + path, e);
    }
  }

  /** PTX for {@code compute_<cc>} from the CUDA C source, by NVRTC; fails with the compile log. */
  static byte[] compile(String cu, int cc) {
    _nvrtcProgram program = new _nvrtcProgram();
    checkNvrtc(
        "nvrtcCreateProgram",
        nvrtcCreateProgram(
            program,
            new BytePointer(cu),
            new BytePointer(SOURCE),
            0,
            (PointerPointer<?>) null,
            (PointerPointer<?>) null));
    try (PointerPointer<BytePointer> options =
        new PointerPointer<>("--gpu-architecture=compute_" + cc, "-default-device")) {
      int status = nvrtcCompileProgram(program, 2, options);
      if (status != NVRTC_SUCCESS) {
        throw new CudaException("nvrtcCompileProgram", status, log(program));
      }
      try (SizeTPointer size = new SizeTPointer(1)) {
        checkNvrtc("nvrtcGetPTXSize", nvrtcGetPTXSize(program, size));
        byte[] ptx = new byte[(int) size.get()];
        checkNvrtc("nvrtcGetPTX", nvrtcGetPTX(program, ptx));
        int end = ptx.length;
        while (end > 0 && ptx[end - 1] == 0) {
          end--;
        }
        return Arrays.copyOf(ptx, end);
      }
    } finally {
      nvrtcDestroyProgram(program);
    }
  }

  private static String log(_nvrtcProgram program) {
    try (SizeTPointer size = new SizeTPointer(1)) {
      if (nvrtcGetProgramLogSize(program, size) != NVRTC_SUCCESS) {
        return "no log";
      }
      byte[] log = new byte[(int) size.get()];
      nvrtcGetProgramLog(program, log);
      return Cuda.cString(log);
    }
  }

  private static void checkNvrtc(String call, int status) {
    if (status != NVRTC_SUCCESS) {
      throw new CudaException(call, status, nvrtcGetErrorString(status).getString());
    }
  }

  @Override
  public void close() {
    check("cuModuleUnload", cuModuleUnload(module));
  }
}
