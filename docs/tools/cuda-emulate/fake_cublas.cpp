// A fake libcublas.so.13 beside fake_driver.cpp: the four cuBLAS calls the engine's CUDA backend
// makes (dev.longctx.engine.cuda.CudaBlas: create, destroy, GemmEx, status string), with "device"
// memory in host memory as the fake driver allocates it. cublasGemmEx computes column-major
// C = alpha · op(A) · op(B) + beta · C from FP16, BF16 or FP32 inputs into FP32, accumulating in
// FP32 in k order as a tensor-core GEMM with CUBLAS_COMPUTE_32F does (its order differs, its
// precision does not). With it the Java GPU tests run the prefill's GEMM path (the per-chunk FP16
// copies of quantized weights, the FP32 products, the indexer's GEMM) on a machine without a GPU.
// Built with an empty libcublasLt.so.13, which the JavaCPP binding also links; see java-check.sh.
#include "emulate.h"  // emulated_half_to_float (exact)

#include <cstdint>
#include <cstring>

namespace {

constexpr int SUCCESS = 0, NOT_INITIALIZED = 1, INVALID_VALUE = 7, NOT_SUPPORTED = 15;
constexpr int OP_N = 0, OP_T = 1;
constexpr int R_32F = 0, R_16F = 2, R_16BF = 14;  // cudaDataType
constexpr int COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69;

struct Handle {
  int magic = 0x6c6f6e67;
};

float element(const void* base, int type, long long index) {
  switch (type) {
    case R_32F:
      return static_cast<const float*>(base)[index];
    case R_16F:
      return emulated_half_to_float(static_cast<const uint16_t*>(base)[index]);
    default: {  // R_16BF
      uint32_t bits = (uint32_t) static_cast<const uint16_t*>(base)[index] << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
  }
}

bool input_type(int type) { return type == R_32F || type == R_16F || type == R_16BF; }

}  // namespace

extern "C" {

int cublasCreate_v2(void** handle) {
  if (handle == nullptr) return INVALID_VALUE;
  *handle = new Handle();
  return SUCCESS;
}

int cublasDestroy_v2(void* handle) {
  if (handle == nullptr || static_cast<Handle*>(handle)->magic != Handle().magic)
    return NOT_INITIALIZED;
  delete static_cast<Handle*>(handle);
  return SUCCESS;
}

const char* cublasGetStatusString(int status) {
  switch (status) {
    case SUCCESS: return "the operation completed successfully";
    case NOT_INITIALIZED: return "the library was not initialized";
    case INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown status (fake cuBLAS)";
  }
}

int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                 const void* a, int aType, int lda, const void* b, int bType, int ldb,
                 const void* beta, void* c, int cType, int ldc, int computeType, int /*algo*/) {
  if (handle == nullptr) return NOT_INITIALIZED;
  if ((transa != OP_N && transa != OP_T) || (transb != OP_N && transb != OP_T) || m < 0 ||
      n < 0 || k < 0 || lda < (transa == OP_N ? m : k) || ldb < (transb == OP_N ? k : n) ||
      ldc < m || alpha == nullptr || beta == nullptr)
    return INVALID_VALUE;
  if (!input_type(aType) || bType != aType || cType != R_32F ||
      (computeType != COMPUTE_32F && computeType != COMPUTE_32F_PEDANTIC))
    return NOT_SUPPORTED;
  float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  float* out = static_cast<float*>(c);
  for (int j = 0; j < n; j++) {
    for (int i = 0; i < m; i++) {
      float acc = 0.f;
      for (int l = 0; l < k; l++) {
        long long ai = transa == OP_N ? i + (long long)l * lda : l + (long long)i * lda;
        long long bi = transb == OP_N ? l + (long long)j * ldb : j + (long long)l * ldb;
        acc += element(a, aType, ai) * element(b, bType, bi);
      }
      float* y = out + i + (long long)j * ldc;
      *y = be == 0.f ? al * acc : al * acc + be * *y;  // beta 0: C is not read (may hold NaN)
    }
  }
  return SUCCESS;
}

}  // extern "C"
