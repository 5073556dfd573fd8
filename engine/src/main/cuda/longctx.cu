// The CUDA kernels of the engine's GPU backend (dev.longctx.engine.cuda).
//
// Compiled to PTX for sm_80 and sm_90 by nvcc at build time when nvcc is present (engine/pom.xml,
// profile "nvcc"), otherwise by NVRTC at run time from this same file, shipped as a resource. So the
// file must compile under both: no host code, no includes, every kernel extern "C" (unmangled names
// for cuModuleGetFunction).
//
// Conventions: activations are float32, row-major; weights keep their GGUF layout (ggml type ids:
// F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30); a KV cache layer is a table of page addresses,
// page p holding positions [p·pageSize, (p+1)·pageSize) as [pageSize][kvDim] floats (DESIGN.md §2).
// The math of every kernel is that of the CPU kernel named in its comment; the cross-backend tests
// (CudaOpsTest) hold them equal.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define TYPE_F32 0
#define TYPE_F16 1
#define TYPE_Q4_0 2
#define TYPE_Q8_0 8
#define TYPE_BF16 30

#define NEG_INF (-__int_as_float(0x7f800000))

#ifdef LONGCTX_EMULATE
// The CPU emulation of docs/tools/cuda-emulate (no GPU needed) has no PTX asm.
__device__ __forceinline__ float half_to_float(u16 h) { return emulated_half_to_float(h); }
__device__ __forceinline__ u16 float_to_half(float f) { return emulated_float_to_half(f); }
#else
__device__ __forceinline__ float half_to_float(u16 h) {
  float f;
  asm("{ .reg .b16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ u16 float_to_half(float f) {
  u16 h;
  asm("{ .reg .b16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(h) : "f"(f));
  return h;
}
#endif

__device__ __forceinline__ float bf16_to_float(u16 b) { return __int_as_float(((u32)b) << 16); }

__device__ __forceinline__ u16 float_to_bf16(float f) {
  // Round to nearest even; NaN stays NaN (quiet bit set).
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40);
  return (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

__device__ float block_max(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < (int)(blockDim.x >> 5) ? partial[lane] : NEG_INF;
    s = warp_max(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// ---- weights in GGUF layout ----------------------------------------------------------------

// Element `col` of row `row` of a [rows, cols] weight of ggml type `type` (cols a multiple of 32 for
// the block types). Q8_0 block: f16 d, 32 × int8 (34 bytes); Q4_0 block: f16 d, 16 bytes, element i
// is the low nibble of byte i (i < 16) or the high nibble of byte i − 16, value d·(q − 8).
__device__ __forceinline__ float weight_at(const u8* w, int type, long long row, int cols, int col) {
  long long index = row * cols + col;
  switch (type) {
    case TYPE_F32:
      return ((const float*)w)[index];
    case TYPE_F16:
      return half_to_float(((const u16*)w)[index]);
    case TYPE_BF16:
      return bf16_to_float(((const u16*)w)[index]);
    case TYPE_Q8_0: {
      const u8* b = w + (index >> 5) * 34;
      float d = half_to_float((u16)(b[0] | (b[1] << 8)));
      return d * (float)(signed char)b[2 + (index & 31)];
    }
    case TYPE_Q4_0: {
      const u8* b = w + (index >> 5) * 18;
      float d = half_to_float((u16)(b[0] | (b[1] << 8)));
      int i = (int)(index & 31);
      int q = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
      return d * (float)(q - 8);
    }
  }
  return __int_as_float(0x7fc00000);  // unknown type: NaN, caught by the tests' poisoning
}

// Dot product of row `row` of a block-quantized or float weight with x[0, cols), by one warp.
__device__ float warp_row_dot(const u8* w, int type, long long row, int cols, const float* x) {
  int lane = threadIdx.x & 31;
  float acc = 0.f;
  if (type == TYPE_Q8_0) {
    const u8* base = w + row * (cols / 32) * 34;
    // Lane l reads byte l of each 32-element block: the warp reads a block's quants coalesced.
    for (int blk = 0; blk < cols / 32; blk++) {
      const u8* b = base + blk * 34;
      float d = half_to_float((u16)(b[0] | (b[1] << 8)));
      acc += d * (float)(signed char)b[2 + lane] * x[blk * 32 + lane];
    }
  } else if (type == TYPE_Q4_0) {
    const u8* base = w + row * (cols / 32) * 18;
    for (int blk = 0; blk < cols / 32; blk++) {
      const u8* b = base + blk * 18;
      float d = half_to_float((u16)(b[0] | (b[1] << 8)));
      int q = lane < 16 ? (b[2 + lane] & 15) : (b[2 + lane - 16] >> 4);
      acc += d * (float)(q - 8) * x[blk * 32 + lane];
    }
  } else if (type == TYPE_F16) {
    const u16* r = (const u16*)w + row * cols;
    for (int c = lane; c < cols; c += 32) acc += half_to_float(r[c]) * x[c];
  } else if (type == TYPE_BF16) {
    const u16* r = (const u16*)w + row * cols;
    for (int c = lane; c < cols; c += 32) acc += bf16_to_float(r[c]) * x[c];
  } else if (type == TYPE_F32) {
    const float* r = (const float*)w + row * cols;
    for (int c = lane; c < cols; c += 32) acc += r[c] * x[c];
  } else {
    acc = __int_as_float(0x7fc00000);
  }
  return warp_sum(acc);
}

// y[t, r] = Σ_c W[r, c] · x[t, c] for r < rows, t < n (FloatTensor.matmul). One warp per output
// row; grid (ceil(rows / warpsPerBlock), n). The decode path (n = 1) is bandwidth bound: each weight
// byte is read once.
extern "C" __global__ void matvec(const u8* w, int type, const float* x, float* y, int rows,
                                  int cols, int n) {
  int warpsPerBlock = blockDim.x >> 5;
  int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
  int t = blockIdx.y;
  if (row >= rows || t >= n) return;
  float v = warp_row_dot(w, type, row, cols, x + (long long)t * cols);
  if ((threadIdx.x & 31) == 0) y[(long long)t * rows + row] = v;
}

// out[t, :] = dequantized row tokens[t] of the embedding table (TransformerLayers.embed). The
// caller validates token ids on the host. Grid n, block any.
extern "C" __global__ void embed_rows(const u8* table, int type, const int* tokens, float* out,
                                      int dim) {
  int t = blockIdx.x;
  long long row = tokens[t];
  for (int c = threadIdx.x; c < dim; c += blockDim.x)
    out[(long long)t * dim + c] = weight_at(table, type, row, dim, c);
}

// out[rows, cols] in FP16 (half = 1) or BF16 (half = 0) ← the dequantized weight, for the cuBLAS
// prefill GEMM. Grid-stride over all elements.
extern "C" __global__ void dequantize_to_half(const u8* w, int type, u16* out, int rows, int cols,
                                              int fp16) {
  long long total = (long long)rows * cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    float v = weight_at(w, type, i / cols, cols, (int)(i % cols));
    out[i] = fp16 ? float_to_half(v) : float_to_bf16(v);
  }
}

// out[i] ← x[i] in FP16 (fp16 = 1) or BF16 (fp16 = 0).
extern "C" __global__ void float_to_half_kernel(const float* x, u16* out, long long n, int fp16) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    out[i] = fp16 ? float_to_half(x[i]) : float_to_bf16(x[i]);
}

// ---- elementwise and row ops ----------------------------------------------------------------

// out[t, i] = x[t, i] / sqrt(mean(x[t]²) + eps) · weight[i] (Ops.rmsnorm). Grid n rows.
extern "C" __global__ void rmsnorm_rows(float* out, const float* x, const float* weight, int dim,
                                        float eps) {
  const float* xr = x + (long long)blockIdx.x * dim;
  float* outr = out + (long long)blockIdx.x * dim;
  float ss = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss);
  float scale = (float)(1.0 / sqrt((double)ss / dim + (double)eps));
  for (int i = threadIdx.x; i < dim; i += blockDim.x) outr[i] = xr[i] * scale * weight[i];
}

// gate[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + exp(−x)) (Ops.swiglu).
extern "C" __global__ void swiglu(float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float g = gate[i];
    gate[i] = g / (1.f + expf(-g)) * up[i];
  }
}

// dst[i] += src[i] (Ops.add: the residual).
extern "C" __global__ void add_inplace(float* dst, const float* src, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    dst[i] += src[i];
}

// y[t, i] += bias[i] for t < n (Qwen2's QKV biases). Grid-stride over n·width.
extern "C" __global__ void add_bias_rows(float* y, const float* bias, int width, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x)
    y[i] += bias[i % width];
}

