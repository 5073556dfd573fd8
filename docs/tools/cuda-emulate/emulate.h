// A CPU emulation of the CUDA features longctx.cu uses, to check the kernels' logic on a machine
// without a GPU. The threads of a block run as coroutines (ucontext) on one OS thread, switching
// only at barriers: __syncthreads waits for the whole block, a warp shuffle for its 32 lanes.
// Deterministic and blind to GPU-only faults (memory model, races, resource limits): it proves
// the algorithms and the indexing, not the device. Used by main.cpp and fake_driver.cpp.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#define LONGCTX_EMULATE 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(threads)

struct float4 {
  float x, y, z, w;
};
struct uint4 {
  unsigned x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct uint2 {
  unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }

struct dim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace emu {

struct Barrier {
  unsigned count = 0, arrived = 0, generation = 0;
};

struct Thread {
  ucontext_t context;
  std::vector<char> stack;
  bool done = false;
};

inline dim3 current_thread, current_block;
inline std::vector<Thread> threads;
inline ucontext_t scheduler;
inline unsigned running = 0;
inline Barrier block_barrier;
inline std::vector<Barrier> warp_barriers;
inline float warp_exchange[32][32];
inline void (*body)() = nullptr;

inline void yield() { swapcontext(&threads[running].context, &scheduler); }

inline void arrive(Barrier& b) {
  unsigned generation = b.generation;
  if (++b.arrived == b.count) {
    b.arrived = 0;
    b.generation++;
    return;
  }
  while (b.generation == generation) yield();
}

inline void entry() {
  body();
  threads[running].done = true;
  swapcontext(&threads[running].context, &scheduler);
}

}  // namespace emu

#define threadIdx (emu::current_thread)
#define blockIdx (emu::current_block)
inline dim3 blockDim, gridDim;

inline void __syncthreads() { emu::arrive(emu::block_barrier); }

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  emu::warp_exchange[warp][lane] = v;
  emu::arrive(emu::warp_barriers[warp]);
  float r = emu::warp_exchange[warp][lane ^ lane_mask];
  emu::arrive(emu::warp_barriers[warp]);
  return r;
}

// v of lane − delta (own v for the first delta lanes), like __shfl_up_sync.
inline int __shfl_up_sync(unsigned, int v, int delta) {
  static int exchange[32][32];
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  exchange[warp][lane] = v;
  emu::arrive(emu::warp_barriers[warp]);
  int r = (int)lane >= delta ? exchange[warp][lane - delta] : v;
  emu::arrive(emu::warp_barriers[warp]);
  return r;
}

inline void __syncwarp() { emu::arrive(emu::warp_barriers[threadIdx.x / 32]); }

// Lanes (of the whole warp, which must all call it) holding the same value as this lane.
inline unsigned __match_any_sync(unsigned, int v) {
  static int exchange[32][32];
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  exchange[warp][lane] = v;
  emu::arrive(emu::warp_barriers[warp]);
  unsigned peers = 0;
  unsigned width = emu::warp_barriers[warp].count;
  for (unsigned l = 0; l < width; l++)
    if (exchange[warp][l] == v) peers |= 1u << l;
  emu::arrive(emu::warp_barriers[warp]);
  return peers;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }

inline int atomicAdd(int* p, int v) {
  int old = *p;
  *p += v;
  return old;
}
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline void sincos(double a, double* s, double* c) { *s = std::sin(a); *c = std::cos(a); }
template <typename T>
inline T min(T a, T b) { return a < b ? a : b; }

inline float emulated_half_to_float(unsigned short h) {
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return (float)x;
}
inline unsigned short emulated_float_to_half(float f) {
  _Float16 x = (_Float16)f;
  unsigned short h;
  std::memcpy(&h, &x, 2);
  return h;
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 over the warp: every lane hands in its
// fragments (layouts as in longctx.cu's mma16816), the product is formed from all of them, and
// each lane takes its four accumulators back.
inline void emulated_mma16816(float* d, const unsigned* a, const unsigned* b) {
  static unsigned fa[32][32][4], fb[32][32][2];
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = 0; i < 4; i++) fa[warp][lane][i] = a[i];
  for (int i = 0; i < 2; i++) fb[warp][lane][i] = b[i];
  emu::arrive(emu::warp_barriers[warp]);
  auto element = [](unsigned word, int k) {
    return emulated_half_to_float((unsigned short)(word >> (16 * (k & 1))));
  };
  auto A = [&](int row, int k) {
    unsigned l = (row % 8) * 4 + (k % 8) / 2;
    int reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return element(fa[warp][l][reg], k);
  };
  auto B = [&](int k, int col) {
    unsigned l = col * 4 + (k % 8) / 2;
    return element(fb[warp][l][k >= 8 ? 1 : 0], k);
  };
  int g = lane / 4, c = (lane % 4) * 2;
  float result[4];
  for (int i = 0; i < 4; i++) {
    int row = g + (i >= 2 ? 8 : 0), col = c + (i & 1);
    float sum = d[i];
    for (int k = 0; k < 16; k++) sum += A(row, k) * B(k, col);
    result[i] = sum;
  }
  emu::arrive(emu::warp_barriers[warp]);
  for (int i = 0; i < 4; i++) d[i] = result[i];
}

namespace emu {

// Runs `run` (the kernel call) on a gridX × gridY grid of blocks of `block` threads.
template <typename F>
void run_grid(unsigned gridX, unsigned gridY, unsigned block, F run) {
  static F* callable;
  callable = &run;
  body = [] { (*callable)(); };
  gridDim = {gridX, gridY, 1};
  blockDim = {block, 1, 1};
  if (threads.size() < block) threads.resize(block);
  for (unsigned by = 0; by < gridY; by++) {
    for (unsigned bx = 0; bx < gridX; bx++) {
      block_barrier = {block, 0, 0};
      warp_barriers.assign((block + 31) / 32, Barrier{});
      for (unsigned w = 0; w < warp_barriers.size(); w++)
        warp_barriers[w].count = block - w * 32 < 32 ? block - w * 32 : 32;
      for (unsigned t = 0; t < block; t++) {
        Thread& th = threads[t];
        th.stack.resize(256 * 1024);
        th.done = false;
        getcontext(&th.context);
        th.context.uc_stack.ss_sp = th.stack.data();
        th.context.uc_stack.ss_size = th.stack.size();
        th.context.uc_link = nullptr;
        makecontext(&th.context, entry, 0);
      }
      for (bool busy = true; busy;) {
        busy = false;
        for (unsigned t = 0; t < block; t++) {
          if (threads[t].done) continue;
          busy = true;
          running = t;
          current_thread = {t, 0, 0};
          current_block = {bx, by, 0};
          swapcontext(&scheduler, &threads[t].context);
        }
      }
    }
  }
}

}  // namespace emu

// Runs kernel(args...) on the grid, as a <<<dim3(gridX, gridY), block>>> launch would.
template <typename... P, typename... A>
void launch(void (*kernel)(P...), unsigned gridX, unsigned gridY, unsigned block, A... args) {
  emu::run_grid(gridX, gridY, block, [=] { kernel(args...); });
}
