// A fake libcuda.so.1 over emulate.h: the subset of the CUDA driver API the engine's CUDA backend
// calls (dev.longctx.engine.cuda.CudaContext), with "device" memory in host memory and kernel
// launches run by the CPU emulation of longctx.cu. Loaded in place of the real driver
// (LD_LIBRARY_PATH) it lets the Java tests of the backend (CudaOpsTest, CudaModelTest) run end to
// end on a machine without a GPU: argument marshalling, copies, page tables, the model's forward
// pass, graphs of kernel launches, events. See java-check.sh. Not a CUDA implementation: one
// device, no streams, no cuBLAS.
#include "emulate.h"
#include "../../../engine/src/main/cuda/longctx.cu"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <unordered_map>
#include <mutex>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

// A kernel's launch bound to its grid and a copy of its arguments (read through the parameter
// pointers when it is bound, as cuLaunchKernel and cuGraphAddKernelNode read them).
using Bound = std::function<void()>;
using Launcher = std::function<Bound(unsigned, unsigned, unsigned, void**)>;

template <typename... P, size_t... I>
Launcher launcher(void (*kernel)(P...), std::index_sequence<I...>) {
  return [kernel](unsigned gx, unsigned gy, unsigned block, void** params) -> Bound {
    auto args = std::make_tuple(*static_cast<std::decay_t<P>*>(params[I])...);
    return [kernel, args, gx, gy, block] {
      emu::run_grid(gx, gy, block, [kernel, args] { std::apply(kernel, args); });
    };
  };
}

template <typename... P>
Launcher launcher(void (*kernel)(P...)) {
  return launcher(kernel, std::index_sequence_for<P...>{});
}