// Rotary embedding (Rope.apply) of row t's nHeads heads (at x + t·rowStride) to position
// positions[t]: pairs (2i, 2i+1) when interleaved, (i, i + d/2) otherwise. Angles pos·invFreq[i]
// and their cos/sin are formed in double, as the CPU does, so they stay exact at positions in the
// millions; any position per row, so SelfExtend's grouped positions use the same kernel. Grid n.
extern "C" __global__ void rope_rows(float* x, const int* positions, const double* invFreq,
                                     int nHeads, int headDim, int rowStride, int interleaved) {
  int t = blockIdx.x;
  int half = headDim / 2;
  double pos = (double)positions[t];
  float* row = x + (long long)t * rowStride;
  for (int j = threadIdx.x; j < nHeads * half; j += blockDim.x) {
    int h = j / half, i = j % half;
    double s, c;
    sincos(pos * invFreq[i], &s, &c);
    float cf = (float)c, sf = (float)s;
    float* head = row + h * headDim;
    int a = interleaved ? 2 * i : i;
    int b = interleaved ? 2 * i + 1 : i + half;
    float x0 = head[a], x1 = head[b];
    head[a] = x0 * cf - x1 * sf;
    head[b] = x0 * sf + x1 * cf;
  }
}

// Writes rows [0, n) of src ([n, kvDim]) at positions [start, start + n) of a paged cache layer.
// Grid-stride over n·kvDim.
extern "C" __global__ void kv_store(const u64* pages, int pageSize, const float* src, int start,
                                    int n, int kvDim) {
  long long total = (long long)n * kvDim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    int t = (int)(i / kvDim), d = (int)(i % kvDim);
    int p = start + t;
    float* page = (float*)pages[p / pageSize];
    page[(long long)(p % pageSize) * kvDim + d] = src[i];
  }
}

