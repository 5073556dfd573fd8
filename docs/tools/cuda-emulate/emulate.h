// A CPU emulation of the CUDA features longctx.cu uses, to check the kernels' logic on a machine
// without a GPU: each block runs as blockDim host threads with real barriers for __syncthreads
// and per-warp barriers for the shuffles. Slow, and blind to GPU-only faults (memory model, timing,
// resource limits): it proves the algorithms and indexing, not the device. See run.sh.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define LONGCTX_EMULATE 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
  unsigned x = 0, y = 0, z = 0;
};
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

static std::barrier<>* block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
static float warp_exchange[32][32];

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  warp_exchange[warp][lane] = v;
  warp_barriers[warp]->arrive_and_wait();
  float r = warp_exchange[warp][lane ^ lane_mask];
  warp_barriers[warp]->arrive_and_wait();
  return r;
}

inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
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

// Runs kernel(args...) on a gridX × gridY grid of blocks of `block` threads, one block at a time.
template <typename... P, typename... A>
void launch(void (*kernel)(P...), unsigned gridX, unsigned gridY, unsigned block, A... args) {
  gridDim = {gridX, gridY, 1};
  blockDim = {block, 1, 1};
  for (unsigned by = 0; by < gridY; by++) {
    for (unsigned bx = 0; bx < gridX; bx++) {
      std::barrier<> barrier(block);
      block_barrier = &barrier;
      warp_barriers.clear();
      for (unsigned w = 0; w < (block + 31) / 32; w++)
        warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, block - w * 32)));
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < block; t++) {
        threads.emplace_back([=] {
          threadIdx = {t, 0, 0};
          blockIdx = {bx, by, 0};
          kernel(args...);
        });
      }
      for (auto& th : threads) th.join();
    }
  }
}