std::map<std::string, Launcher>& kernels() {
  static std::map<std::string, Launcher> k = {
      {"matvec", launcher(matvec)},
      {"matvec_split", launcher(matvec_split)},
      {"matvec_kquant", launcher(matvec_kquant)},
      {"matvec_kquant_q8x", launcher(matvec_kquant_q8x)},
      {"quantize_rows_q8", launcher(quantize_rows_q8)},
      {"rmsnorm_rows_q8", launcher(rmsnorm_rows_q8)},
      {"add_rmsnorm_rows_q8", launcher(add_rmsnorm_rows_q8)},
      {"swiglu_q8", launcher(swiglu_q8)},
      {"attention_combine_q8", launcher(attention_combine_q8)},
      {"matvec_split_q8x", launcher(matvec_split_q8x)},
      {"embed_rows", launcher(embed_rows)},
      {"rope_store_rows", launcher(rope_store_rows)},
      {"rope_store_rows_f16", launcher(rope_store_rows_f16)},
      {"add_rmsnorm_rows", launcher(add_rmsnorm_rows)},
      {"dequantize_to_half", launcher(dequantize_to_half)},
      {"float_to_half_kernel", launcher(float_to_half_kernel)},
      {"rmsnorm_rows", launcher(rmsnorm_rows)},
      {"swiglu", launcher(swiglu)},
      {"add_inplace", launcher(add_inplace)},
      {"add_bias_rows", launcher(add_bias_rows)},
      {"rope_rows", launcher(rope_rows)},
      {"kv_store", launcher(kv_store)},
      {"kv_store_f16", launcher(kv_store_f16)},
      {"kv_gather", launcher(kv_gather)},
      {"kv_gather_f16", launcher(kv_gather_f16)},
      {"softmax_rows", launcher(softmax_rows)},
      {"argmax_rows", launcher(argmax_rows)},
      {"attention", launcher(attention)},
      {"attention_f16", launcher(attention_f16)},
      {"attention_split_g1_d64", launcher(attention_split_g1_d64)},
      {"attention_split_g1_d64_f16", launcher(attention_split_g1_d64_f16)},
      {"attention_split_g2_d64", launcher(attention_split_g2_d64)},
      {"attention_split_g2_d64_f16", launcher(attention_split_g2_d64_f16)},
      {"attention_split_g4_d64", launcher(attention_split_g4_d64)},
      {"attention_split_g4_d64_f16", launcher(attention_split_g4_d64_f16)},
      {"attention_split_g8_d64", launcher(attention_split_g8_d64)},
      {"attention_split_g8_d64_f16", launcher(attention_split_g8_d64_f16)},
      {"attention_split_g1_d128", launcher(attention_split_g1_d128)},
      {"attention_split_g1_d128_f16", launcher(attention_split_g1_d128_f16)},
      {"attention_split_g2_d128", launcher(attention_split_g2_d128)},
      {"attention_split_g2_d128_f16", launcher(attention_split_g2_d128_f16)},
      {"attention_split_g4_d128", launcher(attention_split_g4_d128)},
      {"attention_split_g4_d128_f16", launcher(attention_split_g4_d128_f16)},
      {"attention_split_g8_d128", launcher(attention_split_g8_d128)},
      {"attention_split_g8_d128_f16", launcher(attention_split_g8_d128_f16)},
      {"attention_combine", launcher(attention_combine)},
      {"attention_prefill_tc_d64", launcher(attention_prefill_tc_d64)},
      {"attention_prefill_tc_d64_f16", launcher(attention_prefill_tc_d64_f16)},
      {"attention_prefill_tc_d128", launcher(attention_prefill_tc_d128)},
      {"attention_prefill_tc_d128_f16", launcher(attention_prefill_tc_d128_f16)},
      {"attention_prefill_tc2_d64", launcher(attention_prefill_tc2_d64)},
      {"attention_prefill_tc2_d64_f16", launcher(attention_prefill_tc2_d64_f16)},
      {"attention_prefill_tc2_d128", launcher(attention_prefill_tc2_d128)},
      {"attention_prefill_tc2_d128_f16", launcher(attention_prefill_tc2_d128_f16)},
      {"attention_prefill_pipe_d64_f16", launcher(attention_prefill_pipe_d64_f16)},
      {"attention_prefill_pipe_d128_f16", launcher(attention_prefill_pipe_d128_f16)},
      {"attention_prefill_pipe2_d64_f16", launcher(attention_prefill_pipe2_d64_f16)},
      {"attention_prefill_pipe2_d128_f16", launcher(attention_prefill_pipe2_d128_f16)},
      {"indexer_scores", launcher(indexer_scores)},
      {"indexer_scores_tiled", launcher(indexer_scores_tiled)},
      {"indexer_reduce", launcher(indexer_reduce)},
      {"topk_rows", launcher(topk_rows)},
      {"selfextend_merge", launcher(selfextend_merge)},
      {"block_summary_put", launcher(block_summary_put)},
      {"block_scores", launcher(block_scores)},
      {"block_expand", launcher(block_expand)},
      {"selection_split", launcher(selection_split)},
      {"quantize_keys", launcher(quantize_keys)},
      {"page_bounds", launcher(page_bounds)},
      {"softmax_rows_double", launcher(softmax_rows_double)},
      {"page_weights", launcher(page_weights)},
      {"gather_candidates", launcher(gather_candidates)},
      {"candidate_logits", launcher(candidate_logits)},
      {"candidate_weights", launcher(candidate_weights)},
      {"layernorm_rows", launcher(layernorm_rows)},
      {"mask_future", launcher(mask_future)},
      {"mask_beyond", launcher(mask_beyond)},
      {"rope_prefix_rows", launcher(rope_prefix_rows)},
  };
  return k;
}

constexpr int OK = 0, INVALID_VALUE = 1, NOT_FOUND = 500, LAUNCH_OUT_OF_RESOURCES = 701;

// What a device would refuse at launch that the emulation would otherwise run: a block of more
// threads than the kernel's __launch_bounds__ (.maxntid in the PTX the driver is handed), or one
// whose threads need more registers than an SM holds (65536 on sm_80 and sm_90, allocated 256 a
// warp). Registers come from ptxas when java-check.sh finds nvcc: lines "kernel registers" in the
// file LONGCTX_FAKE_CUDA_REGISTERS names; without it only .maxntid is checked.
struct Function {
  const Launcher* launch;
  std::string name;
  unsigned maxThreads = 1024;
  int registers = 0;  // 0: unknown
};