// In-place softmax of each row of x[rows, n] (Ops.softmax); an all −∞ row is left as it is.
// Grid rows.
extern "C" __global__ void softmax_rows(float* x, int n) {
  float* r = x + (long long)blockIdx.x * n;
  float m = NEG_INF;
  for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
  m = block_max(m);
  if (m == NEG_INF) return;
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(r[i] - m);
  s = block_sum(s);
  float inv = (float)(1.0 / (double)s);
  for (int i = threadIdx.x; i < n; i += blockDim.x) r[i] = expf(r[i] - m) * inv;
}

// out[row] = the lowest index of the largest element of x[row, 0..n), NaNs ignored, −1 if none
// (Ops.argmax). Grid rows, blockDim a power of two ≤ 1024.
extern "C" __global__ void argmax_rows(const float* x, int n, int* out) {
  __shared__ float bestV[1024];
  __shared__ int bestI[1024];
  const float* r = x + (long long)blockIdx.x * n;
  float v = NEG_INF;
  int idx = -1;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float e = r[i];
    if (e == e && (idx < 0 || e > v)) {
      v = e;
      idx = i;
    }
  }
  bestV[threadIdx.x] = v;
  bestI[threadIdx.x] = idx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      float ov = bestV[threadIdx.x + s];
      int oi = bestI[threadIdx.x + s];
      int mi = bestI[threadIdx.x];
      float mv = bestV[threadIdx.x];
      if (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))) {
        bestV[threadIdx.x] = ov;
        bestI[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = bestI[0];
}

// ---- attention --------------------------------------------------------------------------------

#define ATT_THREADS 128
#define MAX_HEAD_DIM 256

// Attention of query row t, head h over keys of a paged cache layer (Attention.attend /
// attendPositions), flash style: keys are scored a tile of ATT_THREADS at a time (one key per
// thread), the running max and normalizer are updated once per tile and the output accumulator,
// one dimension per thread, is rescaled then. Output normalized; lse[t·heads + h] = ln Σ exp(scale
// · q·k) (ALGORITHMS.md §4.2), −∞ with output 0 for an empty key set.
//
// Keys: when `selected` is null, positions [0, causalStart + t + 1) (causal, dense); else the
// `count` positions selected[t·selStride + (perKvHead ? kvHead·count : 0) + i], −1 entries skipped
// (sparse, TopK.Candidates.padded). GQA: head h reads KV head h / (heads / kvHeads).
// Grid (n, heads), block ATT_THREADS, headDim ≤ MAX_HEAD_DIM.
extern "C" __global__ void attention(const float* q, const u64* kPages, const u64* vPages,
                                     int pageSize, float* out, float* lse, int heads, int kvHeads,
                                     int headDim, float scale, int causalStart,
                                     const int* selected, int count, int selStride,
                                     int perKvHead) {
  __shared__ float qs[MAX_HEAD_DIM];
  __shared__ float p[ATT_THREADS];
  __shared__ int rowsOf[ATT_THREADS];
  int t = blockIdx.x, h = blockIdx.y;
  int kvDim = kvHeads * headDim;
  int kvHead = h / (heads / kvHeads);
  const float* qr = q + ((long long)t * heads + h) * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = qr[d];
  __syncthreads();

  int len = selected == 0 ? causalStart + t + 1 : count;
  const int* sel = selected == 0 ? 0 : selected + (long long)t * selStride + (perKvHead ? kvHead * count : 0);
  float m = NEG_INF;   // running max of the scaled scores
  float l = 0.f;       // running Σ exp(score − m)
  float acc0 = 0.f, acc1 = 0.f;  // output dims threadIdx.x and threadIdx.x + ATT_THREADS
  for (int base = 0; base < len; base += ATT_THREADS) {
    int i = base + threadIdx.x;
    float s = NEG_INF;
    int pos = -1;
    if (i < len) {
      pos = sel == 0 ? i : sel[i];
      if (pos >= 0) {
        const float* k = (const float*)kPages[pos / pageSize] + (long long)(pos % pageSize) * kvDim + kvHead * headDim;
        float dot = 0.f;
        for (int d = 0; d < headDim; d++) dot += qs[d] * k[d];
        s = dot * scale;
      }
    }
    float tileMax = block_max(s);
    float newM = fmaxf(m, tileMax);
    float e = (pos >= 0 && s != NEG_INF) ? expf(s - newM) : 0.f;
    float tileSum = block_sum(e);
    float correction = m == NEG_INF ? 0.f : expf(m - newM);
    p[threadIdx.x] = e;
    rowsOf[threadIdx.x] = pos;
    __syncthreads();
    if (newM != NEG_INF) {
      l = l * correction + tileSum;
      acc0 *= correction;
      acc1 *= correction;
      int tileLen = min(ATT_THREADS, len - base);
      for (int j = 0; j < tileLen; j++) {
        int pj = rowsOf[j];
        if (pj < 0 || p[j] == 0.f) continue;
        const float* v = (const float*)vPages[pj / pageSize] + (long long)(pj % pageSize) * kvDim + kvHead * headDim;
        if (threadIdx.x < headDim) acc0 += p[j] * v[threadIdx.x];
        if (threadIdx.x + ATT_THREADS < headDim) acc1 += p[j] * v[threadIdx.x + ATT_THREADS];
      }
      m = newM;
    }
    __syncthreads();
  }
  float* o = out + ((long long)t * heads + h) * headDim;
  float inv = l > 0.f ? 1.f / l : 0.f;
  if (threadIdx.x < headDim) o[threadIdx.x] = acc0 * inv;
  if (threadIdx.x + ATT_THREADS < headDim) o[threadIdx.x + ATT_THREADS] = acc1 * inv;
  if (lse != 0 && threadIdx.x == 0)
    lse[(long long)t * heads + h] = l > 0.f ? m + logf(l) : NEG_INF;
}

// Lightning-indexer scores (LightningIndexer.score, ALGORITHMS.md §1.2 step 9): scores[t, s] =
// scale · Σ_j w[t, j] · ReLU(q[t, j]·k[s]) for s < len, keys [len, headDim] contiguous, q [n, heads,
// headDim], w [n, heads]. One thread per (t, s); the sum over heads in double, as on the CPU.
// Grid (ceil(len / blockDim), n).
extern "C" __global__ void indexer_scores(const float* q, const float* w, const float* keys,
                                          int len, int heads, int headDim, float scale,
                                          float* scores) {
  int t = blockIdx.y;
  int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= len) return;
  const float* k = keys + (long long)s * headDim;
  const float* qt = q + (long long)t * heads * headDim;
  double sum = 0.0;
  for (int j = 0; j < heads; j++) {
    float u = 0.f;
    for (int d = 0; d < headDim; d++) u += qt[j * headDim + d] * k[d];
    if (u > 0.f) sum += (double)w[(long long)t * heads + j] * u;
  }
  scores[(long long)t * len + s] = (float)(sum * scale);
}

