// A CPU emulation of the CUDA features longctx.cu uses, to check the kernels' logic on a machine
// without a GPU. The threads of a block run as coroutines on one OS thread, each on its own
// stack, switching only at barriers: __syncthreads waits for the whole block, a warp shuffle for
// its 32 lanes. A thread that must wait hands over directly to the next thread, in round-robin
// order, that can go on (pass_on). On x86-64 the switch is a few instructions that swap the
// callee-saved registers and the stack pointer (switch_stack); elsewhere, or with CET shadow
// stacks on, it is ucontext's swapcontext.
// Deterministic and blind to GPU-only faults (memory model, resource limits): it proves the
// algorithms and the indexing, not the device. A race between threads of a block (a shared-memory
// read not ordered after the write by a barrier) shows only as a dependence on the order the
// threads run in between barriers: LONGCTX_EMULATE_REVERSE=1 runs them (and a grid's blocks) in
// descending order instead of ascending, so a kernel whose results differ between the two orders
// has a race.
// Used by main.cpp and fake_driver.cpp.
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#define LONGCTX_EMULATE 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)

// Aligned as CUDA's vector types are (16 and 8 bytes): a load through a misaligned pointer, which
// faults on the device, is then undefined behaviour that -fsanitize=alignment reports here.
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct alignas(8) uint2 {
  unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

struct dim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace emu {

struct Barrier {
  unsigned count = 0, arrived = 0, generation = 0;
};

// Where a suspended thread (or the launch that runs the block) resumes.
struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;  // its stack pointer; its callee-saved registers lie below the resume address
#endif
  std::unique_ptr<ucontext_t> uc;  // for the ucontext path (out of line: the threads stay small)
};

#if defined(__x86_64__)
// Saves the callee-saved registers (System V: rbx, rbp, r12–r15) on the running stack and the
// stack pointer in *from, then loads the stack pointer `to` and pops the registers and the resume
// address that a previous call (or start_context) left there. The caller-saved registers are
// free across a call anyway; the MXCSR and x87 control words are not switched, since every
// coroutine runs on the one OS thread and no kernel changes them. noipa keeps the compiler from
// assuming anything about the call (it saves what it needs around it as around any external
// call); hidden keeps the call direct in the shared fake driver.
__attribute__((naked, noipa, visibility("hidden"))) inline void switch_stack(void** /*from*/,
                                                                            void* /*to*/) {
  asm("pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret");
}

// With CET shadow stacks on, switch_stack's ret to another stack's address would fault: rdsspq
// reads the shadow stack pointer (and is a no-op, leaving 0, where shadow stacks are off or
// unsupported). Then the ucontext path, which glibc makes shadow-stack aware, runs instead.
inline bool shadow_stack_active() {
  unsigned long long ssp = 0;
  asm volatile("rdsspq %0" : "+r"(ssp));
  return ssp != 0;
}
inline const bool use_ucontext = shadow_stack_active();
#endif

inline void switch_context(Context& from, Context& to) {
#if defined(__x86_64__)
  if (!use_ucontext) {
    switch_stack(&from.sp, to.sp);
    return;
  }
#endif
  if (!from.uc) from.uc.reset(new ucontext_t());
  swapcontext(from.uc.get(), to.uc.get());
}

// Makes `c` start `start` (which must never return) on the `size` bytes at `stack`.
inline void start_context(Context& c, char* stack, size_t size, void (*start)()) {
#if defined(__x86_64__)
  if (!use_ucontext) {
    void** sp = (void**)((uintptr_t)(stack + size) & ~(uintptr_t)15);
    *--sp = nullptr;       // start's return address: it never returns
    *--sp = (void*)start;  // switch_stack's ret goes there, leaving sp ≡ 8 (mod 16) like a call
    for (int i = 0; i < 6; i++) *--sp = nullptr;  // rbp, rbx, r12–r15
    c.sp = sp;
    return;
  }
#endif
  if (!c.uc) c.uc.reset(new ucontext_t());
  getcontext(c.uc.get());
  c.uc->uc_stack.ss_sp = stack;
  c.uc->uc_stack.ss_size = size;
  c.uc->uc_link = nullptr;
  makecontext(c.uc.get(), start, 0);
}

// A cp.async copy of 16 bytes not yet made (valid = false: zero fill, nothing read).
struct AsyncCopy {
  void* dst;
  const void* src;
  bool valid;
};

struct Thread {
  Context context;
  std::vector<AsyncCopy> copies;  // its cp.async copies, made at its next wait
  std::unique_ptr<char[]> stack;  // allocated once, never cleared: only the pages used get touched
  const Barrier* waiting = nullptr;  // the barrier it waits at (null: runnable unless done)
  unsigned generation = 0;           // that barrier's generation when it arrived
  bool done = false;
};

constexpr size_t stack_size = 256 * 1024;

inline dim3 current_thread, current_block;
inline std::vector<Thread> threads;
inline Context scheduler;
inline unsigned running = 0, block_size = 0, unfinished = 0;
inline Barrier block_barrier;
inline std::vector<Barrier> warp_barriers;
inline float warp_exchange[32][32];
inline void (*body)() = nullptr;
inline const bool reverse_order = [] {
  const char* v = std::getenv("LONGCTX_EMULATE_REVERSE");
  return v != nullptr && v[0] == '1';
}();

// Hands the OS thread from the running thread (waiting at a barrier, or done) to the next one that
// can go on, in round-robin order: threads running + 1, ..., block − 1, 0, ... (descending with
// reverse_order), skipping those done and those whose barrier has not opened yet. That is the
// order in which a scheduler loop resuming every unfinished thread in turn would see them progress
// (a thread resumed at a closed barrier would only yield again), without that loop and its two
// switches per step. Returns in the running thread when it is resumed; when the block's last
// thread is done, goes back to the launch.
inline void pass_on() {
  Thread& self = threads[running];
  if (unfinished == 0) {
    switch_context(self.context, scheduler);
    return;
  }
  unsigned t = running;
  for (;;) {
    if (reverse_order)
      t = (t == 0 ? block_size : t) - 1;
    else if (++t == block_size)
      t = 0;
    Thread& th = threads[t];
    if (!th.done && (th.waiting == nullptr || th.waiting->generation != th.generation)) break;
    if (t == running) {
      std::fprintf(stderr, "emulate: deadlock: the block's unfinished threads all wait\n");
      std::abort();
    }
  }
  running = t;
  current_thread = {t, 0, 0};
  switch_context(self.context, threads[t].context);
}

inline void arrive(Barrier& b) {
  if (++b.arrived == b.count) {
    b.arrived = 0;
    b.generation++;
    return;
  }
  Thread& self = threads[running];
  self.waiting = &b;
  self.generation = b.generation;
  pass_on();
  self.waiting = nullptr;
}

[[noreturn]] inline void entry() {
  body();
  if (!threads[running].copies.empty()) {
    std::fprintf(stderr, "emulate: thread %u ended with cp.async copies not waited for\n", running);
    std::abort();
  }
  threads[running].done = true;
  unfinished--;
  pass_on();
  std::abort();  // never resumed
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
// Lanes (of the whole warp, which must all call it) whose predicate is true.
inline unsigned __ballot_sync(unsigned, int predicate) {
  static int exchange[32][32];
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  exchange[warp][lane] = predicate != 0;
  emu::arrive(emu::warp_barriers[warp]);
  unsigned votes = 0;
  unsigned width = emu::warp_barriers[warp].count;
  for (unsigned l = 0; l < width; l++)
    if (exchange[warp][l]) votes |= 1u << l;
  emu::arrive(emu::warp_barriers[warp]);
  return votes;
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
template <typename T>
inline T max(T a, T b) { return a < b ? b : a; }

// The conversion is exact; a table of _Float16's own results (filled once) replaces the soft-float
// library call (no F16C without -mf16c), which otherwise takes most of the emulation's time.
inline float emulated_half_to_float(unsigned short h) {
  struct Table {
    float f[65536];
    Table() {
      for (unsigned i = 0; i < 65536; i++) {
        unsigned short bits = (unsigned short)i;
        _Float16 x;
        std::memcpy(&x, &bits, 2);
        f[i] = (float)x;
      }
    }
  };
  static const Table table;
  return table.f[h];
}
inline unsigned short emulated_float_to_half(float f) {
  _Float16 x = (_Float16)f;
  unsigned short h;
  std::memcpy(&h, &x, 2);
  return h;
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 over the warp: every lane hands in its
// fragments (layouts as in longctx.cu's mma16816), the product is formed from all of them, and
// each lane takes its four accumulators back. Each lane hands in its halves already widened to
// float (exactly), so none is converted more than once.
inline void emulated_mma16816(float* d, const unsigned* a, const unsigned* b) {
  static float fa[32][32][8], fb[32][32][4];  // [warp][lane][register * 2 + half]
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = 0; i < 8; i++)
    fa[warp][lane][i] = emulated_half_to_float((unsigned short)(a[i / 2] >> (16 * (i & 1))));
  for (int i = 0; i < 4; i++)
    fb[warp][lane][i] = emulated_half_to_float((unsigned short)(b[i / 2] >> (16 * (i & 1))));
  emu::arrive(emu::warp_barriers[warp]);
  auto A = [&](int row, int k) {
    unsigned l = (row % 8) * 4 + (k % 8) / 2;
    int reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return fa[warp][l][reg * 2 + (k & 1)];
  };
  auto B = [&](int k, int col) {
    unsigned l = col * 4 + (k % 8) / 2;
    return fb[warp][l][(k >= 8 ? 1 : 0) * 2 + (k & 1)];
  };
  // Accumulator i is row g (+ 8 for i >= 2), column c (+ 1 for odd i); each sums its 16 products
  // in k order, the four sums interleaved.
  int g = lane / 4, c = (lane % 4) * 2;
  float rows[2][16], cols[2][16];
  for (int k = 0; k < 16; k++) {
    for (int h = 0; h < 2; h++) {
      rows[h][k] = A(g + 8 * h, k);
      cols[h][k] = B(k, c + h);
    }
  }
  float result[4] = {d[0], d[1], d[2], d[3]};
  for (int k = 0; k < 16; k++)
    for (int i = 0; i < 4; i++) result[i] += rows[i >> 1][k] * cols[i & 1][k];
  emu::arrive(emu::warp_barriers[warp]);
  for (int i = 0; i < 4; i++) d[i] = result[i];
}

// cp.async.cg.shared.global of 16 bytes. The copy is made only at the thread's next
// emulated_cp_async_wait_all, as late as the device may make it: a tile read before the wait, or
// overwritten while another warp still reads it (a missing barrier), then gives wrong results.
inline void emulated_cp_async16(void* dst, const void* src, bool valid) {
  // The device requires both addresses 16-byte aligned, zero-filled (!valid) copies too; a
  // misaligned one faults there and would pass silently here.
  if ((reinterpret_cast<std::uintptr_t>(dst) | reinterpret_cast<std::uintptr_t>(src)) & 15) {
    std::fprintf(stderr, "emulate: cp.async with a misaligned address (dst %p, src %p)\n", dst, src);
    std::abort();
  }
  emu::threads[emu::running].copies.push_back({dst, src, valid});
}

// cp.async.wait_group 0: every copy this thread issued is made.
inline void emulated_cp_async_wait_all() {
  for (const emu::AsyncCopy& c : emu::threads[emu::running].copies) {
    if (c.valid)
      std::memcpy(c.dst, c.src, 16);
    else
      std::memset(c.dst, 0, 16);
  }
  emu::threads[emu::running].copies.clear();
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16 over the warp: lane 8m + i hands in the address
// of row i of 8×8 matrix m; lane l receives in r[m] the two halves of matrix m at row l/4, columns
// 2(l%4) and 2(l%4) + 1, or with trans those at column l/4, rows 2(l%4) and 2(l%4) + 1.
inline void emulated_ldmatrix_x4(unsigned* r, const unsigned short* row, bool trans) {
  static const unsigned short* rows[32][32];  // [warp][lane]
  unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (reinterpret_cast<std::uintptr_t>(row) & 15) {  // each row's 16 bytes aligned on the device
    std::fprintf(stderr, "emulate: ldmatrix row address %p is not 16-byte aligned\n", (void*)row);
    std::abort();
  }
  rows[warp][lane] = row;
  emu::arrive(emu::warp_barriers[warp]);
  for (int m = 0; m < 4; m++) {
    if (trans) {
      const unsigned short* lo = rows[warp][8 * m + 2 * (lane % 4)];
      const unsigned short* hi = rows[warp][8 * m + 2 * (lane % 4) + 1];
      r[m] = lo[lane / 4] | (unsigned)hi[lane / 4] << 16;
    } else {
      const unsigned short* p = rows[warp][8 * m + lane / 4] + 2 * (lane % 4);
      r[m] = p[0] | (unsigned)p[1] << 16;
    }
  }
  emu::arrive(emu::warp_barriers[warp]);
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
  for (unsigned t = 0; t < block; t++)
    if (!threads[t].stack) threads[t].stack.reset(new char[stack_size]);
  block_size = block;
  warp_barriers.assign((block + 31) / 32, Barrier{});
  // blocks one after another, in descending order too with reverse_order (two blocks writing one
  // element, or one reading what another writes, would then show)
  for (unsigned long long b = 0, blocks = (unsigned long long)gridX * gridY; b < blocks; b++) {
    unsigned long long at = reverse_order ? blocks - 1 - b : b;
    unsigned by = (unsigned)(at / gridX), bx = (unsigned)(at % gridX);
    block_barrier = {block, 0, 0};
    for (unsigned w = 0; w < warp_barriers.size(); w++)
      warp_barriers[w] = {block - w * 32 < 32 ? block - w * 32 : 32, 0, 0};
    for (unsigned t = 0; t < block; t++) {
      Thread& th = threads[t];
      th.done = false;
      th.waiting = nullptr;
      th.copies.clear();
      start_context(th.context, th.stack.get(), stack_size, entry);
    }
    unfinished = block;
    running = reverse_order ? block - 1 : 0;
    current_thread = {running, 0, 0};
    current_block = {bx, by, 0};
    switch_context(scheduler, threads[running].context);
  }
}

}  // namespace emu

// Runs kernel(args...) on the grid, as a <<<dim3(gridX, gridY), block>>> launch would.
template <typename... P, typename... A>
void launch(void (*kernel)(P...), unsigned gridX, unsigned gridY, unsigned block, A... args) {
  emu::run_grid(gridX, gridY, block, [=] { kernel(args...); });
}