std::map<std::string, Function>& functions() {
  static std::map<std::string, Function> f;
  return f;
}

std::map<std::string, unsigned>& launch_bounds() {
  static std::map<std::string, unsigned> b;
  return b;
}

// .maxntid of each .entry of a PTX module: between the entry's parameter list and its body.
void read_launch_bounds(const char* ptx) {
  const char* p = ptx;
  while ((p = std::strstr(p, ".entry ")) != nullptr) {
    p += 7;
    const char* open = std::strchr(p, '(');
    const char* body = open ? std::strchr(open, '{') : nullptr;
    if (body == nullptr) return;
    std::string name(p, open);
    const char* bound = std::strstr(open, ".maxntid ");
    if (bound != nullptr && bound < body) launch_bounds()[name] = std::strtoul(bound + 9, nullptr, 10);
    p = body;
  }
}

int registers_of(const std::string& name) {
  static std::map<std::string, int> table = [] {
    std::map<std::string, int> t;
    const char* path = std::getenv("LONGCTX_FAKE_CUDA_REGISTERS");
    if (path == nullptr) return t;
    FILE* in = std::fopen(path, "r");
    if (in == nullptr) return t;
    char kernel[256];
    int regs;
    while (std::fscanf(in, "%255s %d", kernel, &regs) == 2) t[kernel] = regs;
    std::fclose(in);
    return t;
  }();
  auto it = table.find(name);
  return it == table.end() ? 0 : it->second;
}

// LAUNCH_OUT_OF_RESOURCES (with the reason on stderr) where a device would refuse the block.
int check_resources(const Function& f, unsigned threads) {
  if (threads > f.maxThreads) {
    std::fprintf(stderr, "fake driver: %s launched with %u threads, its launch bound is %u\n",
                 f.name.c_str(), threads, f.maxThreads);
    return LAUNCH_OUT_OF_RESOURCES;
  }
  long long perWarp = ((f.registers * 32LL + 255) / 256) * 256;
  long long need = perWarp * ((threads + 31) / 32);
  if (need > 65536) {
    std::fprintf(stderr,
                 "fake driver: %s needs %d registers a thread: %lld for %u threads, an SM has"
                 " 65536\n",
                 f.name.c_str(), f.registers, need, threads);
    return LAUNCH_OUT_OF_RESOURCES;
  }
  return OK;
}

}  // namespace

extern "C" {
typedef unsigned long long CUdeviceptr;

int cuInit(unsigned) { return OK; }
int cuDeviceGetCount(int* n) { *n = 1; return OK; }
int cuDeviceGet(int* d, int ordinal) { *d = ordinal; return ordinal == 0 ? OK : INVALID_VALUE; }
int cuDeviceGetName(char* name, int len, int) {
  std::snprintf(name, len, "longctx CPU emulation (fake driver)");
  return OK;
}
int cuDeviceGetAttribute(int* v, int attribute, int) {
  *v = attribute == 75 ? 9 : 0;  // COMPUTE_CAPABILITY_MAJOR = 75 → sm_90; MINOR (76) → 0
  return OK;
}
int cuDevicePrimaryCtxRetain(void** ctx, int) { *ctx = (void*)0x1; return OK; }
int cuDevicePrimaryCtxRelease_v2(int) { return OK; }
int cuCtxSetCurrent(void*) { return OK; }
int cuCtxSynchronize() { return OK; }
int cuCtxSynchronize_v2(void*) { return OK; }
int cuModuleLoadData(void** module, const void* image) {
  // The Java side must hand over PTX text with its kernels (the build's or NVRTC's).
  const char* ptx = static_cast<const char*>(image);
  if (std::strstr(ptx, ".version") == nullptr || std::strstr(ptx, ".entry matvec") == nullptr)
    return INVALID_VALUE;
  read_launch_bounds(ptx);
  *module = (void*)0x2;
  return OK;
}
int cuModuleUnload(void*) { return OK; }
int cuModuleGetFunction(void** f, void*, const char* name) {
  auto it = kernels().find(name);
  if (it == kernels().end()) return NOT_FOUND;
  Function& fn = functions()[name];
  fn.launch = &it->second;
  fn.name = name;
  auto bound = launch_bounds().find(name);
  if (bound != launch_bounds().end()) fn.maxThreads = bound->second;
  fn.registers = registers_of(name);
  *f = &fn;
  return OK;
}
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned, void*, void** params, void**) {
  // as the driver: grid y at most 65535, blocks at most 1024 threads
  if (gz != 1 || by != 1 || bz != 1 || bx == 0 || bx > 1024 || gx == 0 || gy == 0 || gy > 65535)
    return INVALID_VALUE;
  const Function& fn = *static_cast<const Function*>(f);
  if (int status = check_resources(fn, bx); status != OK) return status;
  (*fn.launch)(gx, gy, bx, params)();
  return OK;
}