// ---- top-k ----------------------------------------------------------------------------------

// A 64-bit key whose ascending order is ≻ (TopK.ranksAbove: score descending, then position
// ascending). NaN counts as −∞.
__device__ __forceinline__ u64 rank_key(float score, int pos) {
  if (score != score) score = NEG_INF;
  u32 b = __float_as_uint(score);
  u32 ordered = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // ascending with the float
  return ((u64)(~ordered) << 32) | (u32)pos;
}

#define TOPK_THREADS 1024
#define TOPK_MAX 4096

// Per row of scores[rows, n], the top min(k, valid) positions under ≻, best first, −∞ (and NaN)
// scores never selected (TopK.select); outPos[row, k] padded with −1, outScores likewise with −∞.
// Exact and deterministic: the k-th smallest rank key is found bit by bit (radix select, 64 counting
// passes over the row), the keys at or below it are gathered, then sorted in shared memory.
// Grid rows, block TOPK_THREADS, k ≤ TOPK_MAX.
extern "C" __global__ void topk_rows(const float* scores, int n, int k, int* outPos,
                                     float* outScores) {
  __shared__ u64 keys[TOPK_MAX];
  __shared__ int counter;
  __shared__ int countShared;
  const float* r = scores + (long long)blockIdx.x * n;
  const u64 negInfKeyMin = rank_key(NEG_INF, 0);  // every −∞ entry has a key ≥ this

  // valid = #entries with a finite-or-+∞ score
  int localValid = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float s = r[i];
    if (s == s && s != NEG_INF) localValid++;
  }
  if (threadIdx.x == 0) countShared = 0;
  __syncthreads();
  atomicAdd(&countShared, localValid);
  __syncthreads();
  int valid = countShared;
  int take = min(k, valid);

  u64 prefix = 0;
  if (take > 0) {
    int remaining = take;  // rank (1-based) of the wanted key among those matching `prefix`
    for (int bit = 63; bit >= 0; bit--) {
      u64 maskHigh = bit == 63 ? 0ull : (~0ull << (bit + 1));
      int local = 0;
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        u64 key = rank_key(r[i], i);
        if (key < negInfKeyMin && (key & maskHigh) == prefix && ((key >> bit) & 1ull) == 0ull) local++;
      }
      __syncthreads();
      if (threadIdx.x == 0) countShared = 0;
      __syncthreads();
      atomicAdd(&countShared, local);
      __syncthreads();
      int zeros = countShared;
      if (zeros < remaining) {
        prefix |= (1ull << bit);
        remaining -= zeros;
      }
    }
  }
  // prefix is now the take-th smallest valid key: gather every valid key ≤ it (exactly take).
  if (threadIdx.x == 0) counter = 0;
  __syncthreads();
  if (take > 0) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      u64 key = rank_key(r[i], i);
      if (key < negInfKeyMin && key <= prefix) {
        int slot = atomicAdd(&counter, 1);
        if (slot < TOPK_MAX) keys[slot] = key;
      }
    }
  }
  __syncthreads();
  int size = 1;
  while (size < take) size <<= 1;
  for (int i = take + threadIdx.x; i < size; i += blockDim.x) keys[i] = ~0ull;
  __syncthreads();
  // Bitonic sort of keys[0, size) ascending.
  for (int kk = 2; kk <= size; kk <<= 1) {
    for (int j = kk >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += blockDim.x) {
        int ixj = i ^ j;
        if (ixj > i) {
          u64 a = keys[i], b = keys[ixj];
          bool up = (i & kk) == 0;
          if ((a > b) == up) {
            keys[i] = b;
            keys[ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    long long o = (long long)blockIdx.x * k + i;
    if (i < take) {
      int pos = (int)(keys[i] & 0xffffffffull);
      outPos[o] = pos;
      outScores[o] = r[pos];
    } else {
      outPos[o] = -1;
      outScores[o] = NEG_INF;
    }
  }
}