// CUDA graphs of kernel nodes in a chain (the shape LaunchGraph builds): a graph holds its nodes'
// bound launches; an executable graph a copy of them, updated per node, launched in order.
struct CUDA_KERNEL_NODE_PARAMS_v2 {
  void* func;
  unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
  void** kernelParams;
  void** extra;
  void* kern;
  void* ctx;
};
struct FakeGraph {
  std::vector<std::unique_ptr<Bound>> nodes;  // a node's handle is its Bound's address
};
struct FakeExec {
  const FakeGraph* graph;
  std::vector<Bound> nodes;
};
static int bind_node(const CUDA_KERNEL_NODE_PARAMS_v2* p, Bound* out) {
  if (p->func == nullptr || p->gridDimZ != 1 || p->blockDimY != 1 || p->blockDimZ != 1 ||
      p->blockDimX == 0 || p->blockDimX > 1024 || p->gridDimX == 0 || p->gridDimY == 0 ||
      p->gridDimY > 65535 ||
      p->sharedMemBytes != 0 || p->extra != nullptr || p->kern != nullptr)
    return INVALID_VALUE;
  const Function& fn = *static_cast<const Function*>(p->func);
  if (int status = check_resources(fn, p->blockDimX); status != OK) return status;
  *out = (*fn.launch)(p->gridDimX, p->gridDimY, p->blockDimX, p->kernelParams);
  return OK;
}
int cuGraphCreate(void** graph, unsigned flags) {
  if (flags != 0) return INVALID_VALUE;
  *graph = new FakeGraph();
  return OK;
}
int cuGraphAddKernelNode_v2(void** node, void* graph, void* const* deps, size_t count,
                            const CUDA_KERNEL_NODE_PARAMS_v2* p) {
  auto* g = static_cast<FakeGraph*>(graph);
  // a chain: the first node without dependencies, every other one after the previous node
  if (g->nodes.empty() ? count != 0 : count != 1 || deps[0] != g->nodes.back().get())
    return INVALID_VALUE;
  auto bound = std::make_unique<Bound>();
  int status = bind_node(p, bound.get());
  if (status != OK) return status;
  *node = bound.get();
  g->nodes.push_back(std::move(bound));
  return OK;
}
int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long flags) {
  if (flags != 0) return INVALID_VALUE;
  auto* g = static_cast<FakeGraph*>(graph);
  auto* e = new FakeExec{g, {}};
  for (const auto& n : g->nodes) e->nodes.push_back(*n);
  *exec = e;
  return OK;
}
int cuGraphExecKernelNodeSetParams_v2(void* exec, void* node,
                                      const CUDA_KERNEL_NODE_PARAMS_v2* p) {
  auto* e = static_cast<FakeExec*>(exec);
  for (size_t i = 0; i < e->graph->nodes.size(); i++)
    if (e->graph->nodes[i].get() == node) return bind_node(p, &e->nodes[i]);
  return INVALID_VALUE;
}
int cuGraphLaunch(void* exec, void*) {
  for (const Bound& b : static_cast<FakeExec*>(exec)->nodes) b();
  return OK;
}
int cuGraphExecDestroy(void* exec) {
  delete static_cast<FakeExec*>(exec);
  return OK;
}
int cuGraphDestroy(void* graph) {
  delete static_cast<FakeGraph*>(graph);
  return OK;
}
// Events: the host clock when recorded (kernels run synchronously here, so the time between two
// events is the emulation's time for the launches between them). Never recorded: an error.
struct FakeEvent {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};
int cuEventCreate(void** event, unsigned) {
  *event = new FakeEvent();
  return OK;
}
int cuEventRecord(void* event, void*) {
  auto* e = static_cast<FakeEvent*>(event);
  e->recorded = true;
  e->at = std::chrono::steady_clock::now();
  return OK;
}
int cuEventSynchronize(void*) { return OK; }
int cuEventElapsedTime_v2(float* ms, void* start, void* end) {
  auto* a = static_cast<FakeEvent*>(start);
  auto* b = static_cast<FakeEvent*>(end);
  if (!a->recorded || !b->recorded) return 600;  // CUDA_ERROR_NOT_READY
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return OK;
}
int cuEventDestroy_v2(void* event) {
  delete static_cast<FakeEvent*>(event);
  return OK;
}
// Device memory: each allocation 256-byte aligned as cudaMalloc's, its size rounded up to 256
// bytes, ending at an inaccessible page, so a kernel that reads or writes past it (a fault on a
// device once past the allocation's granularity) stops the run with SIGSEGV in that kernel. The
// bytes in use are counted so that cuMemGetInfo's free memory shrinks as a real device's does.
struct Allocation {
  size_t bytes;
  void* mapping;
  size_t mapped;
};
static std::mutex allocations_lock;
static std::unordered_map<CUdeviceptr, Allocation> allocations;
static size_t allocated = 0;

int cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
  if (bytes == 0) return INVALID_VALUE;  // as the driver
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t rounded = (bytes + 255) & ~(size_t)255;
  size_t span = (rounded + page - 1) / page * page;
  void* mapping = mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
  if (mapping == MAP_FAILED) return 2;  // CUDA_ERROR_OUT_OF_MEMORY
  if (mprotect(static_cast<char*>(mapping) + span, page, PROT_NONE) != 0) {
    munmap(mapping, span + page);
    return 2;
  }
  char* m = static_cast<char*>(mapping) + span - rounded;
  std::memset(m, 0xFF, rounded);  // garbage, as device memory is: NaN as floats and halves
  *p = (CUdeviceptr)m;
  std::lock_guard<std::mutex> g(allocations_lock);
  allocations[*p] = {bytes, mapping, span + page};
  allocated += bytes;
  return OK;
}
int cuMemFree_v2(CUdeviceptr p) {
  Allocation a;
  {
    std::lock_guard<std::mutex> g(allocations_lock);
    auto it = allocations.find(p);
    if (it == allocations.end()) return INVALID_VALUE;  // not an allocation's start
    a = it->second;
    allocated -= a.bytes;
    allocations.erase(it);
  }
  munmap(a.mapping, a.mapped);
  return OK;
}
int cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
  std::memcpy((void*)dst, src, n);
  return OK;
}
int cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
  std::memcpy(dst, (const void*)src, n);
  return OK;
}
int cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  std::memmove((void*)dst, (const void*)src, n);
  return OK;
}
int cuMemsetD32_v2(CUdeviceptr p, unsigned v, size_t n) {
  for (size_t i = 0; i < n; i++) ((unsigned*)p)[i] = v;
  return OK;
}
// A 16 GiB device with 12 GiB free, whatever was allocated (sizes KV caches in the Java tests).
int cuMemGetInfo_v2(size_t* free, size_t* total) {
  std::lock_guard<std::mutex> g(allocations_lock);
  size_t available = (size_t)12 << 30;  // a 16 GiB device with 4 GiB taken by others
  *free = allocated < available ? available - allocated : 0;
  *total = (size_t)16 << 30;
  return OK;
}
int cuGetErrorName(int status, const char** s) {
  *s = status == INVALID_VALUE             ? "CUDA_ERROR_INVALID_VALUE"
       : status == NOT_FOUND               ? "CUDA_ERROR_NOT_FOUND"
       : status == LAUNCH_OUT_OF_RESOURCES ? "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"
                                           : "CUDA_ERROR_FAKE_DRIVER";
  return OK;
}
int cuGetErrorString(int, const char** s) { *s = "error in the fake driver"; return OK; }
}
