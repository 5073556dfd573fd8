// The CUDA kernels of the engine's GPU backend (dev.longctx.engine.cuda).
//
// Compiled to PTX for sm_80 and sm_90 by nvcc at build time when nvcc is present (engine/pom.xml,
// profile "nvcc"), otherwise by NVRTC at run time from this same file, shipped as a resource. So the
// file must compile under both: no host code, no includes, every kernel extern "C" (unmangled names
// for cuModuleGetFunction).
//
// Conventions: activations are float32, row-major; weights keep their GGUF layout (ggml type ids:
// F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30) or, for Q8_0, Q4_0 and
// Q6_K, the split layout that DeviceTensor uploads by default (type ids TYPE_SPLIT + 8, + 2 and
// + 14; see "split layout" and "K-quant decode" below: quants and scales as two 16-byte aligned
// arrays); a KV cache layer is a table of page
// addresses, page p holding positions [p·pageSize, (p+1)·pageSize) as [pageSize][kvDim] floats
// (DESIGN.md §2).
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
#define TYPE_Q4_K 12
#define TYPE_Q6_K 14
#define TYPE_BF16 30
// The split layout of a Q8_0 / Q4_0 matrix (DeviceTensor.Layout.SPLIT; Java: SPLIT_TYPE_FLAG).
#define TYPE_SPLIT 256
#define TYPE_Q8_0_SPLIT (TYPE_SPLIT + TYPE_Q8_0)
#define TYPE_Q4_0_SPLIT (TYPE_SPLIT + TYPE_Q4_0)
// The split layout of a Q6_K matrix (see "K-quant decode" below).
#define TYPE_Q6_K_SPLIT (TYPE_SPLIT + TYPE_Q6_K)

#define NEG_INF (-__int_as_float(0x7f800000))

#ifdef LONGCTX_EMULATE
// The CPU emulation of docs/tools/cuda-emulate (no GPU needed) has no PTX asm.
__device__ __forceinline__ float half_to_float(u16 h) { return emulated_half_to_float(h); }
__device__ __forceinline__ u16 float_to_half(float f) { return emulated_float_to_half(f); }
// prmt.b32 (__byte_perm): byte i of the result is byte (s >> 4i) & 7 of the 8 bytes b:a.
__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 s) {
  u64 v = ((u64)b << 32) | a;
  u32 r = 0;
  for (int i = 0; i < 4; i++) r |= (u32)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
// dp4a.s32.s32: c + Σ_i a_i·b_i over the four signed bytes of a and b.
__device__ __forceinline__ int dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; i++)
    c += (int)(signed char)(a >> (8 * i)) * (int)(signed char)(b >> (8 * i));
  return c;
}
// cvt.rni.s32.f32: round to nearest, ties to even.
__device__ __forceinline__ int float_to_int_rn(float f) { return (int)std::nearbyint(f); }
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

__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 s) {
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(s));
  return r;
}

__device__ __forceinline__ int dp4a(int a, int b, int c) {
  int r;
  asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

__device__ __forceinline__ int float_to_int_rn(float f) {
  int r;
  asm("cvt.rni.s32.f32 %0, %1;" : "=r"(r) : "f"(f));
  return r;
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

// Element i of a row-major activation array, held by one lane of a warp whose 32 lanes hold the
// 32 elements of i's block (i / 32), stored as an int8 quant into xq[i] and, by lane 0, the
// block's scale into xd[i / 32]: d = max |x| / 127 over the block, q = round-half-even(x / d), 0
// where d = 0 (the activations of the integer products, matvec_split_q8x). Every lane must call it.
__device__ __forceinline__ void quantize_block_store(float v, long long i, signed char* xq,
                                                     float* xd) {
  float d = warp_max(fabsf(v)) / 127.f;
  xq[i] = (signed char)(d == 0.f ? 0 : float_to_int_rn(v / d));
  if ((threadIdx.x & 31) == 0) xd[i >> 5] = d;
}

// ---- weights in GGUF layout ----------------------------------------------------------------

// The K-quants (super-blocks of 256 elements; Q4_KTensor / Q6_KTensor give the layouts):
//   Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) for sub-blocks j < 8, then
//     128 bytes in four groups of 32: byte l of group g holds element 64g + l (sub-block 2g) in its
//     low nibble and 64g + 32 + l (sub-block 2g + 1) in its high one; value d·sc_j·q − dmin·m_j.
//   Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], f16 d; in half h (128 elements), for l < 32
//     with a = ql[64h + l], b = ql[64h + 32 + l], c = qh[32h + l], element 128h + 32k + l (k < 4)
//     has q = (k < 2 ? (k ? b : a) & 15 : (k & 1 ? b : a) >> 4) | ((c >> 2k) & 3) << 4 and scale
//     scales[8h + 2k + l/16]; value d·sc·(q − 32).

// Sub-block j's 6-bit scale and min from a Q4_K super-block's 12 scale bytes s.
__device__ __forceinline__ void q4k_scale_min(const u8* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Element `col` of row `row` of a [rows, cols] weight of ggml type `type` (cols a multiple of 32 for
// the block types, of 256 for the K-quants). Q8_0 block: f16 d, 32 × int8 (34 bytes); Q4_0 block:
// f16 d, 16 bytes, element i is the low nibble of byte i (i < 16) or the high nibble of byte
// i − 16, value d·(q − 8). The K-quants round as the CPU's dequantization does (Q4_K: one fused
// q·(d·sc) − dmin·m; Q6_K: (d·sc)·(q − 32)), so an embedding row is bit-identical to the CPU's.
__device__ __forceinline__ float weight_flat(const u8* w, int type, long long index) {
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
    case TYPE_Q4_K: {
      const u8* b = w + (index >> 8) * 144;
      int i = (int)(index & 255), j = i >> 5, sc, m;
      q4k_scale_min(b + 4, j, &sc, &m);
      int packed = b[16 + 32 * (i >> 6) + (i & 31)];
      int q = (j & 1) ? packed >> 4 : packed & 15;
      float d = half_to_float((u16)(b[0] | (b[1] << 8)));
      float dmin = half_to_float((u16)(b[2] | (b[3] << 8)));
      return fmaf((float)q, d * (float)sc, -(dmin * (float)m));
    }
    case TYPE_Q6_K: {
      const u8* b = w + (index >> 8) * 210;
      int i = (int)(index & 255), h = i >> 7, k = (i >> 5) & 3, l = i & 31;
      int a = b[64 * h + 32 * (k & 1) + l];
      int c = b[128 + 32 * h + l];
      int q = ((k < 2 ? a & 15 : a >> 4) | (((c >> (2 * k)) & 3) << 4)) - 32;
      int sc = (signed char)b[192 + 8 * h + 2 * k + (l >> 4)];
      float d = half_to_float((u16)(b[208] | (b[209] << 8)));
      return (d * (float)sc) * (float)q;
    }
  }
  return __int_as_float(0x7fc00000);  // unknown type: NaN, caught by the tests' poisoning
}

__device__ __forceinline__ float weight_at(const u8* w, int type, long long row, int cols, int col) {
  return weight_flat(w, type, row * cols + col);
}

// ---- split layout -----------------------------------------------------------------------------
//
// DeviceTensor uploads Q8_0 and Q4_0 matrices [rows, cols] (cols a multiple of 32) as two arrays,
// so that the decode matvec reads aligned, coalesced 16-byte vectors (GGUF's 34- and 18-byte blocks
// are only 2-byte aligned). Same values, same bytes (plus padding of the scale rows):
//   quants: row r at r·rowBytes (rowBytes = cols for Q8_0, cols/2 for Q4_0: 16-byte aligned);
//   scales: after all the quants (at rows·rowBytes, 16-byte aligned), row r at r·scaleStride
//     FP16 values, scaleStride = the row's cols/32 scales rounded up to a multiple of 8 (16 bytes).
// The kernels take the two arrays as two pointers, at the first row of the (view of the) matrix.
// Within a row the elements are interleaved so that lane l of a warp that loads 16 bytes at 16·l
// gets quants whose activations the warp then reads as contiguous float4s (the FP32 activations,
// 4 bytes per weight element read from L1, would otherwise be the warp's bottleneck: lane-strided
// float4 reads touch four times the cache lines of contiguous ones):
//   Q8_0, per chunk of 512 elements (512 bytes): byte 16l + 4j + e holds element 128j + 4l + e
//     (l < 32, j < 4, e < 4); the chunk's 16 scales are stored in the order 4g + j ↔ block 4j + g
//     (g < 4), so lane l, which needs blocks 4j + l/8, loads its four scales in one 8-byte piece.
//     Past the row's last whole chunk (cols % 512 elements), quants and scales are in element
//     order.
//   Q4_0, per chunk of 1024 elements (512 bytes): byte 16l + 4w + e holds element 256w + 4l + e in
//     its low nibble and element 256w + 128 + 4l + e in its high nibble (w < 4); the chunk's 32
//     scales in the order 8g + jj ↔ block 4jj + g (jj < 8; one 16-byte load per lane). Past the
//     last whole chunk (T = cols % 1024 elements), byte t holds element t (t < T/2) in its low
//     nibble and element T/2 + t in its high one; scales in block order.
// Values as in the GGUF blocks: d·q (Q8_0), d·(q − 8) (Q4_0).

#define SPLIT_ROWS 2  // rows per warp of the split-layout matvec (CudaKernels.SPLIT_ROWS)
static_assert(SPLIT_ROWS == 2, "warp_two_rows and store_two_rows serve two rows a warp");

__device__ __forceinline__ bool is_split(int type) {
  return type == TYPE_Q8_0_SPLIT || type == TYPE_Q4_0_SPLIT;
}

__device__ __forceinline__ long long split_row_bytes(int type, int cols) {
  return type == TYPE_Q8_0_SPLIT ? cols : cols / 2;
}

// FP16 scales per row, padded to 16 bytes.
__device__ __forceinline__ long long split_scale_stride(int cols) { return ((cols >> 5) + 7) & ~7; }

// Byte of element `col` within its row's quants; *high = 1 where it is a Q4_0 high nibble.
__device__ __forceinline__ int split_byte(int type, int cols, int col, int* high) {
  if (type == TYPE_Q8_0_SPLIT) {
    *high = 0;
    if (col >= (cols & ~511)) return col;
    int within = col & 511;
    return (col & ~511) + 16 * ((within >> 2) & 31) + 4 * (within >> 7) + (within & 3);
  }
  int full = cols & ~1023;
  if (col < full) {
    int within = col & 1023, jj = within >> 7;
    *high = jj & 1;
    return (col & ~1023) / 2 + 16 * ((within >> 2) & 31) + 4 * (jj >> 1) + (within & 3);
  }
  int t = col - full, half = (cols - full) >> 1;
  *high = t >= half;
  return full / 2 + (t >= half ? t - half : t);
}

// Position of block `blk`'s scale within its row's scales.
__device__ __forceinline__ int split_scale(int type, int cols, int blk) {
  int per = type == TYPE_Q8_0_SPLIT ? 16 : 32;  // blocks per chunk
  int full = type == TYPE_Q8_0_SPLIT ? (cols >> 9) << 4 : (cols >> 10) << 5;
  if (blk >= full) return blk;
  int within = blk & (per - 1);
  return blk - within + (per / 4) * (within & 3) + (within >> 2);
}

__device__ __forceinline__ float split_weight(const u8* q, const u8* scales, int type,
                                              long long row, int cols, int col) {
  int high;
  const u8* qr = q + row * split_row_bytes(type, cols);
  const u16* sr = (const u16*)scales + row * split_scale_stride(cols);
  int b = qr[split_byte(type, cols, col, &high)];
  float d = half_to_float(sr[split_scale(type, cols, col >> 5)]);
  return type == TYPE_Q8_0_SPLIT ? d * (float)(signed char)b
                                 : d * (float)(((b >> (4 * high)) & 15) - 8);
}

// ---- Q6_K split layout ------------------------------------------------------------------------
//
// A Q6_K block (210 bytes) is only 2-byte aligned, so DeviceTensor uploads Q6_K matrices (cols a
// multiple of 256) as two arrays, the same bytes rearranged:
//   quants: row r at r·192·sb (sb = cols / 256 super-blocks): each super-block's ql[128] and
//     qh[64] as in its GGUF block (192 bytes: 16-byte aligned);
//   scales: row r at r·q6k_scale_stride(cols): the row's super-blocks' int8 scales[16] one after
//     the other (16 bytes a super-block), then their FP16 d (2 bytes a super-block), the row
//     padded to 16 bytes.

__device__ __forceinline__ long long q6k_scale_stride(int cols) {
  int sb = cols >> 8;
  return 16LL * sb + ((2 * sb + 15) & ~15);
}

// Element (row, col) of a Q6_K split-layout matrix, rounded as weight_flat's Q6_K: (d·sc)·(q − 32).
__device__ __forceinline__ float q6k_split_weight(const u8* q, const u8* scales, long long row,
                                                  int cols, int col) {
  int sb = cols >> 8, blk = col >> 8;
  const u8* b = q + (row * sb + blk) * 192;
  const u8* s = scales + row * q6k_scale_stride(cols);
  int i = col & 255, h = i >> 7, k = (i >> 5) & 3, l = i & 31;
  int a = b[64 * h + 32 * (k & 1) + l];
  int c = b[128 + 32 * h + l];
  int qv = ((k < 2 ? a & 15 : a >> 4) | (((c >> (2 * k)) & 3) << 4)) - 32;
  int sc = (signed char)s[16 * blk + 8 * h + 2 * k + (l >> 4)];
  float d = half_to_float(((const u16*)(s + 16 * sb))[blk]);
  return (d * (float)sc) * (float)qv;
}

// Element (row, col) of a weight in any layout (scales: the split layouts', else unused).
__device__ __forceinline__ float weight_any(const u8* w, const u8* scales, int type, long long row,
                                            int cols, int col) {
  if (type == TYPE_Q6_K_SPLIT) return q6k_split_weight(w, scales, row, cols, col);
  return is_split(type) ? split_weight(w, scales, type, row, cols, col)
                        : weight_at(w, type, row, cols, col);
}

// Σ_e (b_e − m + 2^23)·x_e over the four bytes b_e of v (byte e ↔ x component e), m ≥ 2^23: each
// byte becomes a float exactly without I2F (a quarter-rate conversion): one prmt makes the bits of
// 2^23 + b_e, one subtraction of m leaves b_e − (m − 2^23).
__device__ __forceinline__ float dot_bytes_minus(u32 v, float4 x, float m) {
  float s = (__uint_as_float(prmt(v, 0x4b000000u, 0x7440)) - m) * x.x;
  s += (__uint_as_float(prmt(v, 0x4b000000u, 0x7441)) - m) * x.y;
  s += (__uint_as_float(prmt(v, 0x4b000000u, 0x7442)) - m) * x.z;
  s += (__uint_as_float(prmt(v, 0x4b000000u, 0x7443)) - m) * x.w;
  return s;
}

// Σ_e q_e·x_e over the four int8 quants of v: q_e + 128 is byte e of v with its top bit flipped.
__device__ __forceinline__ float dot_q8_word(u32 v, float4 x) {
  return dot_bytes_minus(v ^ 0x80808080u, x, 8388736.f);  // 2^23 + 128
}

// Σ_e (q_e − 8)·x_e over four nibbles q_e held one per byte of v (each byte < 16).
__device__ __forceinline__ float dot_q4_word(u32 v, float4 x) {
  return dot_bytes_minus(v, x, 8388616.f);  // 2^23 + 8
}

__device__ __forceinline__ float4 load4(const float* p) { return *(const float4*)p; }

// This lane's part of one Q8_0 chunk of two rows: quants a, b (16 bytes each), their four scales
// da, db (j order), activations xc = the chunk's x + 4·lane (the warp's float4s are contiguous).
__device__ __forceinline__ void q8_chunk2(uint4 a, uint4 b, uint2 da, uint2 db, const float* xc,
                                          float& acc0, float& acc1) {
  u32 wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  u32 sa[2] = {da.x, da.y}, sb[2] = {db.x, db.y};
#pragma unroll
  for (int j = 0; j < 4; j++) {
    float4 xv = load4(xc + 128 * j);
    acc0 += half_to_float((u16)(sa[j >> 1] >> (16 * (j & 1)))) * dot_q8_word(wa[j], xv);
    acc1 += half_to_float((u16)(sb[j >> 1] >> (16 * (j & 1)))) * dot_q8_word(wb[j], xv);
  }
}

// This lane's part of one Q4_0 chunk of two rows: nibbles a, b (16 bytes each), their eight
// scales da, db (jj order: word w holds blocks of jj = 2w, 2w + 1), xc as for q8_chunk2.
__device__ __forceinline__ void q4_chunk2(uint4 a, uint4 b, uint4 da, uint4 db, const float* xc,
                                          float& acc0, float& acc1) {
  u32 wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  u32 sa[4] = {da.x, da.y, da.z, da.w}, sb[4] = {db.x, db.y, db.z, db.w};
#pragma unroll
  for (int w = 0; w < 4; w++) {
    float4 lo = load4(xc + 256 * w), hi = load4(xc + 256 * w + 128);
    acc0 += half_to_float((u16)sa[w]) * dot_q4_word(wa[w] & 0x0f0f0f0fu, lo) +
            half_to_float((u16)(sa[w] >> 16)) * dot_q4_word((wa[w] >> 4) & 0x0f0f0f0fu, hi);
    acc1 += half_to_float((u16)sb[w]) * dot_q4_word(wb[w] & 0x0f0f0f0fu, lo) +
            half_to_float((u16)(sb[w] >> 16)) * dot_q4_word((wb[w] >> 4) & 0x0f0f0f0fu, hi);
  }
}

// Lane `lane`'s 16 bytes of quants of chunks f .. f + N − 1 of two split-layout rows (q0, q1),
// with the scales that go with them: S = uint2 for Q8_0 (4 of a chunk's 16), uint4 for Q4_0 (8 of
// its 32). Issued together, so that a lane has 2·N weight loads in flight.
template <int N, typename S>
__device__ __forceinline__ void load_split_chunks(const u8* __restrict__ q0,
                                                  const u8* __restrict__ q1,
                                                  const u16* __restrict__ s0,
                                                  const u16* __restrict__ s1, int f, int lane,
                                                  uint4 (&a)[N], uint4 (&b)[N], S (&da)[N],
                                                  S (&db)[N]) {
  const int perChunk = 2 * sizeof(S), perLane = sizeof(S) / 2;
  int g = lane >> 3;
#pragma unroll
  for (int i = 0; i < N; i++) {
    a[i] = ((const uint4*)(q0 + ((long long)(f + i) << 9)))[lane];
    b[i] = ((const uint4*)(q1 + ((long long)(f + i) << 9)))[lane];
    da[i] = *(const S*)(s0 + perChunk * (f + i) + perLane * g);
    db[i] = *(const S*)(s1 + perChunk * (f + i) + perLane * g);
  }
}

// Rows (q0, s0) and (q1, s1) of a split-layout matrix dotted with x[0, cols) by one warp; x and
// the four row pointers 16-byte aligned. Two rows per warp so that each activation load (4 bytes
// per weight element, read from L1) serves two rows' weight bytes; up to four chunks per step so
// that each lane has up to eight 16-byte weight loads in flight.
__device__ void warp_split_dot2(const u8* __restrict__ q0, const u8* __restrict__ q1,
                                const u16* __restrict__ s0, const u16* __restrict__ s1, int type,
                                int cols, const float* __restrict__ x, float& r0, float& r1) {
  int lane = threadIdx.x & 31, g = lane >> 3;
  float acc0 = 0.f, acc1 = 0.f;
  if (type == TYPE_Q8_0_SPLIT) {
    int chunks = cols >> 9, f = 0;
    // Four chunks a round (eight 16-byte loads in flight a lane: a long row's chain of round trips
    // halved, see matvec's F16 path), then two, then one; the sums in chunk order throughout.
    for (; f + 3 < chunks; f += 4) {
      uint4 a[4], b[4];
      uint2 da[4], db[4];
      load_split_chunks<4>(q0, q1, s0, s1, f, lane, a, b, da, db);
#pragma unroll
      for (int i = 0; i < 4; i++)
        q8_chunk2(a[i], b[i], da[i], db[i], x + ((long long)(f + i) << 9) + 4 * lane, acc0, acc1);
    }
    for (; f + 1 < chunks; f += 2) {
      const uint4* a = (const uint4*)(q0 + ((long long)f << 9));
      const uint4* b = (const uint4*)(q1 + ((long long)f << 9));
      uint4 a0 = a[lane], a1 = a[32 + lane], b0 = b[lane], b1 = b[32 + lane];
      const uint2* sa = (const uint2*)(s0 + 16 * f + 4 * g);  // 4 scales: chunk f; +4: f + 1
      const uint2* sb = (const uint2*)(s1 + 16 * f + 4 * g);
      uint2 da0 = sa[0], da1 = sa[4], db0 = sb[0], db1 = sb[4];
      const float* xc = x + ((long long)f << 9) + 4 * lane;
      q8_chunk2(a0, b0, da0, db0, xc, acc0, acc1);
      q8_chunk2(a1, b1, da1, db1, xc + 512, acc0, acc1);
    }
    if (f < chunks) {
      uint4 a0 = ((const uint4*)(q0 + ((long long)f << 9)))[lane];
      uint4 b0 = ((const uint4*)(q1 + ((long long)f << 9)))[lane];
      uint2 da0 = *(const uint2*)(s0 + 16 * f + 4 * g), db0 = *(const uint2*)(s1 + 16 * f + 4 * g);
      q8_chunk2(a0, b0, da0, db0, x + ((long long)f << 9) + 4 * lane, acc0, acc1);
    }
    // The rest in element order: four quants (one word) per lane, 128 elements per warp step.
    for (int c = (chunks << 9) + 4 * lane; c < cols; c += 128) {
      float4 xv = load4(x + c);
      acc0 += half_to_float(s0[c >> 5]) * dot_q8_word(*(const u32*)(q0 + c), xv);
      acc1 += half_to_float(s1[c >> 5]) * dot_q8_word(*(const u32*)(q1 + c), xv);
    }
  } else {
    int chunks = cols >> 10, f = 0;
    for (; f + 3 < chunks; f += 4) {  // as for Q8_0
      uint4 a[4], b[4], da[4], db[4];
      load_split_chunks<4>(q0, q1, s0, s1, f, lane, a, b, da, db);
#pragma unroll
      for (int i = 0; i < 4; i++)
        q4_chunk2(a[i], b[i], da[i], db[i], x + ((long long)(f + i) << 10) + 4 * lane, acc0, acc1);
    }
    for (; f + 1 < chunks; f += 2) {
      const uint4* a = (const uint4*)(q0 + ((long long)f << 9));
      const uint4* b = (const uint4*)(q1 + ((long long)f << 9));
      uint4 a0 = a[lane], a1 = a[32 + lane], b0 = b[lane], b1 = b[32 + lane];
      const uint4* sa = (const uint4*)(s0 + 32 * f + 8 * g);  // 8 scales: chunk f; +4: f + 1
      const uint4* sb = (const uint4*)(s1 + 32 * f + 8 * g);
      uint4 da0 = sa[0], da1 = sa[4], db0 = sb[0], db1 = sb[4];
      const float* xc = x + ((long long)f << 10) + 4 * lane;
      q4_chunk2(a0, b0, da0, db0, xc, acc0, acc1);
      q4_chunk2(a1, b1, da1, db1, xc + 1024, acc0, acc1);
    }
    if (f < chunks) {
      uint4 a0 = ((const uint4*)(q0 + ((long long)f << 9)))[lane];
      uint4 b0 = ((const uint4*)(q1 + ((long long)f << 9)))[lane];
      uint4 da0 = *(const uint4*)(s0 + 32 * f + 8 * g), db0 = *(const uint4*)(s1 + 32 * f + 8 * g);
      q4_chunk2(a0, b0, da0, db0, x + ((long long)f << 10) + 4 * lane, acc0, acc1);
    }
    // The rest: byte t holds elements t (low nibble) and half + t (high) of it; a word per lane.
    int full = chunks << 10, half = (cols - full) >> 1;
    const u8* t0 = q0 + full / 2;
    const u8* t1 = q1 + full / 2;
    for (int t = 4 * lane; t < half; t += 128) {
      float4 lo = load4(x + full + t), hi = load4(x + full + half + t);
      u32 v0 = *(const u32*)(t0 + t), v1 = *(const u32*)(t1 + t);
      int bl = (full + t) >> 5, bh = (full + half + t) >> 5;  // the two nibbles' blocks
      acc0 += half_to_float(s0[bl]) * dot_q4_word(v0 & 0x0f0f0f0fu, lo) +
              half_to_float(s0[bh]) * dot_q4_word((v0 >> 4) & 0x0f0f0f0fu, hi);
      acc1 += half_to_float(s1[bl]) * dot_q4_word(v1 & 0x0f0f0f0fu, lo) +
              half_to_float(s1[bh]) * dot_q4_word((v1 >> 4) & 0x0f0f0f0fu, hi);
    }
  }
  r0 = warp_sum(acc0);
  r1 = warp_sum(acc1);
}

#define MATVEC_MAX_WARPS 8
#define STAGE_BLOCKS 64

// Σ_c x4·(a, b, c, d) for 4 consecutive int8 quants packed in two 16-bit words.
__device__ __forceinline__ float dot_q8x4(u16 lo, u16 hi, float4 x) {
  return (float)(signed char)(lo & 0xff) * x.x + (float)(signed char)(lo >> 8) * x.y +
         (float)(signed char)(hi & 0xff) * x.z + (float)(signed char)(hi >> 8) * x.w;
}

// Σ over Q4_0 bytes 2i and 2i + 1 (packed in `pair`) of (nibble − 8)·x: their low nibbles are
// elements 2i, 2i + 1 of the block, their high nibbles 2i + 16, 2i + 17.
__device__ __forceinline__ float dot_q4_pair(u16 pair, const float* xb, int i) {
  int lo = pair & 0xff, hi = pair >> 8;
  return (float)((lo & 15) - 8) * xb[2 * i] + (float)((hi & 15) - 8) * xb[2 * i + 1] +
         (float)((lo >> 4) - 8) * xb[2 * i + 16] + (float)((hi >> 4) - 8) * xb[2 * i + 17];
}

// Σ of 8 FP16 (f16) or BF16 weights packed in h times x[0, 8) (16-byte aligned).
__device__ __forceinline__ float dot_half8(uint4 h, const float* x, bool f16) {
  float4 x0 = load4(x), x1 = load4(x + 4);
  u32 words[4] = {h.x, h.y, h.z, h.w};
  float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    u16 lo = (u16)(words[i] & 0xffff), hi = (u16)(words[i] >> 16);
    s += (f16 ? half_to_float(lo) : bf16_to_float(lo)) * xs[2 * i] +
         (f16 ? half_to_float(hi) : bf16_to_float(hi)) * xs[2 * i + 1];
  }
  return s;
}

// Dot product of row `row` of a block-quantized or float weight with x[0, cols), by one warp. The
// decode path is bound by the weight bytes, so the loads are wide: Q8_0/Q4_0 rows that are 16-byte
// aligned (blocks % 8 == 0) go through shared memory in coalesced 16-byte pieces; other quantized
// rows give a block per lane (read as 16-bit words: blocks are 2-byte aligned); F16/BF16/F32 rows
// 16 bytes per lane; Q4_K/Q6_K rows a super-block per step, a byte of each 32-byte run per lane.
// The fast paths need x 16-byte aligned (they check it); the last path reads element by element.
__device__ float warp_row_dot(const u8* __restrict__ w, int type, long long row, int cols,
                              const float* __restrict__ x) {
  int lane = threadIdx.x & 31;
  float acc = 0.f;
  bool xAligned = (((unsigned long long)x) & 15ull) == 0;
  int blocks = cols / 32;
  int blockBytes = type == TYPE_Q8_0 ? 34 : 18;
  if ((type == TYPE_Q8_0 || type == TYPE_Q4_0) && xAligned && (blocks & 7) == 0 &&
      (((unsigned long long)w) & 15ull) == 0) {
    // Rows are 16-byte aligned (blocks % 8 == 0): the warp copies STAGE_BLOCKS blocks at a time
    // into its shared buffer with coalesced 16-byte loads, then dots them from there.
    __shared__ uint4 stage[MATVEC_MAX_WARPS][STAGE_BLOCKS * 34 / 16];
    uint4* buffer = stage[threadIdx.x >> 5];
    const uint4* src = (const uint4*)(w + row * blocks * blockBytes);
    for (int b0 = 0; b0 < blocks; b0 += STAGE_BLOCKS) {
      int count = min(STAGE_BLOCKS, blocks - b0);  // a multiple of 8
      int words = count * blockBytes / 16;
      const uint4* chunk = src + (long long)b0 * blockBytes / 16;
      for (int i = lane; i < words; i += 32) buffer[i] = chunk[i];
      __syncwarp();
      // Eight lanes per block, four blocks per step: lane `part` takes quants [4·part, 4·part + 4)
      // (Q8_0) or bytes 2·part, 2·part + 1 (Q4_0), so the warp's x reads are contiguous.
      int part = lane & 7;
      for (int blk = lane >> 3; blk < count; blk += 4) {
        const u8* bb = (const u8*)buffer + blk * blockBytes;
        float d = half_to_float(*(const u16*)bb);
        const float* xb = x + (b0 + blk) * 32;
        float s;
        if (type == TYPE_Q8_0) {
          const u16* qs = (const u16*)(bb + 2 + 4 * part);
          s = dot_q8x4(qs[0], qs[1], load4(xb + 4 * part));
        } else {
          s = dot_q4_pair(*(const u16*)(bb + 2 + 2 * part), xb, part);
        }
        acc += d * s;
      }
      __syncwarp();
    }
  } else if (type == TYPE_Q8_0 && xAligned) {
    const u8* base = w + row * blocks * 34;
    for (int blk = lane; blk < blocks; blk += 32) {
      const u16* b = (const u16*)(base + (long long)blk * 34);
      u16 q[16];
#pragma unroll
      for (int i = 0; i < 16; i++) q[i] = b[1 + i];
      float d = half_to_float(b[0]);
      const float* xb = x + blk * 32;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < 8; i++) s += dot_q8x4(q[2 * i], q[2 * i + 1], load4(xb + 4 * i));
      acc += d * s;
    }
  } else if (type == TYPE_Q4_0 && xAligned) {
    const u8* base = w + row * blocks * 18;
    for (int blk = lane; blk < blocks; blk += 32) {
      const u16* b = (const u16*)(base + (long long)blk * 18);
      u16 q[8];
#pragma unroll
      for (int i = 0; i < 8; i++) q[i] = b[1 + i];
      float d = half_to_float(b[0]);
      const float* xb = x + blk * 32;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < 8; i++) s += dot_q4_pair(q[i], xb, i);
      acc += d * s;
    }
  } else if ((type == TYPE_F16 || type == TYPE_BF16) && xAligned && (cols & 7) == 0) {
    const uint4* r = (const uint4*)((const u16*)w + row * cols);
    bool f16 = type == TYPE_F16;
    int n8 = cols / 8, c8 = lane;
    // Eight, then four independent 16-byte loads in flight per lane, then the remainder. A warp's
    // loads of a row are a chain of round trips to memory: on a matrix with few, long rows (the
    // FFN down projection, 4096 rows of 14336) all warps are resident at once and the chain's
    // length, not the bandwidth, sets the time; eight loads a round halve it.
    for (; c8 + 224 < n8; c8 += 256) {
      uint4 h[8];
#pragma unroll
      for (int i = 0; i < 8; i++) h[i] = r[c8 + 32 * i];
      float part = 0.f;
#pragma unroll
      for (int i = 0; i < 8; i++) part += dot_half8(h[i], x + (c8 + 32 * i) * 8, f16);
      acc += part;
    }
    for (; c8 + 96 < n8; c8 += 128) {
      uint4 h0 = r[c8], h1 = r[c8 + 32], h2 = r[c8 + 64], h3 = r[c8 + 96];
      acc += dot_half8(h0, x + c8 * 8, f16) + dot_half8(h1, x + (c8 + 32) * 8, f16) +
             dot_half8(h2, x + (c8 + 64) * 8, f16) + dot_half8(h3, x + (c8 + 96) * 8, f16);
    }
    for (; c8 < n8; c8 += 32) acc += dot_half8(r[c8], x + c8 * 8, f16);
  } else if (type == TYPE_F32 && xAligned && (cols & 3) == 0) {
    const float4* r = (const float4*)((const float*)w + row * cols);
    for (int c4 = lane; c4 < cols / 4; c4 += 32) {
      float4 a = r[c4], b = load4(x + c4 * 4);
      acc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
    }
  } else if (type == TYPE_Q4_K) {
    // A super-block per step: lane l reads byte l of each 32-byte group g (coalesced), i.e. the
    // quants of elements 64g + l and 64g + 32 + l, and the activations at those columns; the
    // products take the integer scales, the mins their own sum: d·Σ sc·q·x − dmin·Σ m·x.
    const u8* base = w + row * (cols >> 8) * 144;
    for (int sb = 0; sb < (cols >> 8); sb++) {
      const u8* b = base + (long long)sb * 144;
      const float* xb = x + sb * 256 + lane;
      float s = 0.f, mins = 0.f;
#pragma unroll
      for (int g = 0; g < 4; g++) {
        int sc0, m0, sc1, m1;
        q4k_scale_min(b + 4, 2 * g, &sc0, &m0);
        q4k_scale_min(b + 4, 2 * g + 1, &sc1, &m1);
        int packed = b[16 + 32 * g + lane];
        float x0 = xb[64 * g], x1 = xb[64 * g + 32];
        s += (float)(sc0 * (packed & 15)) * x0 + (float)(sc1 * (packed >> 4)) * x1;
        mins += (float)m0 * x0 + (float)m1 * x1;
      }
      acc += half_to_float((u16)(b[0] | (b[1] << 8))) * s -
             half_to_float((u16)(b[2] | (b[3] << 8))) * mins;
    }
  } else if (type == TYPE_Q6_K) {
    // A super-block per step: lane l reads byte l of each 32-byte run of ql and qh (coalesced),
    // which hold the quants of the eight elements 128h + 32k + l (h < 2, k < 4).
    const u8* base = w + row * (cols >> 8) * 210;
    for (int sb = 0; sb < (cols >> 8); sb++) {
      const u8* b = base + (long long)sb * 210;
      const float* xb = x + sb * 256 + lane;
      const signed char* scales = (const signed char*)(b + 192) + (lane >> 4);
      float s = 0.f;
#pragma unroll
      for (int h = 0; h < 2; h++) {
        int a = b[64 * h + lane], bb = b[64 * h + 32 + lane], c = b[128 + 32 * h + lane];
        const float* xh = xb + 128 * h;
        const signed char* sh = scales + 8 * h;
        s += (float)(sh[0] * (((a & 15) | ((c & 3) << 4)) - 32)) * xh[0] +
             (float)(sh[2] * (((bb & 15) | (((c >> 2) & 3) << 4)) - 32)) * xh[32] +
             (float)(sh[4] * (((a >> 4) | (((c >> 4) & 3) << 4)) - 32)) * xh[64] +
             (float)(sh[6] * (((bb >> 4) | (((c >> 6) & 3) << 4)) - 32)) * xh[96];
      }
      acc += half_to_float((u16)(b[208] | (b[209] << 8))) * s;
    }
  } else if (type == TYPE_Q8_0 || type == TYPE_Q4_0 || type == TYPE_F16 || type == TYPE_BF16 ||
             type == TYPE_F32) {
    for (int c = lane; c < cols; c += 32) acc += weight_at(w, type, row, cols, c) * x[c];
  } else {
    acc = __int_as_float(0x7fc00000);
  }
  return warp_sum(acc);
}

// Rows `row` and `next` of a weight in any layout dotted with x[0, cols) element by element, by
// one warp (the kernels' path for pointers their wide loads cannot take).
__device__ void warp_elementwise_dot2(const u8* w, const u8* scales, int type, long long row,
                                      long long next, int cols, const float* x, float& v0,
                                      float& v1) {
  float a0 = 0.f, a1 = 0.f;
  for (int c = threadIdx.x & 31; c < cols; c += 32) {
    a0 += weight_any(w, scales, type, row, cols, c) * x[c];
    a1 += weight_any(w, scales, type, next, cols, c) * x[c];
  }
  v0 = warp_sum(a0);
  v1 = warp_sum(a1);
}

// The two output rows (row, next) and the activation row t of this warp in a kernel of two rows a
// warp, grid (ceil(rows / (warpsPerBlock · 2)), n); false where the warp has none. A last odd row
// is read twice (next == row) and kept once.
__device__ __forceinline__ bool warp_two_rows(int rows, int n, long long& row, long long& next,
                                              int& t) {
  row = 2LL * (int)(blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5));
  t = blockIdx.y;
  if (row >= rows || t >= n) return false;
  next = row + 1 < rows ? row + 1 : row;
  return true;
}

// A warp's two output rows, by its lane 0: next == row (a last odd row) is written once.
__device__ __forceinline__ void store_two_rows(float* y, long long row, long long next, float v0,
                                               float v1) {
  if ((threadIdx.x & 31) == 0) {
    y[row] = v0;
    if (next != row) y[next] = v1;
  }
}

// y[t, r] = Σ_c W[r, c] · x[t, c] for r < rows, t < n (FloatTensor.matmul), W in a GGUF layout
// (the split layout has matvec_split). One warp per output row; grid (ceil(rows / warpsPerBlock),
// n). The decode path (n = 1) is bandwidth bound: each weight byte is read once.
extern "C" __global__ void matvec(const u8* w, int type, const float* x, float* y, int rows,
                                  int cols, int n) {
  int warpsPerBlock = blockDim.x >> 5;
  int row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
  int t = blockIdx.y;
  if (row >= rows || t >= n) return;
  float v = warp_row_dot(w, type, row, cols, x + (long long)t * cols);
  if ((threadIdx.x & 31) == 0) y[(long long)t * rows + row] = v;
}

// The same product for W in the split layout (quants w, scales; type TYPE_Q8_0_SPLIT or
// TYPE_Q4_0_SPLIT): SPLIT_ROWS output rows per warp; grid (ceil(rows / (warpsPerBlock ·
// SPLIT_ROWS)), n). A kernel of its own so that its registers (about 70–90, no spills; a lane
// holds four 16-byte weight loads and their scales in flight) do not lower matvec's occupancy.
extern "C" __global__ void matvec_split(const u8* w, const u8* scales, int type, const float* x,
                                        float* y, int rows, int cols, int n) {
  long long row, next;
  int t;
  if (!warp_two_rows(rows, n, row, next, t)) return;
  const float* xt = x + (long long)t * cols;
  float v0 = __int_as_float(0x7fc00000), v1 = v0;  // another type: NaN, caught by the tests
  if (is_split(type)) {
    long long rowBytes = split_row_bytes(type, cols), stride = split_scale_stride(cols);
    if (((((unsigned long long)xt) | ((unsigned long long)w) | ((unsigned long long)scales)) &
         15ull) == 0) {
      warp_split_dot2(w + row * rowBytes, w + next * rowBytes, (const u16*)scales + row * stride,
                      (const u16*)scales + next * stride, type, cols, xt, v0, v1);
    } else {
      warp_elementwise_dot2(w, scales, type, row, next, cols, xt, v0, v1);
    }
  }
  store_two_rows(y + (long long)t * rows, row, next, v0, v1);
}

// ---- integer products over quantized activations ------------------------------------------
//
// The decode products of the split layout can also run on 8-bit activations, as llama.cpp's
// MMVQ kernels do: x quantized per 32-element block to int8 quants and a float scale, then four
// weight quants times four activation quants per dp4a instruction, scaled per block. A lane
// spends about six instructions on a 4-byte weight word this way against about fifteen in
// matvec_split (four prmt, four subtractions, four FMAs per row), so the product stays bound by the
// weight bytes; the price is the activations' rounding (|x − d·q| ≤ d/2, d = max|x| / 127 of the
// block), which the CPU backend does not have: CudaModel.setQuantizedActivations, off by default.

// xq[t, c] = round-to-nearest-even(x[t, c] / d) and xd[t, b] = d = max_{c ∈ b} |x[t, c]| / 127 for
// each 32-element block b of row t (q = 0 where the block is all zeros). cols % 32 == 0. A warp per
// block: grid (ceil(cols / 256), n), block 256.
extern "C" __global__ void quantize_rows_q8(const float* x, signed char* xq, float* xd, int cols,
                                            int n) {
  int blocks = cols >> 5;
  int b = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int t = blockIdx.y;
  if (b >= blocks || t >= n) return;
  long long i = (long long)t * cols + 32 * b + (threadIdx.x & 31);
  quantize_block_store(x[i], i, xq, xd);  // block b of row t is block i / 32 (cols % 32 == 0)
}

// An int of magnitude < 2^22 as a float, exactly, without I2F (a quarter-rate conversion): its
// bits added to those of 1.5·2^23, whose mantissa step is 1.
__device__ __forceinline__ float small_int_to_float(int v) {
  return __int_as_float(v + 0x4B400000) - 12582912.f;
}

// The four Q4_0 nibbles of v (one per byte, each < 16) as the signed bytes nibble − 8: the nibble
// with its top bit flipped is nibble − 8 in 4-bit two's complement; its sign goes to bits 4..7.
__device__ __forceinline__ int q4_signed_bytes(u32 v) {
  u32 t = v ^ 0x08080808u;
  return (int)(t | ((t & 0x08080808u) * 0x1Eu));
}

// One 4-byte word of a row's Q8_0 quants (block scale s) times four activation quants xw (scale dx).
__device__ __forceinline__ float q8x_word(u32 w, float s, int xw, float dx) {
  return s * dx * small_int_to_float(dp4a((int)w, xw, 0));
}

// One 4-byte word of a row's Q4_0 nibbles: its low nibbles (block scale slo) times activation
// quants lo (scale dlo), its high ones (shi) times hi (dhi).
__device__ __forceinline__ float q4x_word(u32 w, float slo, float shi, int lo, int hi, float dlo,
                                          float dhi) {
  return slo * dlo * small_int_to_float(dp4a(q4_signed_bytes(w & 0x0f0f0f0fu), lo, 0)) +
         shi * dhi * small_int_to_float(dp4a(q4_signed_bytes((w >> 4) & 0x0f0f0f0fu), hi, 0));
}

// One Q8_0 chunk of two rows over quantized activations: quants a, b and scales da, db as
// q8_chunk2 reads them; xc = the chunk's activation quants + 4·lane, dc = its activation scales
// + lane / 8 (word j's block is 4j + lane / 8 of the chunk).
__device__ __forceinline__ void q8x_chunk2(uint4 a, uint4 b, uint2 da, uint2 db,
                                           const signed char* xc, const float* dc, float& acc0,
                                           float& acc1) {
  u32 wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  u32 sa[2] = {da.x, da.y}, sb[2] = {db.x, db.y};
#pragma unroll
  for (int j = 0; j < 4; j++) {
    int xw = *(const int*)(xc + 128 * j);
    float dx = dc[4 * j];
    int shift = 16 * (j & 1);
    acc0 += q8x_word(wa[j], half_to_float((u16)(sa[j >> 1] >> shift)), xw, dx);
    acc1 += q8x_word(wb[j], half_to_float((u16)(sb[j >> 1] >> shift)), xw, dx);
  }
}

// One Q4_0 chunk of two rows over quantized activations: nibbles a, b and scales da, db as
// q4_chunk2 reads them; xc = the chunk's activation quants + 4·lane, dc = its scales + lane / 8
// (word w's low nibbles are in block 8w + lane / 8 of the chunk, its high ones in 8w + 4 + lane / 8).
__device__ __forceinline__ void q4x_chunk2(uint4 a, uint4 b, uint4 da, uint4 db,
                                           const signed char* xc, const float* dc, float& acc0,
                                           float& acc1) {
  u32 wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  u32 sa[4] = {da.x, da.y, da.z, da.w}, sb[4] = {db.x, db.y, db.z, db.w};
#pragma unroll
  for (int w = 0; w < 4; w++) {
    int lo = *(const int*)(xc + 256 * w), hi = *(const int*)(xc + 256 * w + 128);
    float dlo = dc[8 * w], dhi = dc[8 * w + 4];
    acc0 += q4x_word(wa[w], half_to_float((u16)sa[w]), half_to_float((u16)(sa[w] >> 16)), lo, hi,
                     dlo, dhi);
    acc1 += q4x_word(wb[w], half_to_float((u16)sb[w]), half_to_float((u16)(sb[w] >> 16)), lo, hi,
                     dlo, dhi);
  }
}

// Rows (q0, s0) and (q1, s1) of a split-layout matrix dotted with quantized activations (xq, xd)
// by one warp, as warp_split_dot2 with x; q and s 16-byte aligned, xq 4-byte aligned.
__device__ void warp_split_dot2_q8x(const u8* __restrict__ q0, const u8* __restrict__ q1,
                                    const u16* __restrict__ s0, const u16* __restrict__ s1,
                                    int type, int cols, const signed char* __restrict__ xq,
                                    const float* __restrict__ xd, float& r0, float& r1) {
  int lane = threadIdx.x & 31, g = lane >> 3;
  float acc0 = 0.f, acc1 = 0.f;
  if (type == TYPE_Q8_0_SPLIT) {
    int chunks = cols >> 9, f = 0;
    // Four chunks a round (eight 16-byte weight loads in flight a lane), then one at a time.
    for (; f + 3 < chunks; f += 4) {
      uint4 a[4], b[4];
      uint2 da[4], db[4];
      load_split_chunks<4>(q0, q1, s0, s1, f, lane, a, b, da, db);
#pragma unroll
      for (int i = 0; i < 4; i++)
        q8x_chunk2(a[i], b[i], da[i], db[i], xq + ((long long)(f + i) << 9) + 4 * lane,
                   xd + 16 * (f + i) + g, acc0, acc1);
    }
    for (; f < chunks; f++) {
      uint4 a[1], b[1];
      uint2 da[1], db[1];
      load_split_chunks<1>(q0, q1, s0, s1, f, lane, a, b, da, db);
      q8x_chunk2(a[0], b[0], da[0], db[0], xq + ((long long)f << 9) + 4 * lane, xd + 16 * f + g,
                 acc0, acc1);
    }
    // The rest in element order: one word of four quants per lane, 128 elements per warp step.
    for (int c = (chunks << 9) + 4 * lane; c < cols; c += 128) {
      int xw = *(const int*)(xq + c);
      float dx = xd[c >> 5];
      acc0 += q8x_word(*(const u32*)(q0 + c), half_to_float(s0[c >> 5]), xw, dx);
      acc1 += q8x_word(*(const u32*)(q1 + c), half_to_float(s1[c >> 5]), xw, dx);
    }
  } else {
    int chunks = cols >> 10, f = 0;
    for (; f + 3 < chunks; f += 4) {  // as for Q8_0
      uint4 a[4], b[4], da[4], db[4];
      load_split_chunks<4>(q0, q1, s0, s1, f, lane, a, b, da, db);
#pragma unroll
      for (int i = 0; i < 4; i++)
        q4x_chunk2(a[i], b[i], da[i], db[i], xq + ((long long)(f + i) << 10) + 4 * lane,
                   xd + 32 * (f + i) + g, acc0, acc1);
    }
    for (; f < chunks; f++) {
      uint4 a[1], b[1], da[1], db[1];
      load_split_chunks<1>(q0, q1, s0, s1, f, lane, a, b, da, db);
      q4x_chunk2(a[0], b[0], da[0], db[0], xq + ((long long)f << 10) + 4 * lane, xd + 32 * f + g,
                 acc0, acc1);
    }
    // The rest: byte t holds elements t (low nibble) and half + t (high) of it; a word per lane.
    int full = chunks << 10, half = (cols - full) >> 1;
    const u8* t0 = q0 + full / 2;
    const u8* t1 = q1 + full / 2;
    for (int t = 4 * lane; t < half; t += 128) {
      int cl = full + t, ch = full + half + t;  // the two nibbles' elements
      int lo = *(const int*)(xq + cl), hi = *(const int*)(xq + ch);
      float dlo = xd[cl >> 5], dhi = xd[ch >> 5];
      u32 v0 = *(const u32*)(t0 + t), v1 = *(const u32*)(t1 + t);
      acc0 += q4x_word(v0, half_to_float(s0[cl >> 5]), half_to_float(s0[ch >> 5]), lo, hi, dlo, dhi);
      acc1 += q4x_word(v1, half_to_float(s1[cl >> 5]), half_to_float(s1[ch >> 5]), lo, hi, dlo, dhi);
    }
  }
  r0 = warp_sum(acc0);
  r1 = warp_sum(acc1);
}

// y[t, r] = Σ_c W[r, c]·x[t, c] for W in the split layout and x given as quantize_rows_q8's
// quants xq [n, cols] and scales xd [n, cols / 32]; grid and rows per warp as matvec_split. A type
// other than the split ones, or unaligned pointers, write NaN (caught by the tests).
extern "C" __global__ void matvec_split_q8x(const u8* w, const u8* scales, int type,
                                            const signed char* xq, const float* xd, float* y,
                                            int rows, int cols, int n) {
  long long row, next;
  int t;
  if (!warp_two_rows(rows, n, row, next, t)) return;
  float v0 = __int_as_float(0x7fc00000), v1 = v0;
  const signed char* xqt = xq + (long long)t * cols;
  bool aligned = ((((unsigned long long)w) | ((unsigned long long)scales)) & 15ull) == 0 &&
                 (((unsigned long long)xqt) & 3ull) == 0;
  if (is_split(type) && aligned && (cols & 31) == 0) {
    long long rowBytes = split_row_bytes(type, cols), stride = split_scale_stride(cols);
    warp_split_dot2_q8x(w + row * rowBytes, w + next * rowBytes,
                        (const u16*)scales + row * stride, (const u16*)scales + next * stride,
                        type, cols, xqt, xd + (long long)t * (cols >> 5), v0, v1);
  }
  store_two_rows(y + (long long)t * rows, row, next, v0, v1);
}

// ---- K-quant decode ---------------------------------------------------------------------------
//
// matvec_kquant: Q4_K in its GGUF super-blocks (144 bytes: 16-byte aligned) and Q6_K in its split
// layout, KQ_ROWS rows per warp (the activation loads serve both), 16-byte weight loads. A warp
// takes four super-blocks a step, eight lanes each; lane i (< 8) of a super-block's eight takes 16
// of its quant bytes, i.e. 32 weights in two runs of 16 consecutive elements (a "low" and a "high"
// run), which share one sub-block scale each, so a lane decodes two scales per 32 weights:
//   Q4_K: quant bytes 16i .. 16i + 15 (after the 16-byte header of d, dmin and the 12 scale
//     bytes, which every lane loads whole); group g = i / 2, bytes l = 16(i & 1) + t: low run
//     elements 64g + l (sub-block 2g), high run 64g + 32 + l (sub-block 2g + 1);
//   Q6_K: ql bytes 16i .. 16i + 15, i.e. half h = i / 4, r = i & 3, l = 16(r & 1) + t of ql[64h +
//     32(r >> 1) + l]: its low nibbles are quarter k = r >> 1 (elements 128h + 32k + l), its high
//     ones quarter k + 2; their two high bits are bits 2k, 2k + 4 of qh[32h + l]; scales 8h + r and
//     8h + r + 4.
// The nibbles become floats without I2F (a quarter-rate conversion): Q6_K's 6-bit q as 2^23 + q
// (one prmt) minus 2^23 + 32; Q4_K's nibble, shifted to a byte's bits 3..6, as the float
// 0.5 + q/32 (one prmt puts it in the mantissa's top bits under exponent 2^-1), whose sum against
// x is turned back with the run's Σx, which Q4_K's mins need anyway:
//   Σ (d·sc·q − dmin·m)·x = 32·d·sc·Σ (0.5 + q/32)·x − (16·d·sc + dmin·m)·Σ x.
// matvec_kquant_q8x reads the same weights the same way against int8 activations (quantize_rows_q8's
// quants and per-32 scales; a run of 16 lies in one activation block): one dp4a per four weights
// and four activation quants, the runs' Σ q_x by dp4a against ones for Q4_K's mins and Q6_K's − 32.

#define KQ_ROWS 2  // rows per warp of matvec_kquant (CudaKernels.KQUANT_ROWS)
static_assert(KQ_ROWS == 2, "warp_two_rows and store_two_rows serve two rows a warp");

// Byte b (< 4) of w as a float (unsigned), without I2F.
__device__ __forceinline__ float byte_float(u32 w, int b) {
  return __uint_as_float(prmt(w, 0x4b000000u, 0x7440u | (u32)b)) - 8388608.f;
}

// Byte b (< 4) of w as a float (signed), without I2F.
__device__ __forceinline__ float sbyte_float(u32 w, int b) {
  return __uint_as_float(prmt(w ^ 0x80808080u, 0x4b000000u, 0x7440u | (u32)b)) - 8388736.f;
}

// Σ_e (0.5 + q_e/32)·x_e for four nibbles q_e held at bits 3..6 of the bytes of v.
__device__ __forceinline__ float q4k_dot4(u32 v, float4 x) {
  float s = __uint_as_float(prmt(v, 0x3f000000u, 0x7044)) * x.x;
  s += __uint_as_float(prmt(v, 0x3f000000u, 0x7144)) * x.y;
  s += __uint_as_float(prmt(v, 0x3f000000u, 0x7244)) * x.z;
  s += __uint_as_float(prmt(v, 0x3f000000u, 0x7344)) * x.w;
  return s;
}

// Σ_e (q_e − 32)·x_e for four 6-bit quants held one per byte of v.
__device__ __forceinline__ float q6k_dot4(u32 v, float4 x) {
  return dot_bytes_minus(v, x, 8388640.f);  // 2^23 + 32
}

// The d·sc and dmin·m of the two sub-blocks (2g, 2g + 1, g = i / 2) of lane i (< 8) of a Q4_K
// super-block's eight, from its 16-byte header hv (d, dmin, the 12 scale bytes).
__device__ __forceinline__ void q4k_scales(uint4 hv, int i, float& ds0, float& ds1, float& dm0,
                                           float& dm1) {
  float d = half_to_float((u16)hv.x), dmin = half_to_float((u16)(hv.x >> 16));
  // The 6-bit scales and mins of sub-blocks 0..3 and 4..7, a byte each (Q4_KTensor.groupScales).
  u32 sc03 = hv.y & 0x3f3f3f3fu, m03 = hv.z & 0x3f3f3f3fu;
  u32 sc47 = (hv.w & 0x0f0f0f0fu) | ((hv.y >> 2) & 0x30303030u);
  u32 m47 = ((hv.w >> 4) & 0x0f0f0f0fu) | ((hv.z >> 2) & 0x30303030u);
  int g = i >> 1, b = (2 * g) & 3;  // sub-blocks 2g, 2g + 1: bytes b, b + 1 of one word
  u32 scw = g < 2 ? sc03 : sc47, mw = g < 2 ? m03 : m47;
  ds0 = d * byte_float(scw, b);
  ds1 = d * byte_float(scw, b + 1);
  dm0 = dmin * byte_float(mw, b);
  dm1 = dmin * byte_float(mw, b + 1);
}

// One row's part of a Q4_K super-block for lane i (< 8) of its eight: header hv, quant bytes qv,
// the lane's low and high runs of x (xl, xh) and their sums.
__device__ __forceinline__ float q4k_lane(uint4 hv, uint4 qv, int i, const float4 (&xl)[4],
                                          const float4 (&xh)[4], float sxl, float sxh) {
  float ds0, ds1, dm0, dm1;
  q4k_scales(hv, i, ds0, ds1, dm0, dm1);
  u32 w[4] = {qv.x, qv.y, qv.z, qv.w};
  float lo = 0.f, hi = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    lo += q4k_dot4((w[k] << 3) & 0x78787878u, xl[k]);
    hi += q4k_dot4((w[k] >> 1) & 0x78787878u, xh[k]);
  }
  return 32.f * ds0 * lo - (16.f * ds0 + dm0) * sxl + 32.f * ds1 * hi - (16.f * ds1 + dm1) * sxh;
}

// Lane i's (< 8) 6-bit quants of a Q6_K super-block, a byte each: word k of its low run (low
// nibbles of ql word a, bits 2k', 2k' + 1 of qh word c, k' = (i & 3) >> 1) or of its high run.
__device__ __forceinline__ u32 q6k_word(u32 a, u32 c, int i, bool high) {
  u32 cc = c >> (2 * ((i & 3) >> 1));
  return high ? ((a >> 4) & 0x0f0f0f0fu) | (cc & 0x30303030u)
              : (a & 0x0f0f0f0fu) | ((cc << 4) & 0x30303030u);
}

// One row's part of a Q6_K super-block for lane i (< 8) of its eight: ql and qh bytes (16 each),
// the half's scales sc (bytes 8h .. 8h + 7), d, and the lane's runs of x.
__device__ __forceinline__ float q6k_lane(uint4 ql, uint4 qh, uint2 sc, u16 d, int i,
                                          const float4 (&xl)[4], const float4 (&xh)[4]) {
  u32 a[4] = {ql.x, ql.y, ql.z, ql.w}, c[4] = {qh.x, qh.y, qh.z, qh.w};
  float lo = 0.f, hi = 0.f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    lo += q6k_dot4(q6k_word(a[k], c[k], i, false), xl[k]);
    hi += q6k_dot4(q6k_word(a[k], c[k], i, true), xh[k]);
  }
  int r = i & 3;
  return half_to_float(d) * (sbyte_float(sc.x, r) * lo + sbyte_float(sc.y, r) * hi);
}

// The int8-activation forms: the lane's runs of activation quants xl, xh (16 each), their block
// scales dl, dh and their sums sl, sh (Σ q_x over each run).
__device__ __forceinline__ float q4k_lane_q8x(uint4 hv, uint4 qv, int i, uint4 xl, uint4 xh,
                                              float dl, float dh, int sl, int sh) {
  float ds0, ds1, dm0, dm1;
  q4k_scales(hv, i, ds0, ds1, dm0, dm1);
  u32 w[4] = {qv.x, qv.y, qv.z, qv.w}, a[4] = {xl.x, xl.y, xl.z, xl.w},
      b[4] = {xh.x, xh.y, xh.z, xh.w};
  int lo = 0, hi = 0;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    lo = dp4a((int)(w[k] & 0x0f0f0f0fu), (int)a[k], lo);
    hi = dp4a((int)((w[k] >> 4) & 0x0f0f0f0fu), (int)b[k], hi);
  }
  return dl * (ds0 * small_int_to_float(lo) - dm0 * small_int_to_float(sl)) +
         dh * (ds1 * small_int_to_float(hi) - dm1 * small_int_to_float(sh));
}

__device__ __forceinline__ float q6k_lane_q8x(uint4 ql, uint4 qh, uint2 sc, u16 d, int i, uint4 xl,
                                              uint4 xh, float dl, float dh, int sl, int sh) {
  u32 a[4] = {ql.x, ql.y, ql.z, ql.w}, c[4] = {qh.x, qh.y, qh.z, qh.w};
  u32 xa[4] = {xl.x, xl.y, xl.z, xl.w}, xb[4] = {xh.x, xh.y, xh.z, xh.w};
  int lo = 0, hi = 0;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    lo = dp4a((int)q6k_word(a[k], c[k], i, false), (int)xa[k], lo);
    hi = dp4a((int)q6k_word(a[k], c[k], i, true), (int)xb[k], hi);
  }
  int r = i & 3;
  return half_to_float(d) * (sbyte_float(sc.x, r) * dl * small_int_to_float(lo - 32 * sl) +
                             sbyte_float(sc.y, r) * dh * small_int_to_float(hi - 32 * sh));
}

// This lane's weights of super-block s of the two rows, loaded (Q6 ? Q6_K split : Q4_K).
struct KqLoad {
  uint4 a0, a1, b0, b1;  // Q4_K: header, quants; Q6_K: ql, qh — of row 0 (a) and row 1 (b)
  uint2 s0, s1;          // Q6_K: the half's scales of each row
  u16 d0, d1;            // Q6_K: d of each row
};

template <bool Q6>
__device__ __forceinline__ KqLoad kq_load(const u8* __restrict__ q0, const u8* __restrict__ q1,
                                          const u8* __restrict__ s0, const u8* __restrict__ s1,
                                          int sb, int s, int i) {
  KqLoad v;
  if (Q6) {
    long long at = (long long)s * 192;
    int h = i >> 2, odd = i & 1;
    v.a0 = *(const uint4*)(q0 + at + 16 * i);
    v.a1 = *(const uint4*)(q0 + at + 128 + 32 * h + 16 * odd);
    v.b0 = *(const uint4*)(q1 + at + 16 * i);
    v.b1 = *(const uint4*)(q1 + at + 128 + 32 * h + 16 * odd);
    v.s0 = *(const uint2*)(s0 + 16 * s + 8 * h);
    v.s1 = *(const uint2*)(s1 + 16 * s + 8 * h);
    v.d0 = ((const u16*)(s0 + 16 * sb))[s];
    v.d1 = ((const u16*)(s1 + 16 * sb))[s];
  } else {
    long long at = (long long)s * 144;
    v.a0 = *(const uint4*)(q0 + at);
    v.a1 = *(const uint4*)(q0 + at + 16 + 16 * i);
    v.b0 = *(const uint4*)(q1 + at);
    v.b1 = *(const uint4*)(q1 + at + 16 + 16 * i);
  }
  return v;
}

// Σ of the 16 signed bytes of v (dp4a against ones).
__device__ __forceinline__ int sbytes_sum16(uint4 v) {
  const int ones = 0x01010101;
  return dp4a((int)v.x, ones, dp4a((int)v.y, ones, dp4a((int)v.z, ones, dp4a((int)v.w, ones, 0))));
}

// The activations of a product: floats, or quantize_rows_q8's int8 quants and per-32 scales.
struct KqFloatX {
  const float* x;
};
struct KqInt8X {
  const signed char* q;
  const float* d;
};

// Where lane i's (< 8) low run starts within a super-block (its high run: + KQ_HIGH(Q6)):
// Q4_K 64g + 16(i & 1), g = i / 2; Q6_K 128h + 16r, h = i / 4, r = i & 3.
__device__ __forceinline__ int kq_low(bool q6, int i) {
  return q6 ? 128 * (i >> 2) + 16 * (i & 3) : 64 * (i >> 1) + 16 * (i & 1);
}
#define KQ_HIGH(q6) ((q6) ? 64 : 32)

template <bool Q6>
__device__ __forceinline__ void kq_step(const KqLoad& v, KqFloatX a, int s, int i, float& acc0,
                                        float& acc1) {
  const float* xs = a.x + 256 * s + kq_low(Q6, i);
  float4 xl[4], xh[4];
#pragma unroll
  for (int k = 0; k < 4; k++) {
    xl[k] = load4(xs + 4 * k);
    xh[k] = load4(xs + KQ_HIGH(Q6) + 4 * k);
  }
  if (Q6) {
    acc0 += q6k_lane(v.a0, v.a1, v.s0, v.d0, i, xl, xh);
    acc1 += q6k_lane(v.b0, v.b1, v.s1, v.d1, i, xl, xh);
  } else {
    float sxl = 0.f, sxh = 0.f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
      sxl += (xl[k].x + xl[k].y) + (xl[k].z + xl[k].w);
      sxh += (xh[k].x + xh[k].y) + (xh[k].z + xh[k].w);
    }
    acc0 += q4k_lane(v.a0, v.a1, i, xl, xh, sxl, sxh);
    acc1 += q4k_lane(v.b0, v.b1, i, xl, xh, sxl, sxh);
  }
}

template <bool Q6>
__device__ __forceinline__ void kq_step(const KqLoad& v, KqInt8X a, int s, int i, float& acc0,
                                        float& acc1) {
  int lo = 256 * s + kq_low(Q6, i), hi = lo + KQ_HIGH(Q6);
  uint4 xl = *(const uint4*)(a.q + lo), xh = *(const uint4*)(a.q + hi);
  float dl = a.d[lo >> 5], dh = a.d[hi >> 5];
  int sl = sbytes_sum16(xl), sh = sbytes_sum16(xh);
  if (Q6) {
    acc0 += q6k_lane_q8x(v.a0, v.a1, v.s0, v.d0, i, xl, xh, dl, dh, sl, sh);
    acc1 += q6k_lane_q8x(v.b0, v.b1, v.s1, v.d1, i, xl, xh, dl, dh, sl, sh);
  } else {
    acc0 += q4k_lane_q8x(v.a0, v.a1, i, xl, xh, dl, dh, sl, sh);
    acc1 += q4k_lane_q8x(v.b0, v.b1, i, xl, xh, dl, dh, sl, sh);
  }
}

// Rows q0, q1 (Q6: with their scales s0, s1) dotted with the activations a of [0, cols) by one
// warp, cols % 256 == 0, every pointer 16-byte aligned. Two super-blocks a lane per round (their
// loads issued together).
template <bool Q6, typename X>
__device__ void warp_kquant_dot2(const u8* __restrict__ q0, const u8* __restrict__ q1,
                                 const u8* __restrict__ s0, const u8* __restrict__ s1, int cols,
                                 X a, float& r0, float& r1) {
  int lane = threadIdx.x & 31, i = lane & 7;
  int sb = cols >> 8;
  float acc0 = 0.f, acc1 = 0.f;
  int s = lane >> 3;
  for (; s + 4 < sb; s += 8) {
    KqLoad u = kq_load<Q6>(q0, q1, s0, s1, sb, s, i);
    KqLoad v = kq_load<Q6>(q0, q1, s0, s1, sb, s + 4, i);
    kq_step<Q6>(u, a, s, i, acc0, acc1);
    kq_step<Q6>(v, a, s + 4, i, acc0, acc1);
  }
  if (s < sb) kq_step<Q6>(kq_load<Q6>(q0, q1, s0, s1, sb, s, i), a, s, i, acc0, acc1);
  r0 = warp_sum(acc0);
  r1 = warp_sum(acc1);
}

// Rows `row`, `next` of a K-quant matrix w (type TYPE_Q4_K or TYPE_Q6_K_SPLIT, cols % 256 == 0,
// pointers 16-byte aligned) against the activations a, by one warp.
template <typename X>
__device__ void kquant_dot2(const u8* w, const u8* scales, int type, long long row, long long next,
                            int cols, X a, float& v0, float& v1) {
  if (type == TYPE_Q4_K) {
    long long rowBytes = (long long)(cols >> 8) * 144;
    warp_kquant_dot2<false>(w + row * rowBytes, w + next * rowBytes, nullptr, nullptr, cols, a, v0,
                            v1);
  } else {
    long long rowBytes = (long long)(cols >> 8) * 192, stride = q6k_scale_stride(cols);
    warp_kquant_dot2<true>(w + row * rowBytes, w + next * rowBytes, scales + row * stride,
                           scales + next * stride, cols, a, v0, v1);
  }
}

__device__ __forceinline__ bool is_kquant(int type, int cols) {
  return (type == TYPE_Q4_K || type == TYPE_Q6_K_SPLIT) && (cols & 255) == 0;
}

// Whether w (and, for Q6_K's split layout, its scales) and p are 16-byte aligned.
__device__ __forceinline__ bool kquant_aligned(const u8* w, const u8* scales, int type,
                                               const void* p) {
  return ((((unsigned long long)w) | ((unsigned long long)p) |
           (type == TYPE_Q6_K_SPLIT ? (unsigned long long)scales : 0ull)) &
          15ull) == 0;
}

// y[t, r] = Σ_c W[r, c]·x[t, c] for W of type TYPE_Q4_K (GGUF layout) or TYPE_Q6_K_SPLIT (scales:
// its second array); KQ_ROWS rows per warp, grid (ceil(rows / (warpsPerBlock · KQ_ROWS)), n). An
// unaligned pointer takes an element-wise path; another type writes NaN (caught by the tests).
extern "C" __global__ void matvec_kquant(const u8* w, const u8* scales, int type, const float* x,
                                         float* y, int rows, int cols, int n) {
  long long row, next;
  int t;
  if (!warp_two_rows(rows, n, row, next, t)) return;
  const float* xt = x + (long long)t * cols;
  float v0 = __int_as_float(0x7fc00000), v1 = v0;
  if (is_kquant(type, cols) && kquant_aligned(w, scales, type, xt)) {
    kquant_dot2(w, scales, type, row, next, cols, KqFloatX{xt}, v0, v1);
  } else if (is_kquant(type, cols)) {
    warp_elementwise_dot2(w, scales, type, row, next, cols, xt, v0, v1);
  }
  store_two_rows(y + (long long)t * rows, row, next, v0, v1);
}

// The same product over quantize_rows_q8's activation quants xq [n, cols] and scales xd [n, cols /
// 32] (matvec_split_q8x for the K-quants); grid as matvec_kquant. Unaligned pointers or another
// type write NaN (caught by the tests).
extern "C" __global__ void matvec_kquant_q8x(const u8* w, const u8* scales, int type,
                                             const signed char* xq, const float* xd, float* y,
                                             int rows, int cols, int n) {
  long long row, next;
  int t;
  if (!warp_two_rows(rows, n, row, next, t)) return;
  const signed char* xqt = xq + (long long)t * cols;
  float v0 = __int_as_float(0x7fc00000), v1 = v0;
  if (is_kquant(type, cols) && kquant_aligned(w, scales, type, xqt)) {
    kquant_dot2(w, scales, type, row, next, cols, KqInt8X{xqt, xd + (long long)t * (cols >> 5)},
                v0, v1);
  }
  store_two_rows(y + (long long)t * rows, row, next, v0, v1);
}

// out[t, :] = dequantized row tokens[t] of the embedding table (TransformerLayers.embed); scales
// as for matvec. The caller validates token ids on the host. Grid n, block any.
extern "C" __global__ void embed_rows(const u8* table, const u8* scales, int type,
                                      const int* tokens, float* out, int dim) {
  int t = blockIdx.x;
  long long row = tokens[t];
  for (int c = threadIdx.x; c < dim; c += blockDim.x)
    out[(long long)t * dim + c] = weight_any(table, scales, type, row, dim, c);
}

// o[0..3] ← d·q0 .. d·q3 in FP16 (fp16 = 1) or BF16, one 8-byte store (o 8-byte aligned).
__device__ __forceinline__ void store_scaled4(u16* o, float d, int q0, int q1, int q2, int q3,
                                              int fp16) {
  float v[4] = {d * (float)q0, d * (float)q1, d * (float)q2, d * (float)q3};
  u16 h[4];
#pragma unroll
  for (int e = 0; e < 4; e++) h[e] = fp16 ? float_to_half(v[e]) : float_to_bf16(v[e]);
  *(uint2*)o = make_uint2(h[0] | ((u32)h[1] << 16), h[2] | ((u32)h[3] << 16));
}

// o[0..16) ← v[0..16) in FP16 (fp16 = 1) or BF16, as two 16-byte stores (o 16-byte aligned).
__device__ __forceinline__ void store_halves16(u16* o, const float (&v)[16], int fp16) {
  u32 h[8];
#pragma unroll
  for (int e = 0; e < 8; e++) {
    u16 a = fp16 ? float_to_half(v[2 * e]) : float_to_bf16(v[2 * e]);
    u16 b = fp16 ? float_to_half(v[2 * e + 1]) : float_to_bf16(v[2 * e + 1]);
    h[e] = a | ((u32)b << 16);
  }
  ((uint4*)o)[0] = make_uint4(h[0], h[1], h[2], h[3]);
  ((uint4*)o)[1] = make_uint4(h[4], h[5], h[6], h[7]);
}

// out[rows, cols] in FP16 (half = 1) or BF16 (half = 0) ← the dequantized weight, for the cuBLAS
// prefill GEMM; scales as for matvec. Grid-stride over all elements.
extern "C" __global__ void dequantize_to_half(const u8* w, const u8* scales, int type, u16* out,
                                              int rows, int cols, int fp16) {
  long long total = (long long)rows * cols;
  long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  long long stride = (long long)gridDim.x * blockDim.x;
  if (is_split(type)) {
    // A thread per 16 bytes of an interleaved chunk, as lane l of matvec_split reads them: one
    // coalesced 16-byte load, its scales in one 8- or 16-byte load, and its values written as
    // runs of four halves that the warp's lanes write contiguously (the chunk layout above puts
    // lane l's word j at elements 128j + 4l .. + 3 for Q8_0; word w's low nibbles at 256w + 4l,
    // its high ones at 256w + 128 + 4l for Q4_0). Then each row's rest column by column.
    bool q8 = type == TYPE_Q8_0_SPLIT;
    int chunkElems = q8 ? 512 : 1024, chunks = cols / chunkElems, full = chunks * chunkElems;
    long long rowBytes = split_row_bytes(type, cols), scaleStride = split_scale_stride(cols);
    bool aligned =
        ((((unsigned long long)w) | ((unsigned long long)scales) | ((unsigned long long)out)) &
         15ull) == 0;
    long long pieces = aligned ? (long long)rows * chunks * 32 : 0;
    for (long long p = first; p < pieces; p += stride) {
      int lane = (int)(p & 31), g = lane >> 3;
      long long rc = p >> 5, row = rc / chunks;
      int f = (int)(rc - row * chunks);
      uint4 v = *(const uint4*)(w + row * rowBytes + (long long)f * 512 + 16 * lane);
      u32 words[4] = {v.x, v.y, v.z, v.w};
      const u16* sc = (const u16*)scales + row * scaleStride + (long long)f * (q8 ? 16 : 32);
      u16* o = out + row * cols + (long long)f * chunkElems + 4 * lane;
      if (q8) {
        uint2 s4 = *(const uint2*)(sc + 4 * g);  // blocks 4j + g, j = 0..3
        u32 sw[2] = {s4.x, s4.y};
#pragma unroll
        for (int j = 0; j < 4; j++) {
          u32 b = words[j];
          store_scaled4(o + 128 * j, half_to_float((u16)(sw[j >> 1] >> (16 * (j & 1)))),
                        (signed char)b, (signed char)(b >> 8), (signed char)(b >> 16),
                        (signed char)(b >> 24), fp16);
        }
      } else {
        uint4 s8 = *(const uint4*)(sc + 8 * g);  // blocks 4jj + g, jj = 0..7
        u32 sw[4] = {s8.x, s8.y, s8.z, s8.w};
#pragma unroll
        for (int k = 0; k < 8; k++) {  // k = 2w (low nibbles of word w), 2w + 1 (high ones)
          u32 b = (words[k >> 1] >> (4 * (k & 1))) & 0x0f0f0f0fu;
          store_scaled4(o + 128 * k, half_to_float((u16)(sw[k >> 1] >> (16 * (k & 1)))),
                        (int)(b & 15) - 8, (int)((b >> 8) & 15) - 8, (int)((b >> 16) & 15) - 8,
                        (int)(b >> 24) - 8, fp16);
        }
      }
    }
    int rest = aligned ? cols - full : cols;
    int from = aligned ? full : 0;
    for (long long i = first; i < (long long)rows * rest; i += stride) {
      long long row = i / rest;
      int col = from + (int)(i - row * rest);
      float val = split_weight(w, scales, type, row, cols, col);
      out[row * cols + col] = fp16 ? float_to_half(val) : float_to_bf16(val);
    }
    return;
  }
  if (is_kquant(type, cols) && kquant_aligned(w, scales, type, out)) {
    // A thread per 16 quant bytes, as lane i of a super-block's eight in matvec_kquant reads them:
    // its two runs of 16 elements written as two 32-byte pieces (neighbouring threads' runs are
    // adjacent), each value rounded as weight_flat's (bit-identical to the CPU's dequantization).
    bool q6 = type == TYPE_Q6_K_SPLIT;
    int sb = cols >> 8;
    long long rowBytes = (long long)sb * (q6 ? 192 : 144), stride6 = q6k_scale_stride(cols);
    for (long long p = first; p < (long long)rows * sb * 8; p += stride) {
      int i = (int)(p & 7);
      long long rs = p >> 3, row = rs / sb;
      int s = (int)(rs - row * sb);
      const u8* q = w + row * rowBytes;
      const u8* sc = q6 ? scales + row * stride6 : nullptr;
      // (row `row` twice: kq_load reads a warp's two rows)
      KqLoad v = q6 ? kq_load<true>(q, q, sc, sc, sb, s, i)    // ql, qh, scales, d
                    : kq_load<false>(q, q, sc, sc, sb, s, i);  // header, quants
      float lo[16], hi[16];
      u32 a[4] = {v.a1.x, v.a1.y, v.a1.z, v.a1.w};
      if (q6) {
        u32 ql[4] = {v.a0.x, v.a0.y, v.a0.z, v.a0.w};
        float d = half_to_float(v.d0);
        float dsl = d * sbyte_float(v.s0.x, i & 3), dsh = d * sbyte_float(v.s0.y, i & 3);
#pragma unroll
        for (int k = 0; k < 4; k++) {
          u32 wl = q6k_word(ql[k], a[k], i, false), wh = q6k_word(ql[k], a[k], i, true);
#pragma unroll
          for (int e = 0; e < 4; e++) {
            lo[4 * k + e] = dsl * (byte_float(wl, e) - 32.f);
            hi[4 * k + e] = dsh * (byte_float(wh, e) - 32.f);
          }
        }
      } else {
        float ds0, ds1, dm0, dm1;
        q4k_scales(v.a0, i, ds0, ds1, dm0, dm1);
#pragma unroll
        for (int k = 0; k < 4; k++) {
          u32 wl = a[k] & 0x0f0f0f0fu, wh = (a[k] >> 4) & 0x0f0f0f0fu;
#pragma unroll
          for (int e = 0; e < 4; e++) {
            lo[4 * k + e] = fmaf(byte_float(wl, e), ds0, -dm0);
            hi[4 * k + e] = fmaf(byte_float(wh, e), ds1, -dm1);
          }
        }
      }
      u16* o = out + row * cols + 256LL * s + kq_low(q6, i);
      store_halves16(o, lo, fp16);
      store_halves16(o + KQ_HIGH(q6), hi, fp16);
    }
    return;
  }
  if (type == TYPE_Q6_K_SPLIT || type == TYPE_Q4_K) {
    for (long long i = first; i < total; i += stride) {
      long long row = i / cols;
      float v = weight_any(w, scales, type, row, cols, (int)(i - row * cols));
      out[i] = fp16 ? float_to_half(v) : float_to_bf16(v);
    }
    return;
  }
  if (type == TYPE_Q8_0 || type == TYPE_Q4_0) {
    // A thread per 32-element block: one scale load, no index arithmetic per element.
    int blockBytes = type == TYPE_Q8_0 ? 34 : 18;
    for (long long b = first; b < total / 32; b += stride) {
      const u8* blk = w + b * blockBytes;
      float d = half_to_float((u16)(blk[0] | (blk[1] << 8)));
      u16* o = out + b * 32;
      for (int j = 0; j < 32; j++) {
        int q = type == TYPE_Q8_0 ? (int)(signed char)blk[2 + j]
                                  : (j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4)) - 8;
        float v = d * (float)q;
        o[j] = fp16 ? float_to_half(v) : float_to_bf16(v);
      }
    }
    return;
  }
  for (long long i = first; i < total; i += stride) {
    float v = weight_flat(w, type, i);
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
template <bool Q8>
__device__ void rmsnorm_rows_body(float* out, const float* x, const float* weight, int dim,
                                  float eps, signed char* xq, float* xd) {
  const float* xr = x + (long long)blockIdx.x * dim;
  float* outr = out + (long long)blockIdx.x * dim;
  float ss = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss);
  float scale = (float)(1.0 / sqrt((double)ss / dim + (double)eps));
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i] * scale * weight[i];
    outr[i] = v;
    if (Q8) quantize_block_store(v, (long long)blockIdx.x * dim + i, xq, xd);
  }
}

extern "C" __global__ void rmsnorm_rows(float* out, const float* x, const float* weight, int dim,
                                        float eps) {
  rmsnorm_rows_body<false>(out, x, weight, dim, eps, 0, 0);
}

// rmsnorm_rows that also writes its output as quantize_rows_q8 would (dim % 32 == 0): the input of
// an int8-activation product without a launch of its own.
extern "C" __global__ void rmsnorm_rows_q8(float* out, const float* x, const float* weight,
                                           int dim, float eps, signed char* xq, float* xd) {
  rmsnorm_rows_body<true>(out, x, weight, dim, eps, xq, xd);
}

// gate[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + exp(−x)) (Ops.swiglu); with Q8 also
// quantized as quantize_rows_q8 would (n and the row width multiples of 32, so the grid-stride
// steps keep each warp on one whole block).
template <bool Q8>
__device__ void swiglu_body(float* gate, const float* up, long long n, signed char* xq, float* xd) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float g = gate[i];
    float v = g / (1.f + expf(-g)) * up[i];
    gate[i] = v;
    if (Q8) quantize_block_store(v, i, xq, xd);
  }
}

extern "C" __global__ void swiglu(float* gate, const float* up, long long n) {
  swiglu_body<false>(gate, up, n, 0, 0);
}

extern "C" __global__ void swiglu_q8(float* gate, const float* up, long long n, signed char* xq,
                                     float* xd) {
  swiglu_body<true>(gate, up, n, xq, xd);
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

// ---- KV cache elements ---------------------------------------------------------------------------
// A paged cache layer holds float (F32) or IEEE half (F16, KvCacheType) elements: the kernels
// that read or write pages are templates over the element type KV, instantiated with a "_f16"
// suffix for half. Readers widen to float; writers round to nearest even.

__device__ __forceinline__ float kv_get(const float* p) { return *p; }
__device__ __forceinline__ float kv_get(const u16* p) { return half_to_float(*p); }
__device__ __forceinline__ void kv_put(float* p, float v) { *p = v; }
__device__ __forceinline__ void kv_put(u16* p, float v) { *p = float_to_half(v); }
// Four consecutive elements (16 bytes of float, 8 of half: aligned, as kvDim and offsets are
// multiples of 4).
__device__ __forceinline__ float4 kv_get4(const float* p) { return load4(p); }
__device__ __forceinline__ float4 kv_get4(const u16* p) {
  uint2 h = *(const uint2*)p;
  return make_float4(half_to_float((u16)(h.x & 0xffffu)), half_to_float((u16)(h.x >> 16)),
                     half_to_float((u16)(h.y & 0xffffu)), half_to_float((u16)(h.y >> 16)));
}

// Rotates nHeads heads of one row (head h at row + h·headStride) over their first rotDims dims to
// position pos: pairs (2i, 2i+1) when interleaved, (i, i + rotDims/2) otherwise; the block's
// threads share out the (head, pair) work. Angles pos·invFreq[i] and their cos/sin are formed in
// double, as the CPU does, so they stay exact at positions in the millions.
__device__ void rope_row(float* row, double pos, const double* invFreq, int nHeads, int rotDims,
                         int headStride, int interleaved) {
  int half = rotDims / 2;
  for (int j = threadIdx.x; j < nHeads * half; j += blockDim.x) {
    int h = j / half, i = j % half;
    double s, c;
    sincos(pos * invFreq[i], &s, &c);
    float cf = (float)c, sf = (float)s;
    float* head = row + (long long)h * headStride;
    int a = interleaved ? 2 * i : i;
    int b = interleaved ? 2 * i + 1 : i + half;
    float x0 = head[a], x1 = head[b];
    head[a] = x0 * cf - x1 * sf;
    head[b] = x0 * sf + x1 * cf;
  }
}

// Rotary embedding (Rope.apply) of row t's nHeads heads (at x + t·rowStride) to position
// positions[t]; any position per row, so SelfExtend's grouped positions use the same kernel.
// Grid n.
extern "C" __global__ void rope_rows(float* x, const int* positions, const double* invFreq,
                                     int nHeads, int headDim, int rowStride, int interleaved) {
  int t = blockIdx.x;
  rope_row(x + (long long)t * rowStride, (double)positions[t], invFreq, nHeads, headDim, headDim,
           interleaved);
}

// One decode/prefill launch instead of four (rope_rows on q, rope_rows on k, kv_store of k and of
// v): row t's q heads [heads, headDim] (at q + t·heads·headDim) and k heads (at k + t·kvDim) are
// rotated to positions[t] exactly as rope_rows does, then the rotated k row and the v row are
// written at slot start + t of the paged cache layer. Grid n.
template <typename KV>
__device__ void rope_store_body(float* q, float* k, const float* v, const int* positions,
                                const double* invFreq, int heads, int kvHeads, int headDim,
                                int interleaved, const u64* kPages, const u64* vPages,
                                int pageSize, int start) {
  int t = blockIdx.x;
  int half = headDim / 2;
  int kvDim = kvHeads * headDim;
  double pos = (double)positions[t];
  float* qr = q + (long long)t * heads * headDim;
  float* kr = k + (long long)t * kvDim;
  for (int j = threadIdx.x; j < (heads + kvHeads) * half; j += blockDim.x) {
    int h = j / half, i = j % half;
    double s, c;
    sincos(pos * invFreq[i], &s, &c);
    float cf = (float)c, sf = (float)s;
    float* head = h < heads ? qr + h * headDim : kr + (h - heads) * headDim;
    int a = interleaved ? 2 * i : i;
    int b = interleaved ? 2 * i + 1 : i + half;
    float x0 = head[a], x1 = head[b];
    head[a] = x0 * cf - x1 * sf;
    head[b] = x0 * sf + x1 * cf;
  }
  __syncthreads();  // the k row is rotated
  int p = start + t;
  long long at = (long long)(p % pageSize) * kvDim;
  KV* kp = (KV*)kPages[p / pageSize] + at;
  KV* vp = (KV*)vPages[p / pageSize] + at;
  const float* vr = v + (long long)t * kvDim;
  for (int d = threadIdx.x; d < kvDim; d += blockDim.x) {
    kv_put(kp + d, kr[d]);
    kv_put(vp + d, vr[d]);
  }
}

#define ROPE_STORE(NAME, KV)                                                                     \
  extern "C" __global__ void NAME(float* q, float* k, const float* v, const int* positions,      \
                                  const double* invFreq, int heads, int kvHeads, int headDim,    \
                                  int interleaved, const u64* kPages, const u64* vPages,         \
                                  int pageSize, int start) {                                     \
    rope_store_body<KV>(q, k, v, positions, invFreq, heads, kvHeads, headDim, interleaved,       \
                        kPages, vPages, pageSize, start);                                        \
  }
ROPE_STORE(rope_store_rows, float)
ROPE_STORE(rope_store_rows_f16, u16)

// x += delta, then out = RMSNorm(x)·weight, per row (add_inplace then rmsnorm_rows in one launch,
// with the same per-thread order, so the same floats). out may be delta. Grid n.
template <bool Q8>
__device__ void add_rmsnorm_rows_body(float* x, const float* delta, float* out,
                                      const float* weight, int dim, float eps, signed char* xq,
                                      float* xd) {
  float* xr = x + (long long)blockIdx.x * dim;
  const float* dr = delta + (long long)blockIdx.x * dim;
  float* outr = out + (long long)blockIdx.x * dim;
  float ss = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float e = xr[i] + dr[i];
    xr[i] = e;
    ss += e * e;
  }
  ss = block_sum(ss);
  float scale = (float)(1.0 / sqrt((double)ss / dim + (double)eps));
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i] * scale * weight[i];
    outr[i] = v;
    if (Q8) quantize_block_store(v, (long long)blockIdx.x * dim + i, xq, xd);
  }
}

extern "C" __global__ void add_rmsnorm_rows(float* x, const float* delta, float* out,
                                            const float* weight, int dim, float eps) {
  add_rmsnorm_rows_body<false>(x, delta, out, weight, dim, eps, 0, 0);
}

// add_rmsnorm_rows that also quantizes its output (rmsnorm_rows_q8).
extern "C" __global__ void add_rmsnorm_rows_q8(float* x, const float* delta, float* out,
                                               const float* weight, int dim, float eps,
                                               signed char* xq, float* xd) {
  add_rmsnorm_rows_body<true>(x, delta, out, weight, dim, eps, xq, xd);
}

// Writes rows [0, n) of src ([n, kvDim]) at positions [start, start + n) of a paged cache layer.
// Grid-stride over n·kvDim.
template <typename KV>
__device__ void kv_store_body(const u64* pages, int pageSize, const float* src, int start, int n,
                              int kvDim) {
  long long total = (long long)n * kvDim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    int t = (int)(i / kvDim), d = (int)(i % kvDim);
    int p = start + t;
    KV* page = (KV*)pages[p / pageSize];
    kv_put(&page[(long long)(p % pageSize) * kvDim + d], src[i]);
  }
}

// Reads positions [start, start + n) of a paged cache layer into dst ([n, kvDim]): kv_store's
// inverse. Grid-stride over n·kvDim.
template <typename KV>
__device__ void kv_gather_body(const u64* pages, int pageSize, float* dst, int start, int n,
                               int kvDim) {
  long long total = (long long)n * kvDim;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    int t = (int)(i / kvDim), d = (int)(i % kvDim);
    int p = start + t;
    const KV* page = (const KV*)pages[p / pageSize];
    dst[i] = kv_get(&page[(long long)(p % pageSize) * kvDim + d]);
  }
}

#define KV_COPY(NAME, BODY, KV, SRC)                                                             \
  extern "C" __global__ void NAME(const u64* pages, int pageSize, SRC, int start, int n,         \
                                  int kvDim) {                                                   \
    BODY<KV>(pages, pageSize, rows, start, n, kvDim);                                            \
  }
KV_COPY(kv_store, kv_store_body, float, const float* rows)
KV_COPY(kv_store_f16, kv_store_body, u16, const float* rows)
KV_COPY(kv_gather, kv_gather_body, float, float* rows)
KV_COPY(kv_gather_f16, kv_gather_body, u16, float* rows)

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
// Keys: when `selected` is non-null, the `count` positions selected[t·selStride + (perKvHead ?
// kvHead·count : 0) + i], −1 entries skipped (sparse, TopK.Candidates.padded); else, when `ranges`
// is non-null, the contiguous positions [ranges[2t], ranges[2t + 1]) (a per-row range, empty when
// the two are equal); else positions [0, causalStart + t + 1) (causal, dense). GQA: head h reads KV
// head h / (heads / kvHeads).
// Grid (n, heads), block ATT_THREADS, headDim ≤ MAX_HEAD_DIM.
template <typename KV>
__device__ void attention_body(const float* q, const u64* kPages, const u64* vPages, int pageSize,
                               float* out, float* lse, int heads, int kvHeads, int headDim,
                               float scale, int causalStart, const int* ranges,
                               const int* selected, int count, int selStride, int perKvHead) {
  __shared__ float qs[MAX_HEAD_DIM];
  __shared__ float p[ATT_THREADS];
  __shared__ int rowsOf[ATT_THREADS];
  int t = blockIdx.x, h = blockIdx.y;
  int kvDim = kvHeads * headDim;
  int kvHead = h / (heads / kvHeads);
  const float* qr = q + ((long long)t * heads + h) * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = qr[d];
  __syncthreads();

  // Key i of the row is slot first + i (dense) or sel[i] (sparse).
  int first = 0, len = causalStart + t + 1;
  if (selected != 0) len = count;
  else if (ranges != 0) first = ranges[2 * t], len = ranges[2 * t + 1] - first;
  const int* sel = selected == 0 ? 0 : selected + (long long)t * selStride + (perKvHead ? kvHead * count : 0);
  float m = NEG_INF;   // running max of the scaled scores
  float l = 0.f;       // running Σ exp(score − m)
  float acc0 = 0.f, acc1 = 0.f;  // output dims threadIdx.x and threadIdx.x + ATT_THREADS
  for (int base = 0; base < len; base += ATT_THREADS) {
    int i = base + threadIdx.x;
    float s = NEG_INF;
    int pos = -1;
    if (i < len) {
      pos = sel == 0 ? first + i : sel[i];
      if (pos >= 0) {
        const KV* k = (const KV*)kPages[pos / pageSize] + (long long)(pos % pageSize) * kvDim + kvHead * headDim;
        float dot = 0.f;
        for (int d = 0; d < headDim; d++) dot += qs[d] * kv_get(k + d);
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
        const KV* v = (const KV*)vPages[pj / pageSize] + (long long)(pj % pageSize) * kvDim + kvHead * headDim;
        if (threadIdx.x < headDim) acc0 += p[j] * kv_get(v + threadIdx.x);
        if (threadIdx.x + ATT_THREADS < headDim) acc1 += p[j] * kv_get(v + threadIdx.x + ATT_THREADS);
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

#define ATTENTION(NAME, KV)                                                                      \
  extern "C" __global__ void NAME(const float* q, const u64* kPages, const u64* vPages,          \
                                  int pageSize, float* out, float* lse, int heads, int kvHeads,  \
                                  int headDim, float scale, int causalStart, const int* ranges,  \
                                  const int* selected, int count, int selStride,                 \
                                  int perKvHead) {                                               \
    attention_body<KV>(q, kPages, vPages, pageSize, out, lse, heads, kvHeads, headDim, scale,    \
                       causalStart, ranges, selected, count, selStride, perKvHead);              \
  }
ATTENTION(attention, float)
ATTENTION(attention_f16, u16)

// ---- split-K attention (flash decoding) ---------------------------------------------------------

#define SPLIT_WARPS 4
#define SPLIT_THREADS (SPLIT_WARPS * 32)

// The same attention as `attention` above (same keys, same Partial), computed for speed: one block
// per (query row t, KV head, key split) serves all G = heads / kvHeads query heads of the group, so
// each key and value row is read once per group, and the key range is split over blockIdx.y so a
// single decode row still fills the device. Eight lanes share a key (each holds HD / 32 float4
// chunks of the row, a coalesced 128-byte read per chunk), a warp takes four keys per step, and
// every lane group keeps its own online softmax (m, l, acc) over its keys; the groups, then the
// warps, are merged by the log-sum-exp rule (ALGORITHMS.md §4.2). The block writes the split's
// unnormalized output and (max, Σ exp) to partO [n·heads, splits, HD] and partML [n·heads,
// splits, 2]; attention_combine merges the splits. Split s takes the row's keys i in
// [s·keysPerSplit, min(len, (s + 1)·keysPerSplit)), len the row's key count (its range's length in
// ranges mode). Grid (n·kvHeads, splits), block SPLIT_THREADS.
template <int GMAX, int HD, typename KV>
__device__ void attention_split_body(const float* __restrict__ q, const u64* __restrict__ kPages,
                                     const u64* __restrict__ vPages, int pageSize,
                                     float* __restrict__ partO, float* __restrict__ partML,
                                     int heads, int kvHeads, float scale, int causalStart,
                                     const int* __restrict__ ranges,
                                     const int* __restrict__ selected, int count, int selStride,
                                     int perKvHead, int splits, int keysPerSplit) {
  constexpr int C = HD / 32;
  __shared__ float qs[GMAX][HD];
  __shared__ float warpML[SPLIT_WARPS][GMAX][2];
  __shared__ float warpO[SPLIT_WARPS][GMAX][HD];
  int t = blockIdx.x / kvHeads, kvHead = blockIdx.x % kvHeads, split = blockIdx.y;
  int G = heads / kvHeads;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = lane & 7, grp = lane >> 3;
  int kvDim = kvHeads * HD;
  const float* qt = q + ((long long)t * heads + (long long)kvHead * G) * HD;
  for (int i = threadIdx.x; i < GMAX * HD; i += blockDim.x) qs[i / HD][i % HD] = i < G * HD ? qt[i] : 0.f;
  __syncthreads();

  // Key i of the row is slot first + i (dense) or sel[i] (sparse); the splits cut i.
  int first = 0, len = causalStart + t + 1;
  if (selected != 0) len = count;
  else if (ranges != 0) first = ranges[2 * t], len = ranges[2 * t + 1] - first;
  const int* sel = selected == 0 ? 0 : selected + (long long)t * selStride + (perKvHead ? kvHead * count : 0);
  int begin = split * keysPerSplit;
  int end = min(len, begin + keysPerSplit);
  float m[GMAX], l[GMAX];
  float4 acc[GMAX][C];
#pragma unroll
  for (int g = 0; g < GMAX; g++) {
    m[g] = NEG_INF;
    l[g] = 0.f;
#pragma unroll
    for (int c = 0; c < C; c++) acc[g][c] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  // The loop bound depends on the warp only, so the whole warp runs each step (full-mask shuffles).
  for (int i0 = begin + warp * 4; i0 < end; i0 += SPLIT_WARPS * 4) {
    int i = i0 + grp;
    int pos = i < end ? (sel == 0 ? first + i : sel[i]) : -1;
    float4 kc[C], vc[C];
    if (pos >= 0) {
      long long row = (long long)(pos % pageSize) * kvDim + kvHead * HD;
      const KV* kr = (const KV*)kPages[pos / pageSize] + row;
      const KV* vr = (const KV*)vPages[pos / pageSize] + row;
#pragma unroll
      for (int c = 0; c < C; c++) {
        kc[c] = kv_get4(kr + (c * 8 + sub) * 4);
        vc[c] = kv_get4(vr + (c * 8 + sub) * 4);
      }
    } else {
#pragma unroll
      for (int c = 0; c < C; c++) kc[c] = vc[c] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int g = 0; g < GMAX; g++) {
      if (g >= G) break;  // uniform over the block
      float d = 0.f;
#pragma unroll
      for (int c = 0; c < C; c++) {
        float4 qq = load4(&qs[g][(c * 8 + sub) * 4]);
        d += qq.x * kc[c].x + qq.y * kc[c].y + qq.z * kc[c].z + qq.w * kc[c].w;
      }
      d += __shfl_xor_sync(0xffffffffu, d, 1);
      d += __shfl_xor_sync(0xffffffffu, d, 2);
      d += __shfl_xor_sync(0xffffffffu, d, 4);
      if (pos < 0) continue;
      float score = d * scale;
      if (score > m[g]) {
        float correction = m[g] == NEG_INF ? 0.f : expf(m[g] - score);
        l[g] *= correction;
#pragma unroll
        for (int c = 0; c < C; c++) {
          acc[g][c].x *= correction;
          acc[g][c].y *= correction;
          acc[g][c].z *= correction;
          acc[g][c].w *= correction;
        }
        m[g] = score;
      }
      float e = expf(score - m[g]);
      l[g] += e;
#pragma unroll
      for (int c = 0; c < C; c++) {
        acc[g][c].x += e * vc[c].x;
        acc[g][c].y += e * vc[c].y;
        acc[g][c].z += e * vc[c].z;
        acc[g][c].w += e * vc[c].w;
      }
    }
  }
  // Merge the warp's four lane groups (lanes sub, sub + 8, sub + 16, sub + 24).
#pragma unroll
  for (int g = 0; g < GMAX; g++) {
    if (g >= G) break;
    float mm = fmaxf(m[g], __shfl_xor_sync(0xffffffffu, m[g], 8));
    mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 16));
    float f = m[g] == NEG_INF ? 0.f : expf(m[g] - mm);
    float ll = l[g] * f;
    ll += __shfl_xor_sync(0xffffffffu, ll, 8);
    ll += __shfl_xor_sync(0xffffffffu, ll, 16);
#pragma unroll
    for (int c = 0; c < C; c++) {
      float4 a = acc[g][c];
      a.x *= f; a.y *= f; a.z *= f; a.w *= f;
      a.x += __shfl_xor_sync(0xffffffffu, a.x, 8);
      a.y += __shfl_xor_sync(0xffffffffu, a.y, 8);
      a.z += __shfl_xor_sync(0xffffffffu, a.z, 8);
      a.w += __shfl_xor_sync(0xffffffffu, a.w, 8);
      a.x += __shfl_xor_sync(0xffffffffu, a.x, 16);
      a.y += __shfl_xor_sync(0xffffffffu, a.y, 16);
      a.z += __shfl_xor_sync(0xffffffffu, a.z, 16);
      a.w += __shfl_xor_sync(0xffffffffu, a.w, 16);
      if (grp == 0) {
        int d0 = (c * 8 + sub) * 4;
        warpO[warp][g][d0] = a.x;
        warpO[warp][g][d0 + 1] = a.y;
        warpO[warp][g][d0 + 2] = a.z;
        warpO[warp][g][d0 + 3] = a.w;
      }
    }
    if (lane == 0) {
      warpML[warp][g][0] = mm;
      warpML[warp][g][1] = ll;
    }
  }
  __syncthreads();
  // Merge the warps and write the split's partial.
  for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
    int g = idx / HD, d = idx % HD;
    float mm = NEG_INF;
    for (int w = 0; w < SPLIT_WARPS; w++) mm = fmaxf(mm, warpML[w][g][0]);
    float o = 0.f, ll = 0.f;
    for (int w = 0; w < SPLIT_WARPS; w++) {
      float f = warpML[w][g][0] == NEG_INF ? 0.f : expf(warpML[w][g][0] - mm);
      o += warpO[w][g][d] * f;
      ll += warpML[w][g][1] * f;
    }
    long long row = (long long)t * heads + (long long)kvHead * G + g;
    partO[(row * splits + split) * HD + d] = o;
    if (d == 0) {
      partML[(row * splits + split) * 2] = mm;
      partML[(row * splits + split) * 2 + 1] = ll;
    }
  }
}

#define ATTENTION_SPLIT(G, D, KV, SUFFIX)                                                        \
  extern "C" __global__ void __launch_bounds__(SPLIT_THREADS)                                    \
      attention_split_g##G##_d##D##SUFFIX(                                                       \
      const float* q, const u64* kPages, const u64* vPages, int pageSize, float* partO,         \
      float* partML, int heads, int kvHeads, float scale, int causalStart, const int* ranges,   \
      const int* selected, int count, int selStride, int perKvHead, int splits,                 \
      int keysPerSplit) {                                                                       \
    attention_split_body<G, D, KV>(q, kPages, vPages, pageSize, partO, partML, heads,         \
                                   kvHeads, scale, causalStart, ranges, selected, count,         \
                                   selStride, perKvHead, splits, keysPerSplit);                  \
  }
// Both cache element types of a (group bound, head dim).
#define ATTENTION_SPLIT_KV(G, D) ATTENTION_SPLIT(G, D, float, ) ATTENTION_SPLIT(G, D, u16, _f16)
ATTENTION_SPLIT_KV(1, 64)
ATTENTION_SPLIT_KV(2, 64)
ATTENTION_SPLIT_KV(4, 64)
ATTENTION_SPLIT_KV(8, 64)
ATTENTION_SPLIT_KV(1, 128)
ATTENTION_SPLIT_KV(2, 128)
ATTENTION_SPLIT_KV(4, 128)
ATTENTION_SPLIT_KV(8, 128)

// out[row, :] = Σ_s partO[row, s]·exp(M_s − M) / Σ_s L_s·exp(M_s − M) and lse[row] = M + ln Σ…
// over the splits of attention_split (ALGORITHMS.md §4.2); an empty key set gives 0 and −∞.
// Grid n·heads, block any.
template <bool Q8>
__device__ void attention_combine_body(const float* partO, const float* partML, float* out,
                                       float* lse, int headDim, int splits, signed char* xq,
                                       float* xd) {
  long long row = blockIdx.x;
  const float* ml = partML + row * splits * 2;
  float mm = NEG_INF;
  for (int s = 0; s < splits; s++) mm = fmaxf(mm, ml[2 * s]);
  float ll = 0.f;
  for (int s = 0; s < splits; s++)
    if (ml[2 * s] != NEG_INF) ll += ml[2 * s + 1] * expf(ml[2 * s] - mm);
  float inv = ll > 0.f ? 1.f / ll : 0.f;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; s++)
      if (ml[2 * s] != NEG_INF) o += partO[(row * splits + s) * headDim + d] * expf(ml[2 * s] - mm);
    out[row * headDim + d] = o * inv;
    if (Q8) quantize_block_store(o * inv, row * headDim + d, xq, xd);
  }
  if (lse != 0 && threadIdx.x == 0) lse[row] = ll > 0.f ? mm + logf(ll) : NEG_INF;
}

extern "C" __global__ void attention_combine(const float* partO, const float* partML, float* out,
                                             float* lse, int headDim, int splits) {
  attention_combine_body<false>(partO, partML, out, lse, headDim, splits, 0, 0);
}

// attention_combine that also writes the output's int8 form (quantize_rows_q8's math; headDim a
// multiple of 32, so a warp's 32 dimensions are one block of the row [heads · headDim]): the
// input of the output projection over int8 activations without a launch of its own.
extern "C" __global__ void attention_combine_q8(const float* partO, const float* partML,
                                                float* out, float* lse, int headDim, int splits,
                                                signed char* xq, float* xd) {
  attention_combine_body<true>(partO, partML, out, lse, headDim, splits, xq, xd);
}

// ---- tensor-core prefill attention ---------------------------------------------------------------

#define TC_WARPS 4
#define TC_ROWS (TC_WARPS * 16)
#define TC_KEYS 64

__device__ __forceinline__ u32 pack_half2(float lo, float hi) {
  return (u32)float_to_half(lo) | ((u32)float_to_half(hi) << 16);
}

// d += a·b for one 16×8×16 tile on the tensor cores: FP16 a (16×16, row major) and b (16×8, column
// major), FP32 d. Fragments as the PTX ISA lays them out for mma.m16n8k16 (g = lane / 4, c = 2·(lane
// % 4)): a = {(g, c..c+1), (g+8, c..c+1), (g, c+8..c+9), (g+8, c+8..c+9)}, b = {(k = c..c+1, n = g),
// (k = c+8..c+9, n = g)}, d = {(g, c), (g, c+1), (g+8, c), (g+8, c+1)}.
__device__ __forceinline__ void mma16816(float* d, const u32* a, const u32* b) {
#if defined(LONGCTX_EMULATE)
  emulated_mma16816(d, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // no m16n8k16 before sm_80; CudaKernels never launches it there
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

#if !defined(LONGCTX_EMULATE)
__device__ __forceinline__ u32 shared_address(const void* p) {
  return (u32)__cvta_generic_to_shared(p);
}
#endif

// 16 bytes global → shared memory without passing through registers (cp.async, sm_80+), made by
// the next cp_async_wait_all; valid = false writes 16 zero bytes and reads nothing (src must
// still point into an allocation).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#if defined(LONGCTX_EMULATE)
  emulated_cp_async16(dst, src, valid);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // CudaKernels launches the kernels using it on sm_80+ only
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(dst)),
               "l"(src), "r"(valid ? 16 : 0)
               : "memory");
#endif
}

// Closes this thread's group of cp.async copies issued so far.
__device__ __forceinline__ void cp_async_commit() {
#if !defined(LONGCTX_EMULATE) && !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits for every cp.async copy this thread issued (other threads' copies need a barrier too).
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(LONGCTX_EMULATE)
  emulated_cp_async_wait_all();
#elif !(defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
  asm volatile("cp.async.wait_group 0;" ::: "memory");
#endif
}

// Four 8×8 FP16 matrices from shared memory into mma fragments (ldmatrix, sm_75+): lane 8m + i
// gives the address of row i of matrix m (16-byte aligned); r[m] receives matrix m's halves at row
// lane / 4, columns 2·(lane % 4) and 2·(lane % 4) + 1 — with `trans`, those at column lane / 4, rows
// 2·(lane % 4) and 2·(lane % 4) + 1.
template <bool TRANS>
__device__ __forceinline__ void ldmatrix_x4(u32* r, const u16* row) {
#if defined(LONGCTX_EMULATE)
  emulated_ldmatrix_x4(r, row, TRANS);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  if (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
#endif
}

// Dense attention of a prefill chunk on the tensor cores, FlashAttention-2 style: the same keys
// and Partial as `attention` without `selected` (row t sees positions [0, causalStart + t], or,
// when `ranges` is non-null, [ranges[2t], ranges[2t + 1]), an empty range giving 0 and LSE −∞),
// with Q, K and V rounded to FP16 for the products and everything else (scores, softmax,
// accumulators) in FP32.
// A block takes TC_ROWS query rows of one head, 16 per warp; key tiles of TC_KEYS rows are staged
// in shared memory as FP16 (row major, rows of HD + 8 halves: coalesced stores, and the eight
// rows of an ldmatrix 8×8 matrix in distinct bank groups); the B fragments come by ldmatrix (K) and
// ldmatrix.trans (V), four 8×8 matrices an instruction. S = Q·Kᵀ stays in registers, the online
// softmax (base 2: one ex2 a score; masks only on tiles crossing a row's window bound) rescales
// the output accumulators there, and S's accumulator layout is reused as P's A fragments for
// O += P·V. The block's key window is the union hull [min first, max end) of its rows' keys
// (causal: [0, causalStart + last row + 1)); a warp skips the tiles outside its own rows' hull.
// With splits > 1 the window is cut from its start into ranges of keysPerSplit (a multiple of
// TC_KEYS), one per blockIdx.y / heads, the last taking whatever remains (a ranges window may be
// longer than the longest range the caller sized the splits with), and the blocks write partials
// for attention_combine (as attention_split does), so a few rows over a long context still fill
// the device.
// With HPB = 2 a block takes the same rows for two heads of one GQA group (TC_WARPS warps each):
// every K/V tile is read from the cache and converted once for both, halving the cache traffic.
// Grid (ceil(n / TC_ROWS), heads / HPB · splits), block HPB·TC_WARPS·32. The helpers below, then
// the kernel body (attention_prefill_tc_body).

// Four cache elements as the FP16 tile's 4 halves: float rounded, half copied.
__device__ __forceinline__ uint2 kv_half4(const float* p) {
  float4 v = load4(p);
  return make_uint2(pack_half2(v.x, v.y), pack_half2(v.z, v.w));
}
__device__ __forceinline__ uint2 kv_half4(const u16* p) { return *(const uint2*)p; }

// Key windows of a tensor-core prefill lane's two rows (A = row g, B = row g + 8 of its warp's 16),
// of its warp and of its block: row t sees keys [first, end), rows past n none; causal: [0,
// causalStart + t + 1), with `ranges`: [ranges[2t], ranges[2t + 1]). The block's window
// [blockFirst, blockEnd) and the warp's span their rows' keys (empty: end ≤ first). Every thread of
// the block must call it (a barrier in ranges mode).
struct TcWindows {
  int firstA, endA, firstB, endB;
  int blockFirst, blockEnd, warpFirst, warpEnd;
};

__device__ __forceinline__ TcWindows tc_windows(int n, int causalStart, const int* __restrict__ ranges,
                                                int warpInHead, int g) {
  TcWindows w;
  int row0 = blockIdx.x * TC_ROWS + warpInHead * 16;
  int rowA = row0 + g, rowB = row0 + g + 8;
  w.firstA = w.endA = w.firstB = w.endB = 0;
  if (ranges == 0) {
    if (rowA < n) w.endA = causalStart + rowA + 1;
    if (rowB < n) w.endB = causalStart + rowB + 1;
    w.blockFirst = w.warpFirst = 0;
    w.blockEnd = causalStart + min(n, (int)(blockIdx.x + 1) * TC_ROWS);
    w.warpEnd = row0 < n ? causalStart + min(row0 + 16, n) : 0;
    return w;
  }
  __shared__ int rowFirst[TC_ROWS], rowEnd[TC_ROWS];
  for (int i = threadIdx.x; i < TC_ROWS; i += blockDim.x) {
    int t = blockIdx.x * TC_ROWS + i;
    rowFirst[i] = t < n ? ranges[2 * t] : 0;
    rowEnd[i] = t < n ? ranges[2 * t + 1] : 0;
  }
  __syncthreads();
  w.firstA = rowFirst[warpInHead * 16 + g];
  w.endA = rowEnd[warpInHead * 16 + g];
  w.firstB = rowFirst[warpInHead * 16 + g + 8];
  w.endB = rowEnd[warpInHead * 16 + g + 8];
  w.blockFirst = w.warpFirst = 0x7fffffff;
  w.blockEnd = w.warpEnd = 0;
  for (int i = 0; i < TC_ROWS; i++) {
    int f = rowFirst[i], e = rowEnd[i];
    if (f >= e) continue;  // empty
    w.blockFirst = min(w.blockFirst, f);
    w.blockEnd = e > w.blockEnd ? e : w.blockEnd;
    if (i / 16 == warpInHead) {
      w.warpFirst = min(w.warpFirst, f);
      w.warpEnd = e > w.warpEnd ? e : w.warpEnd;
    }
  }
  if (w.blockEnd <= w.blockFirst) w.blockFirst = w.blockEnd = 0;
  return w;
}

// A tensor-core prefill lane's results for its rows A and B of head h: the output accumulators o
// (columns 8j + c, c + 1), running max m (base 2: scores · log2 e; converted to natural log here)
// and the lane's part of Σ 2^(s − m) (summed over the row's four lanes here). With splits > 1 the
// split's partial for attention_combine (unnormalized output, (max, Σ exp)), else the normalized
// output and, when lse ≠ 0, the LSE.
template <int HD>
__device__ __forceinline__ void tc_write(float (*o)[4], float mA, float mB, float lA, float lB,
                                         int rowA, int rowB, int n, int h, int heads, int c,
                                         int lane, float* __restrict__ out,
                                         float* __restrict__ lse, int splits, int split,
                                         float* __restrict__ partO, float* __restrict__ partML) {
  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  const float LN2 = 0.6931471805599453f;  // Σ 2^(s − m) = Σ e^(s·ln 2 − m·ln 2)
  mA = mA == NEG_INF ? NEG_INF : mA * LN2;
  mB = mB == NEG_INF ? NEG_INF : mB * LN2;
  if (splits > 1) {
    // A split's partial for attention_combine: unnormalized output, (max, Σ exp).
#pragma unroll
    for (int j = 0; j < HD / 8; j++) {
      int d = 8 * j + c;
      if (rowA < n) {
        float* oa = partO + (((long long)rowA * heads + h) * splits + split) * HD + d;
        oa[0] = o[j][0];
        oa[1] = o[j][1];
      }
      if (rowB < n) {
        float* ob = partO + (((long long)rowB * heads + h) * splits + split) * HD + d;
        ob[0] = o[j][2];
        ob[1] = o[j][3];
      }
    }
    if ((lane & 3) == 0) {
      if (rowA < n) {
        float* ml = partML + (((long long)rowA * heads + h) * splits + split) * 2;
        ml[0] = mA;
        ml[1] = lA;
      }
      if (rowB < n) {
        float* ml = partML + (((long long)rowB * heads + h) * splits + split) * 2;
        ml[0] = mB;
        ml[1] = lB;
      }
    }
    return;
  }
  float invA = lA > 0.f ? 1.f / lA : 0.f, invB = lB > 0.f ? 1.f / lB : 0.f;
#pragma unroll
  for (int j = 0; j < HD / 8; j++) {
    int d = 8 * j + c;
    if (rowA < n) {
      float* oa = out + ((long long)rowA * heads + h) * HD + d;
      oa[0] = o[j][0] * invA;
      oa[1] = o[j][1] * invA;
    }
    if (rowB < n) {
      float* ob = out + ((long long)rowB * heads + h) * HD + d;
      ob[0] = o[j][2] * invB;
      ob[1] = o[j][3] * invB;
    }
  }
  if (lse != 0 && (lane & 3) == 0) {
    if (rowA < n) lse[(long long)rowA * heads + h] = lA > 0.f ? mA + logf(lA) : NEG_INF;
    if (rowB < n) lse[(long long)rowB * heads + h] = lB > 0.f ? mB + logf(lB) : NEG_INF;
  }
}

// A tensor-core prefill lane's Q fragments (A operands) of head h for the HD / 16 slices of the
// head dimension, rounded to FP16 (rows past n are zero).
template <int HD>
__device__ __forceinline__ void tc_load_q(u32 (*qa)[4], const float* __restrict__ q, int rowA,
                                          int rowB, int n, int h, int heads, int c) {
#pragma unroll
  for (int sl = 0; sl < HD / 16; sl++) {
#pragma unroll
    for (int r = 0; r < 4; r++) {
      int t = (r & 1) ? rowB : rowA;
      int d = sl * 16 + c + ((r & 2) ? 8 : 0);
      const float* qr = q + ((long long)t * heads + h) * HD + d;
      qa[sl][r] = t < n ? pack_half2(qr[0], qr[1]) : 0u;
    }
  }
}

// S = Q·Kᵀ of one TC_KEYS-key tile for a warp's 16 rows: `ks` the tile's keys (row = key, FP16,
// rows of HD + 8 halves), 8 keys per mma. ldmatrix matrices m = 0..3 are dims 32·p + 8m of keys
// 8j..8j + 7: the B fragments of slices 2p (m = 0, 1) and 2p + 1 (m = 2, 3).
template <int HD>
__device__ __forceinline__ void tc_tile_scores(float (*sc)[4], u32 (*qa)[4],
                                               u16 (*ks)[HD + 8], int lane) {
  int mat = lane >> 3, matRow = lane & 7;
#pragma unroll
  for (int j = 0; j < TC_KEYS / 8; j++) {
    sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
#pragma unroll
    for (int p = 0; p < HD / 32; p++) {
      u32 b[4];
      ldmatrix_x4<false>(b, &ks[8 * j + matRow][32 * p + 8 * mat]);
      mma16816(sc[j], qa[2 * p], b);
      mma16816(sc[j], qa[2 * p + 1], b + 2);
    }
  }
}

// The online softmax of a tile's scores for the lane's rows A and B, in base 2 (ALGORITHMS.md §4.2
// with 2^x for e^x: scores pre-scaled by scale·log2 e, one ex2 each; tc_write converts the max
// back): keys outside a row's window masked (only on tiles crossing a window bound), the running
// max m and sum l updated, the output accumulators o rescaled, and sc turned into P.
template <int HD>
__device__ __forceinline__ void tc_tile_softmax(float (*sc)[4], float (*o)[4], float& mA,
                                                float& mB, float& lA, float& lB,
                                                const TcWindows& w, int key0, int c,
                                                float scaleLog2) {
  bool full = key0 >= max(w.firstA, w.firstB) && key0 + TC_KEYS <= min(w.endA, w.endB);
  float tileMaxA = NEG_INF, tileMaxB = NEG_INF;
#pragma unroll
  for (int j = 0; j < TC_KEYS / 8; j++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float v = sc[j][e] * scaleLog2;
      if (!full) {
        int key = key0 + 8 * j + c + (e & 1);
        bool visible = (e & 2) ? key >= w.firstB && key < w.endB : key >= w.firstA && key < w.endA;
        v = visible ? v : NEG_INF;
      }
      sc[j][e] = v;
      if (e & 2) tileMaxB = fmaxf(tileMaxB, v); else tileMaxA = fmaxf(tileMaxA, v);
    }
  }
  tileMaxA = fmaxf(tileMaxA, __shfl_xor_sync(0xffffffffu, tileMaxA, 1));
  tileMaxA = fmaxf(tileMaxA, __shfl_xor_sync(0xffffffffu, tileMaxA, 2));
  tileMaxB = fmaxf(tileMaxB, __shfl_xor_sync(0xffffffffu, tileMaxB, 1));
  tileMaxB = fmaxf(tileMaxB, __shfl_xor_sync(0xffffffffu, tileMaxB, 2));
  float newA = fmaxf(mA, tileMaxA), newB = fmaxf(mB, tileMaxB);
  float corrA = mA == NEG_INF ? 0.f : exp2f(mA - newA);
  float corrB = mB == NEG_INF ? 0.f : exp2f(mB - newB);
  mA = newA;
  mB = newB;
  lA *= corrA;
  lB *= corrB;
#pragma unroll
  for (int j = 0; j < HD / 8; j++) {
    o[j][0] *= corrA;
    o[j][1] *= corrA;
    o[j][2] *= corrB;
    o[j][3] *= corrB;
  }
#pragma unroll
  for (int j = 0; j < TC_KEYS / 8; j++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float m = (e & 2) ? mB : mA;
      float p = sc[j][e] == NEG_INF ? 0.f : exp2f(sc[j][e] - m);
      sc[j][e] = p;
      if (e & 2) lB += p; else lA += p;
    }
  }
}

// O += P·V of one tile: P's A fragments are the probabilities of key tiles 2s and 2s + 1; `vs`
// the tile's values (row = key). ldmatrix.trans matrices m = 0..3 are keys 16s + 8·(m & 1) of dims
// 16p + 8·(m >> 1): the B fragments of dim tiles 2p (m = 0, 1) and 2p + 1 (m = 2, 3).
template <int HD>
__device__ __forceinline__ void tc_tile_accumulate(float (*o)[4], float (*sc)[4],
                                                   u16 (*vs)[HD + 8], int lane) {
  int mat = lane >> 3, matRow = lane & 7;
#pragma unroll
  for (int sl = 0; sl < TC_KEYS / 16; sl++) {
    u32 pa[4] = {pack_half2(sc[2 * sl][0], sc[2 * sl][1]), pack_half2(sc[2 * sl][2], sc[2 * sl][3]),
                 pack_half2(sc[2 * sl + 1][0], sc[2 * sl + 1][1]),
                 pack_half2(sc[2 * sl + 1][2], sc[2 * sl + 1][3])};
#pragma unroll
    for (int p = 0; p < HD / 16; p++) {
      u32 b[4];
      ldmatrix_x4<true>(b, &vs[16 * sl + 8 * (mat & 1) + matRow][16 * p + 8 * (mat >> 1)]);
      mma16816(o[2 * p], pa, b);
      mma16816(o[2 * p + 1], pa, b + 2);
    }
  }
}

// Issues the copy of the TC_KEYS-key tile at key0 of one KV head's pages into `tile` (keys at or
// past keyEnd zero-filled) and commits it as one group.
template <int HD>
__device__ __forceinline__ void tc_issue_tile(u16 (*tile)[HD + 8], const u64* __restrict__ pages,
                                              int pageSize, int kvDim, int kvHead, int key0,
                                              int keyEnd) {
  for (int idx = threadIdx.x; idx < TC_KEYS * HD / 8; idx += blockDim.x) {
    int r = idx / (HD / 8), d = (idx % (HD / 8)) * 8;
    int pos = key0 + r;
    bool valid = pos < keyEnd;
    int at = valid ? pos : key0;  // a zero fill reads nothing, but its address must be mapped
    const u16* src = (const u16*)pages[at / pageSize] + (long long)(at % pageSize) * kvDim +
                     kvHead * HD + d;
    cp_async16(&tile[r][d], src, valid);
  }
  cp_async_commit();
}

// With PIPE (an FP16 cache: attention_prefill_pipe*) the loop is arranged as FlashAttention-2
// arranges its sm_80 forward pass: the K and V tiles go from the pages to shared memory by
// cp.async, without registers or conversion, and overlap the tensor-core work: V of tile j loads
// while S = Q·Kᵀ and the softmax of tile j run, K of tile j + 1 while O += P·V of tile j runs (one
// buffer each: a barrier after each wait both publishes the arrived tile and retires the buffer
// about to be refilled). Without it a tile is loaded (and converted) between two barriers, then
// used.
template <int HD, int HPB, typename KV, bool PIPE>
__device__ void attention_prefill_tc_body(const float* __restrict__ q, const u64* __restrict__ kPages,
                                          const u64* __restrict__ vPages, int pageSize,
                                          float* __restrict__ out, float* __restrict__ lse, int n,
                                          int heads, int kvHeads, float scale, int causalStart,
                                          const int* __restrict__ ranges, int splits,
                                          int keysPerSplit, float* __restrict__ partO,
                                          float* __restrict__ partML) {
  static_assert(!PIPE || sizeof(KV) == 2, "the pipelined loop copies FP16 tiles as they are");
  alignas(16) __shared__ u16 ks[TC_KEYS][HD + 8];  // 16-byte rows for ldmatrix and cp.async
  alignas(16) __shared__ u16 vs[TC_KEYS][HD + 8];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int headBlocks = heads / HPB, warpInHead = warp % TC_WARPS;
  int h = (blockIdx.y % headBlocks) * HPB + warp / TC_WARPS, split = blockIdx.y / headBlocks;
  int kvHead = h / (heads / kvHeads);
  int g = lane >> 2, c = (lane & 3) * 2;
  int kvDim = kvHeads * HD;
  int row0 = blockIdx.x * TC_ROWS + warpInHead * 16;  // the warp's first query row
  int rowA = row0 + g, rowB = row0 + g + 8;     // the two rows this lane holds
  u32 qa[HD / 16][4];
  tc_load_q<HD>(qa, q, rowA, rowB, n, h, heads, c);
  float o[HD / 8][4];
#pragma unroll
  for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f;  // max in units of scores · log2 e
  TcWindows win = tc_windows(n, causalStart, ranges, warpInHead, g);
  float scaleLog2 = scale * 1.4426950408889634f;
  // Each warp's window, read per tile (after the loop's first barrier) rather than held in registers.
  __shared__ int warpWin[TC_WARPS * HPB][2];
  if (lane == 0) warpWin[warp][0] = win.warpFirst, warpWin[warp][1] = win.warpEnd;
  // The split's part of the block's window; tiles start at keyBegin, so none crosses keyEnd.
  int keyBegin = win.blockFirst + split * keysPerSplit;
  int keyEnd = split == splits - 1 ? win.blockEnd : min(win.blockEnd, keyBegin + keysPerSplit);
  if (PIPE) {
    if (keyBegin < keyEnd)
      tc_issue_tile<HD>(ks, kPages, pageSize, kvDim, kvHead, keyBegin, keyEnd);
    for (int key0 = keyBegin; key0 < keyEnd; key0 += TC_KEYS) {
      cp_async_wait_all();
      __syncthreads();  // K of this tile is in; every warp is done with the previous V
      tc_issue_tile<HD>(vs, vPages, pageSize, kvDim, kvHead, key0, keyEnd);
      bool active = key0 < warpWin[warp][1] && key0 + TC_KEYS > warpWin[warp][0];
      float sc[TC_KEYS / 8][4];
      if (active) {
        tc_tile_scores<HD>(sc, qa, ks, lane);
        tc_tile_softmax<HD>(sc, o, mA, mB, lA, lB, win, key0, c, scaleLog2);
      }
      cp_async_wait_all();
      __syncthreads();  // V of this tile is in; every warp is done with this K
      if (key0 + TC_KEYS < keyEnd)
        tc_issue_tile<HD>(ks, kPages, pageSize, kvDim, kvHead, key0 + TC_KEYS, keyEnd);
      if (active) tc_tile_accumulate<HD>(o, sc, vs, lane);
    }
  } else {
    for (int key0 = keyBegin; key0 < keyEnd; key0 += TC_KEYS) {
      __syncthreads();  // the previous tile is consumed
      for (int idx = threadIdx.x; idx < TC_KEYS * HD / 4; idx += blockDim.x) {
        int r = idx / (HD / 4), d = (idx % (HD / 4)) * 4;
        int pos = key0 + r;
        uint2 kh = make_uint2(0u, 0u), vh = kh;
        if (pos < keyEnd) {
          long long off = (long long)(pos % pageSize) * kvDim + kvHead * HD + d;
          kh = kv_half4((const KV*)kPages[pos / pageSize] + off);
          vh = kv_half4((const KV*)vPages[pos / pageSize] + off);
        }
        *(uint2*)&ks[r][d] = kh;
        *(uint2*)&vs[r][d] = vh;
      }
      __syncthreads();
      // Nothing of this tile is visible to the warp (also when its rows are all empty or past n).
      if (key0 >= warpWin[warp][1] || key0 + TC_KEYS <= warpWin[warp][0]) continue;
      float sc[TC_KEYS / 8][4];
      tc_tile_scores<HD>(sc, qa, ks, lane);
      tc_tile_softmax<HD>(sc, o, mA, mB, lA, lB, win, key0, c, scaleLog2);
      tc_tile_accumulate<HD>(o, sc, vs, lane);
    }
  }
  tc_write<HD>(o, mA, mB, lA, lB, rowA, rowB, n, h, heads, c, lane, out, lse, splits, split, partO,
               partML);
}

// The entries state one block an SM as the minimum: ptxas then gives the body the registers it
// needs (162–220) instead of spilling to fit more blocks, which the register file would not hold
// anyway (two 128-thread blocks an SM for d = 128, three for d = 64, either way).
#define ATTENTION_PREFILL_TC(NAME, D, HPB, KV)                                                  \
  extern "C" __global__ void __launch_bounds__(HPB * TC_WARPS * 32, 1) NAME(                   \
      const float* q, const u64* kPages, const u64* vPages, int pageSize, float* out,          \
      float* lse, int n, int heads, int kvHeads, float scale, int causalStart,                 \
      const int* ranges, int splits, int keysPerSplit, float* partO, float* partML) {          \
    attention_prefill_tc_body<D, HPB, KV, false>(q, kPages, vPages, pageSize, out, lse, n, heads,         \
                                      kvHeads, scale, causalStart, ranges, splits,             \
                                      keysPerSplit, partO, partML);                            \
  }
ATTENTION_PREFILL_TC(attention_prefill_tc_d64, 64, 1, float)
ATTENTION_PREFILL_TC(attention_prefill_tc_d128, 128, 1, float)
ATTENTION_PREFILL_TC(attention_prefill_tc2_d64, 64, 2, float)
ATTENTION_PREFILL_TC(attention_prefill_tc2_d128, 128, 2, float)
ATTENTION_PREFILL_TC(attention_prefill_tc_d64_f16, 64, 1, u16)
ATTENTION_PREFILL_TC(attention_prefill_tc_d128_f16, 128, 1, u16)
ATTENTION_PREFILL_TC(attention_prefill_tc2_d64_f16, 64, 2, u16)
ATTENTION_PREFILL_TC(attention_prefill_tc2_d128_f16, 128, 2, u16)

#define ATTENTION_PREFILL_PIPE(NAME, D, HPB)                                                     \
  extern "C" __global__ void __launch_bounds__(HPB * TC_WARPS * 32, 1) NAME(                    \
      const float* q, const u64* kPages, const u64* vPages, int pageSize, float* out,          \
      float* lse, int n, int heads, int kvHeads, float scale, int causalStart,                 \
      const int* ranges, int splits, int keysPerSplit, float* partO, float* partML) {          \
    attention_prefill_tc_body<D, HPB, u16, true>(q, kPages, vPages, pageSize, out, lse, n,      \
                                                 heads, kvHeads, scale, causalStart, ranges,    \
                                                 splits, keysPerSplit, partO, partML);          \
  }
ATTENTION_PREFILL_PIPE(attention_prefill_pipe_d64_f16, 64, 1)
ATTENTION_PREFILL_PIPE(attention_prefill_pipe_d128_f16, 128, 1)
ATTENTION_PREFILL_PIPE(attention_prefill_pipe2_d64_f16, 64, 2)
ATTENTION_PREFILL_PIPE(attention_prefill_pipe2_d128_f16, 128, 2)

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

#define INDEXER_KEYS 32
#define INDEXER_MAX_DIM 128

// The same scores as indexer_scores, tiled: a block stages INDEXER_KEYS keys in shared memory
// (lane = key), its warps share out the heads, each lane dots its key with the head's query (a
// load every lane makes at the same address), and the per-warp sums over heads (double) are added
// up per key. headDim a multiple of 4, at most INDEXER_MAX_DIM; q rows 16-byte aligned.
// Grid (ceil(len / INDEXER_KEYS), n), block a multiple of 32, at most 256.
extern "C" __global__ void indexer_scores_tiled(const float* __restrict__ q,
                                                const float* __restrict__ w,
                                                const float* __restrict__ keys, int len, int heads,
                                                int headDim, float scale, float* scores) {
  __shared__ float ks[INDEXER_KEYS][INDEXER_MAX_DIM + 4];
  __shared__ double partial[8][INDEXER_KEYS];
  int t = blockIdx.y, base = blockIdx.x * INDEXER_KEYS;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int i = threadIdx.x; i < INDEXER_KEYS * headDim; i += blockDim.x) {
    int r = i / headDim, d = i % headDim;
    ks[r][d] = base + r < len ? keys[(long long)(base + r) * headDim + d] : 0.f;
  }
  __syncthreads();
  const float* qt = q + (long long)t * heads * headDim;
  double sum = 0.0;
  for (int j = warp; j < heads; j += warps) {
    const float* qj = qt + (long long)j * headDim;
    float u = 0.f;
    for (int d = 0; d < headDim; d += 4) {
      float4 qq = load4(qj + d);
      float4 kk = load4(&ks[lane][d]);
      u += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
    }
    if (u > 0.f) sum += (double)w[(long long)t * heads + j] * u;
  }
  partial[warp][lane] = sum;
  __syncthreads();
  if (warp == 0 && base + lane < len) {
    double total = 0.0;
    for (int v = 0; v < warps; v++) total += partial[v][lane];
    scores[(long long)t * len + base + lane] = (float)(total * scale);
  }
}

// The indexer's head sum after a GEMM: scores[t, s] = scale · Σ_j w[t, j]·ReLU(y[t·heads + j, s])
// where y = q·Kᵀ ([n·heads, len], cuBLAS), the sum in double as on the CPU. A thread per key,
// so the reads of y are coalesced. Grid (ceil(len / blockDim), n).
extern "C" __global__ void indexer_reduce(const float* __restrict__ y, const float* __restrict__ w,
                                          int len, int heads, float scale, float* scores) {
  int t = blockIdx.y;
  int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= len) return;
  double sum = 0.0;
  for (int j = 0; j < heads; j++) {
    float u = y[((long long)t * heads + j) * len + s];
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

// The score a rank key was made from (−∞ for NaN, as ranked).
__device__ __forceinline__ float rank_score(u64 key) {
  u32 ordered = ~(u32)(key >> 32);
  return __uint_as_float((ordered & 0x80000000u) ? (ordered & 0x7fffffffu) : ~ordered);
}

// Position of element i of a top-k row (see topk_rows); any value for i ≥ n (read as −∞).
__device__ __forceinline__ int topk_position(const int* ip, int base, int i, int n) {
  return ip == 0 ? base + i : (i < n ? ip[i] : -1);
}

#define TOPK_THREADS 1024
#define TOPK_MAX 4096
#define TOPK_UNROLL 8

// Per row of scores[rows, n], the top min(k, valid) positions under ≻, best first (`sorted`) or in
// row order (else: what an attention list needs, without the sort), −∞ (and NaN) scores never
// selected (TopK.select); outPos[row, k] padded with −1, outScores likewise with −∞.
// A long row is done in two launches so that more than one multiprocessor works on it: first each
// `chunk`-long piece of the row gets its own block (grid rows·chunks, output [rows, chunks·k]), then
// one block per row selects from those candidates, ranking them by their original positions
// (inPos). The top k of the union of the pieces' top k is the row's top k.
// Exact and deterministic: the k-th smallest rank key is found a byte at a time (radix select, 8
// histogram passes over the row), the keys at or below it are gathered, then sorted in shared memory.
// Grid rows, block TOPK_THREADS, k ≤ TOPK_MAX.
extern "C" __global__ void topk_rows(const float* scores, int rowLength, int k, int* outPos,
                                     float* outScores, const int* inPos, int chunk, int sorted) {
  __shared__ u64 keys[TOPK_MAX];
  __shared__ int counter;
  __shared__ int countShared;
  int chunks = (rowLength + chunk - 1) / chunk;
  int row = blockIdx.x / chunks, c = blockIdx.x % chunks;
  long long start = (long long)row * rowLength + (long long)c * chunk;
  const float* r = scores + start;
  int n = min(chunk, rowLength - c * chunk);
  // Element i's position: its index in the row, or inPos[start + i] when the row holds another
  // top-k's candidates (then −∞ padding, position −1, is never valid).
  const int* ip = inPos == 0 ? 0 : inPos + start;
  int positionBase = c * chunk;
  const u64 negInfKeyMin = rank_key(NEG_INF, 0);  // every −∞ entry has a key ≥ this

  // valid = #entries with a finite-or-+∞ score
  // Every pass over the row reads TOPK_UNROLL elements per thread before using them, so a single
  // block keeps enough loads in flight; elements past n read as −∞ (never valid).
  int localValid = 0;
  for (int base = 0; base < n; base += TOPK_UNROLL * blockDim.x) {
    float v[TOPK_UNROLL];
#pragma unroll
    for (int u = 0; u < TOPK_UNROLL; u++) {
      int i = base + u * blockDim.x + threadIdx.x;
      v[u] = i < n ? r[i] : NEG_INF;
    }
#pragma unroll
    for (int u = 0; u < TOPK_UNROLL; u++)
      if (v[u] == v[u] && v[u] != NEG_INF) localValid++;
  }
  if (threadIdx.x == 0) countShared = 0;
  __syncthreads();
  atomicAdd(&countShared, localValid);
  __syncthreads();
  int valid = countShared;
  int take = min(k, valid);

  // Radix select, 8 bits a pass: histogram the next byte of the keys that match the prefix so
  // far, then descend into the bin holding the wanted rank.
  // Once the keys matching the prefix fit in shared memory (usually after two bytes), they are
  // copied there (keys[0, candidates)) and the remaining passes read only them.
  __shared__ int histogram[256];
  __shared__ int chosenBin;
  __shared__ int chosenRemaining;
  __shared__ int candidates;
  u64 prefix = 0;
  if (take > 0) {
    int remaining = take;  // rank (1-based) of the wanted key among those matching `prefix`
    bool inShared = false;
    int lane = threadIdx.x & 31;
    for (int shift = 56; shift >= 0; shift -= 8) {
      u64 maskHigh = shift == 56 ? 0ull : (~0ull << (shift + 8));
      for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
      __syncthreads();
      if (inShared) {
        for (int i = threadIdx.x; i < candidates; i += blockDim.x) {
          u64 key = keys[i];
          if ((key & maskHigh) == prefix) atomicAdd(&histogram[(int)((key >> shift) & 255ull)], 1);
        }
      }
      // Keys mostly share their high bytes, so lanes of a warp that hit the same bin add once
      // (warp-aggregated atomics); the loop runs whole warps for the full-mask match.
      for (int base = 0; !inShared && base < n; base += TOPK_UNROLL * blockDim.x) {
        float v[TOPK_UNROLL];
#pragma unroll
        for (int u = 0; u < TOPK_UNROLL; u++) {
          int i = base + u * blockDim.x + threadIdx.x;
          v[u] = i < n ? r[i] : NEG_INF;
        }
#pragma unroll
        for (int u = 0; u < TOPK_UNROLL; u++) {
          u64 key = rank_key(v[u], topk_position(ip, positionBase, base + u * blockDim.x + threadIdx.x, n));
          bool match = key < negInfKeyMin && (key & maskHigh) == prefix;
          int bin = match ? (int)((key >> shift) & 255ull) : 256 + lane;
          unsigned peers = __match_any_sync(0xffffffffu, bin);
          if (match && __ffs(peers) - 1 == lane) atomicAdd(&histogram[bin], __popc(peers));
        }
      }
      __syncthreads();
      if (threadIdx.x < 32) {
        // Warp 0 finds the bin holding rank `remaining`: lane l sums bins [8l, 8l + 8), an
        // inclusive scan over lanes finds the lane, that lane walks its bins.
        int own = 0;
        for (int b = 0; b < 8; b++) own += histogram[8 * lane + b];
        int inclusive = own;
        for (int o = 1; o < 32; o <<= 1) {
          int from = __shfl_up_sync(0xffffffffu, inclusive, o);
          if (lane >= o) inclusive += from;
        }
        int below = inclusive - own;
        if (below < remaining && remaining <= inclusive) {
          int b = 8 * lane;
          while (below + histogram[b] < remaining) below += histogram[b++];
          chosenBin = b;
          chosenRemaining = remaining - below;
        }
      }
      __syncthreads();
      int matching = histogram[chosenBin];
      prefix |= (u64)chosenBin << shift;
      remaining = chosenRemaining;
      if (!inShared && shift > 0 && matching <= TOPK_MAX) {
        // Copy the keys matching the new prefix (exactly `matching` of them) to shared memory.
        u64 mask = ~0ull << shift;
        if (threadIdx.x == 0) candidates = 0;
        __syncthreads();
        for (int base = 0; base < n; base += TOPK_UNROLL * blockDim.x) {
          float v[TOPK_UNROLL];
#pragma unroll
          for (int u = 0; u < TOPK_UNROLL; u++) {
            int i = base + u * blockDim.x + threadIdx.x;
            v[u] = i < n ? r[i] : NEG_INF;
          }
#pragma unroll
          for (int u = 0; u < TOPK_UNROLL; u++) {
            u64 key = rank_key(v[u], topk_position(ip, positionBase, base + u * blockDim.x + threadIdx.x, n));
            if (key < negInfKeyMin && (key & mask) == prefix) keys[atomicAdd(&candidates, 1)] = key;
          }
        }
        inShared = true;
      }
      __syncthreads();
    }
  }
  // prefix is now the take-th smallest valid key: every valid key ≤ it is chosen (exactly take).
  if (!sorted) {
    // In row order: rounds of blockDim elements, each chosen one written at the count of chosen
    // ones before it (warp ballots, then the warps' counts): deterministic, a few barriers a round
    // where the bitonic sort below takes log²(k)/2.
    __shared__ int warpCounts[32];
    __shared__ int written;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (threadIdx.x == 0) written = 0;
    __syncthreads();
    for (int base = 0; take > 0 && base < n; base += blockDim.x) {
      int i = base + threadIdx.x;
      u64 key = ~0ull;
      if (i < n) key = rank_key(r[i], topk_position(ip, positionBase, i, n));
      bool chosen = i < n && key < negInfKeyMin && key <= prefix;
      unsigned votes = __ballot_sync(0xffffffffu, chosen);
      if (lane == 0) warpCounts[warp] = __popc(votes);
      __syncthreads();
      int before = written + __popc(votes & ((1u << lane) - 1u));
      for (int w = 0; w < warp; w++) before += warpCounts[w];
      if (chosen) {
        long long o = (long long)blockIdx.x * k + before;
        outPos[o] = (int)(key & 0xffffffffull);
        outScores[o] = rank_score(key);
      }
      __syncthreads();
      if (threadIdx.x == 0)
        for (int w = 0; w < warps; w++) written += warpCounts[w];
      __syncthreads();
    }
    for (int i = take + threadIdx.x; i < k; i += blockDim.x) {
      outPos[(long long)blockIdx.x * k + i] = -1;
      outScores[(long long)blockIdx.x * k + i] = NEG_INF;
    }
    return;
  }
  // Gather every chosen key, then sort them.
  if (threadIdx.x == 0) counter = 0;
  __syncthreads();
  if (take > 0) {
    for (int base = 0; base < n; base += TOPK_UNROLL * blockDim.x) {
      float v[TOPK_UNROLL];
#pragma unroll
      for (int u = 0; u < TOPK_UNROLL; u++) {
        int i = base + u * blockDim.x + threadIdx.x;
        v[u] = i < n ? r[i] : NEG_INF;
      }
#pragma unroll
      for (int u = 0; u < TOPK_UNROLL; u++) {
        u64 key = rank_key(v[u], topk_position(ip, positionBase, base + u * blockDim.x + threadIdx.x, n));
        if (key < negInfKeyMin && key <= prefix) {
          int slot = atomicAdd(&counter, 1);
          if (slot < TOPK_MAX) keys[slot] = key;
        }
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
      outPos[o] = (int)(keys[i] & 0xffffffffull);
      outScores[o] = rank_score(keys[i]);
    } else {
      outPos[o] = -1;
      outScores[o] = NEG_INF;
    }
  }
}

// ---- SelfExtend (CudaModel) ----------------------------------------------------------------------

// SelfExtend's two attention partials of each (query row, head) merged by the log-sum-exp rule
// (ALGORITHMS.md §4.2, two-way case; equal to one softmax over the merged logit map, §2.3): the
// neighbor partial (keys near the query at their own positions) is read from and written back to
// `out`, the grouped partial (farther keys at ⌊j/G⌋) comes from oG. Partial.merge's arithmetic:
// weights exp(LSE_r − M) / Σ in double, a zero weight skips its partial (so an empty grouped set,
// LSE −∞, leaves the neighbor output as it is), both empty gives 0. Grid rows (n·heads), block any.
extern "C" __global__ void selfextend_merge(float* out, const float* oG, const float* lseN,
                                            const float* lseG, int headDim) {
  long long row = blockIdx.x;
  float a = lseN[row], b = lseG[row];
  float* o = out + row * headDim;
  const float* g = oG + row * headDim;
  float m = fmaxf(a, b);
  if (m == NEG_INF) {
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) o[d] = 0.f;
    return;
  }
  double ea = a == NEG_INF ? 0.0 : exp((double)a - (double)m);
  double eb = b == NEG_INF ? 0.0 : exp((double)b - (double)m);
  double total = ea + eb;
  float wa = (float)(ea / total), wb = (float)(eb / total);
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float v = 0.f;
    if (wa != 0.f) v += wa * o[d];
    if (wb != 0.f) v += wb * g[d];
    o[d] = v;
  }
}

// ---- sparse selection on the device (CudaSelector) ----------------------------------------------
//
// The key selection of the top-k policies (SequenceAttention.select) for CudaModel's sequences: the
// selector state (block summaries, INT8 keys and page bounds, lightning-indexer keys) lives on the
// device beside the KV cache, each layer's selection ends in −1-padded position lists that the
// attention kernels read in their `selected` mode.

#define SEL_THREADS 128

// A double summed over the block (shared-memory tree; blockDim a power of two ≤ 1024).
__device__ double block_sum_double(double v) {
  __shared__ double buf[1024];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  double r = buf[0];
  __syncthreads();
  return r;
}

// Warps per block of the warp-per-item selection kernels (block_scores, page_bounds,
// candidate_logits): a warp takes one block / page / candidate, its lanes the head dimensions, and
// serves every query head of the KV head's GQA group from one load of the summary or key row.
#define SEL_WARPS 8
#define SEL_MAX_GROUP 16
// h over the group's heads, unrolled to SEL_MAX_GROUP so per-head accumulators stay in registers
// (a loop bounded by the runtime group size would put them on the stack).
#define FOR_GROUP_HEAD(h) \
  _Pragma("unroll") for (int h = 0; h < SEL_MAX_GROUP; h++) if (h < group)

// The first key of query i's neighbor region (AttentionPolicy.SelfExtend.neighborStart): i − w + 1
// (exact) or w·⌊i/w⌋ (llama.cpp); 0 without SelfExtend (window ≤ 0).
__device__ __forceinline__ int neighbor_start(int i, int window, int llamacpp) {
  if (window <= 0) return 0;
  return llamacpp ? window * (i / window) : max(0, i - window + 1);
}

// Σ_d max(q_d·min_d, q_d·max_d): the Quest bound of a block summary row (BlockSummaries.bound).
__device__ __forceinline__ float quest_bound(const float* q, const float* lo, const float* hi,
                                             int headDim) {
  float acc = 0.f;
  for (int d = 0; d < headDim; d++) acc += fmaxf(q[d] * lo[d], q[d] * hi[d]);
  return acc;
}

// Folds the keys of positions [start, start + n) (rows of keys [n, kvDim]) into per-block summaries
// of `blockSize` tokens (BlockSummaries.put): a block's first token sets min, max and sum, later
// ones fold in, in position order, so the floats are the CPU's. sum may be null (bounds only).
// Grid (blocks touched, ceil(kvDim / blockDim)); blockIdx.x counts from block start / blockSize.
extern "C" __global__ void block_summary_put(float* mn, float* mx, float* sum, const float* keys,
                                             int start, int n, int blockSize, int kvDim) {
  int b = start / blockSize + blockIdx.x;
  int i = blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= kvDim) return;
  int from = max(start, b * blockSize), to = min(start + n, (b + 1) * blockSize);
  long long at = (long long)b * kvDim + i;
  for (int pos = from; pos < to; pos++) {
    float v = keys[(long long)(pos - start) * kvDim + i];
    if (pos % blockSize == 0) {
      mn[at] = v;
      mx[at] = v;
      if (sum) sum[at] = v;
    } else {
      mn[at] = fminf(mn[at], v);
      mx[at] = fmaxf(mx[at], v);
      if (sum) sum[at] += v;
    }
  }
}

// Block top-k scores (SequenceAttention.selectBlocks, BlockSummaries.addScores, ALGORITHMS.md §3.1,
// §3.3): for query row t (position start + t) and KV head g, scores[(t·kvHeads + g)·rowLength + b]
// is the sum over the group's query heads of the Quest bound Σ_d max(q_d·min_d, q_d·max_d) (quest)
// or ⟨q, sum⟩/blockSize (MoBA's mean) of complete block b < (start + t) / blockSize, −∞ for later
// b. q rows hold heads·headDim floats. A warp per block b (lanes over d, the group's heads from one
// load of the summary). Grid (n·kvHeads, ceil(rowLength / SEL_WARPS)), block 32·SEL_WARPS; group ≤
// SEL_MAX_GROUP.
extern "C" __global__ void block_scores(const float* q, const float* mn, const float* mx,
                                        const float* sum, int start, int heads, int kvHeads,
                                        int headDim, int blockSize, int quest, int rowLength,
                                        float* scores) {
  int u = blockIdx.x, t = u / kvHeads, g = u % kvHeads;
  int lane = threadIdx.x & 31;
  int b = blockIdx.y * SEL_WARPS + (threadIdx.x >> 5);
  if (b >= rowLength) return;
  float* out = scores + (long long)u * rowLength + b;
  if (b >= (start + t) / blockSize) {
    if (lane == 0) *out = NEG_INF;
    return;
  }
  int group = heads / kvHeads;
  long long at = (long long)b * kvHeads * headDim + (long long)g * headDim;
  const float* q0 = q + ((long long)t * heads + (long long)g * group) * headDim;
  float acc[SEL_MAX_GROUP];
  FOR_GROUP_HEAD(h) acc[h] = 0.f;
  for (int d = lane; d < headDim; d += 32) {
    float lo = quest ? mn[at + d] : sum[at + d];
    float hi = quest ? mx[at + d] : 0.f;
    FOR_GROUP_HEAD(h) {
      float qd = q0[(long long)h * headDim + d];
      acc[h] += quest ? fmaxf(qd * lo, qd * hi) : qd * lo;
    }
  }
  float total = 0.f;
  FOR_GROUP_HEAD(h) {
    float v = warp_sum(acc[h]);
    total += quest ? v : (1.f / blockSize) * v;
  }
  if (lane == 0) *out = total;
}

// The keys of each (query row, KV head) under block top-k (SequenceAttention.selectBlocks): the
// chosen complete blocks' keys (chosen [rows, topBlocks − 1] block ids, −1 for none), then the
// query's current block up to the query (§3.1 "Causality"), −1 padded to `count` entries
// (lists [rows, count], row u = t·kvHeads + g at position start + t). Grid rows.
extern "C" __global__ void block_expand(const int* chosen, int start, int kvHeads, int blockSize,
                                        int topBlocks, int count, int* lists) {
  int u = blockIdx.x, i = start + u / kvHeads;
  int current = i / blockSize, past = (topBlocks - 1) * blockSize;
  for (int e = threadIdx.x; e < count; e += blockDim.x) {
    int pos;
    if (e < past) {
      int blk = chosen[(long long)u * (topBlocks - 1) + e / blockSize];
      pos = blk < 0 ? -1 : blk * blockSize + e % blockSize;
    } else {
      pos = current * blockSize + (e - past);
      if (pos > i) pos = -1;
    }
    lists[(long long)u * count + e] = pos;
  }
}

// SelfExtend's split of selected keys (SequenceAttention.attendGroup): entry e of a list (rows of
// perRow entries, row r at position start + r / rowsPerQuery) goes to `neighbor` when at or after
// its query's neighbor start, to `grouped` when before it, −1 in the other list. Grid-stride.
extern "C" __global__ void selection_split(const int* lists, long long total, int perRow,
                                           int rowsPerQuery, int start, int window, int llamacpp,
                                           int* neighbor, int* grouped) {
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    int i = start + (int)(e / perRow) / rowsPerQuery;
    int pos = lists[e];
    int ns = neighbor_start(i, window, llamacpp);
    neighbor[e] = pos >= ns ? pos : -1;
    grouped[e] = pos >= 0 && pos < ns ? pos : -1;
  }
}

// INT8 copies of keys for the own-heads selector (QuantizedKeys.put): key row (t, g) of keys
// [n, kvHeads·headDim] is stored at position start + t as round(k / σ), σ = max|k| / 127 (σ = 1
// and scale 0 for an all-zero row). Grid n·kvHeads, block 32.
extern "C" __global__ void quantize_keys(const float* keys, int start, int kvHeads, int headDim,
                                         signed char* values, float* scales) {
  int u = blockIdx.x;
  const float* k = keys + (long long)u * headDim;
  float amax = 0.f;
  for (int d = threadIdx.x; d < headDim; d += 32) amax = fmaxf(amax, fabsf(k[d]));
  amax = warp_max(amax);
  long long row = (long long)start * kvHeads + u;
  float sigma = amax == 0.f ? 1.f : amax / 127.f;
  if (threadIdx.x == 0) scales[row] = amax == 0.f ? 0.f : sigma;
  float inv = 1.f / sigma;
  for (int d = threadIdx.x; d < headDim; d += 32)
    values[row * headDim + d] = (signed char)(int)floorf(k[d] * inv + 0.5f);
}

// Stage 1 of the own-heads selector (OwnHeadsSelector.keptPages, ALGORITHMS.md §3.3, §5.2), per
// query row t (position i = start + t) and query head h: scale times the Quest bound of each
// complete page b < i / page (min/max summaries mn/mx of the keys, gmn/gmx of SelfExtend's grouped
// keys): pages wholly before the neighbor start use the grouped query qg and grouped pages, pages
// from it on the plain ones, the page straddling it the larger of its two bounds. bounds [n, heads,
// rowLength], −∞ from the row's own page on (then softmax_rows_double). A warp per page, serving
// the KV head's group. Grid (n·kvHeads, ceil(rowLength / SEL_WARPS)), block 32·SEL_WARPS.
extern "C" __global__ void page_bounds(const float* qn, const float* qg, const float* mn,
                                       const float* mx, const float* gmn, const float* gmx,
                                       int start, int heads, int kvHeads, int headDim, int page,
                                       int window, int llamacpp, float scale, int rowLength,
                                       float* bounds) {
  int u = blockIdx.x, t = u / kvHeads, g = u % kvHeads;
  int lane = threadIdx.x & 31;
  int b = blockIdx.y * SEL_WARPS + (threadIdx.x >> 5);
  if (b >= rowLength) return;
  int group = heads / kvHeads;
  float* out = bounds + ((long long)t * heads + (long long)g * group) * rowLength + b;
  int i = start + t, ns = neighbor_start(i, window, llamacpp);
  if (b >= i / page) {
    if (lane == 0)
      for (int h = 0; h < group; h++) out[(long long)h * rowLength] = NEG_INF;
    return;
  }
  int groupedEnd = ns / page, trueStart = (ns + page - 1) / page;
  bool plain = b >= groupedEnd, groupedPart = b < trueStart;  // the straddling page has both
  long long at = (long long)b * kvHeads * headDim + (long long)g * headDim;
  long long qOff = ((long long)t * heads + (long long)g * group) * headDim;
  float accN[SEL_MAX_GROUP], accG[SEL_MAX_GROUP];
  FOR_GROUP_HEAD(h) accN[h] = accG[h] = 0.f;
  for (int d = lane; d < headDim; d += 32) {
    if (plain) {
      float lo = mn[at + d], hi = mx[at + d];
      FOR_GROUP_HEAD(h) {
        float qd = qn[qOff + (long long)h * headDim + d];
        accN[h] += fmaxf(qd * lo, qd * hi);
      }
    }
    if (groupedPart) {
      float lo = gmn[at + d], hi = gmx[at + d];
      FOR_GROUP_HEAD(h) {
        float qd = qg[qOff + (long long)h * headDim + d];
        accG[h] += fmaxf(qd * lo, qd * hi);
      }
    }
  }
  FOR_GROUP_HEAD(h) {
    float vn = plain ? scale * warp_sum(accN[h]) : NEG_INF;
    float vg = groupedPart ? scale * warp_sum(accG[h]) : NEG_INF;
    if (lane == 0) out[(long long)h * rowLength] = fmaxf(vn, vg);
  }
}

// In-place softmax of each row of x [rows, n] with the sum in double (Ops.softmax's arithmetic,
// as the own-heads selector uses it): −∞ entries become 0, an all −∞ row all 0. Grid rows, block a
// power of two ≤ 1024.
extern "C" __global__ void softmax_rows_double(float* x, int n) {
  float* r = x + (long long)blockIdx.x * n;
  float m = NEG_INF;
  for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
  m = block_max(m);
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float e = m == NEG_INF || r[i] == NEG_INF ? 0.f : expf(r[i] - m);
    r[i] = e;
    s += e;
  }
  s = block_sum_double(s);
  float inv = s > 0.0 ? (float)(1.0 / s) : 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) r[i] *= inv;
}

// p[0] + p[stride] + … + p[(heads − 1)·stride], in head order (the own-heads selector's summed
// per-head probabilities, OwnHeadsSelector: the CPU adds them in the same order).
__device__ __forceinline__ float sum_over_heads(const float* p, int heads, long long stride) {
  float v = p[0];
  for (int h = 1; h < heads; h++) v += p[(long long)h * stride];
  return v;
}

// The page weights of stage 1 (OwnHeadsSelector.keptPages): per query row t (position i) and page
// b, the sum over heads of probs (head 0 first), +∞ for the pages of the first `sinks` tokens and
// the complete pages of the last `local` (always kept), −∞ from the query's own page on (it is
// added to the candidates anyway). w [n, rowLength]. Grid (n, ceil(rowLength / blockDim)).
extern "C" __global__ void page_weights(const float* probs, int start, int heads, int page,
                                        int sinks, int local, int rowLength, float* w) {
  int t = blockIdx.x, b = blockIdx.y * blockDim.x + threadIdx.x;
  if (b >= rowLength) return;
  int i = start + t, current = i / page;
  float v;
  if (b >= current) {
    v = NEG_INF;
  } else if (b * page < sinks || b >= (i + 1 - local) / page) {
    v = -NEG_INF;
  } else {
    v = sum_over_heads(probs + (long long)t * heads * rowLength + b, heads, rowLength);
  }
  w[(long long)t * rowLength + b] = v;
}

// The candidate tokens of stage 2 (OwnHeadsSelector.select): per query row t (position i, len =
// i + 1), every position < len when the row has at most keep + 2 pages, else the tokens of the
// `keep` kept pages (kept [n, keep], −1 for none) and of the query's own page; cand [n, perRow],
// perRow = (keep + 2)·page, −1 where no token. Grid n.
extern "C" __global__ void gather_candidates(const int* kept, int start, int keep, int page,
                                             int perRow, int* cand) {
  int t = blockIdx.x, i = start + t, len = i + 1;
  int pageCount = (len + page - 1) / page;
  int* out = cand + (long long)t * perRow;
  for (int c = threadIdx.x; c < perRow; c += blockDim.x) {
    int pos;
    if (pageCount <= keep + 2) {
      pos = c < len ? c : -1;
    } else {
      int j = c / page;
      int p = j < keep ? kept[(long long)t * keep + j] : (j == keep ? i / page : -1);
      pos = p < 0 ? -1 : p * page + c % page;
      if (pos >= len) pos = -1;
    }
    out[c] = pos;
  }
}

// Stage 2 of the own-heads selector (OwnHeadsSelector.scoreCandidates): per query row t and query
// head h, z = scale·q_h·k̃ for each of the row's candidates (k̃ the INT8 keys times their scale;
// grouped keys with the grouped query before the neighbor start, plain ones from it on), −∞ where
// no candidate; then softmax_rows_double over each (row, head). z [n, heads, perRow]. A warp per
// candidate, serving the KV head's group from one load of the INT8 row. Grid (n·kvHeads,
// ceil(perRow / SEL_WARPS)), block 32·SEL_WARPS.
extern "C" __global__ void candidate_logits(const float* qn, const float* qg,
                                            const signed char* values, const float* scales,
                                            const signed char* groupValues,
                                            const float* groupScales, const int* cand, int start,
                                            int heads, int kvHeads, int headDim, int window,
                                            int llamacpp, float scale, int perRow, float* z) {
  int u = blockIdx.x, t = u / kvHeads, g = u % kvHeads;
  int lane = threadIdx.x & 31;
  int c = blockIdx.y * SEL_WARPS + (threadIdx.x >> 5);
  if (c >= perRow) return;
  int group = heads / kvHeads;
  float* out = z + ((long long)t * heads + (long long)g * group) * perRow + c;
  int pos = cand[(long long)t * perRow + c];
  if (pos < 0) {
    if (lane == 0)
      for (int h = 0; h < group; h++) out[(long long)h * perRow] = NEG_INF;
    return;
  }
  bool grouped = pos < neighbor_start(start + t, window, llamacpp);
  const float* q = (grouped ? qg : qn) + ((long long)t * heads + (long long)g * group) * headDim;
  long long row = (long long)pos * kvHeads + g;
  const signed char* k = (grouped ? groupValues : values) + row * headDim;
  float sc = (grouped ? groupScales : scales)[row] * scale;
  float acc[SEL_MAX_GROUP];
  FOR_GROUP_HEAD(h) acc[h] = 0.f;
  for (int d = lane; d < headDim; d += 32) {
    float kd = (float)k[d] * sc;
    FOR_GROUP_HEAD(h) acc[h] += q[(long long)h * headDim + d] * kd;
  }
  FOR_GROUP_HEAD(h) {
    float v = warp_sum(acc[h]);
    if (lane == 0) out[(long long)h * perRow] = v;
  }
}

// The candidate scores of stage 2: per query row t (len = start + t + 1) and candidate c, the sum
// over heads of z (head 0 first), +∞ for the first `sinks` tokens and the last `local` (always
// selected), −∞ where no candidate. p [n, perRow]. Grid (n, ceil(perRow / blockDim)).
extern "C" __global__ void candidate_weights(const float* z, const int* cand, int start, int heads,
                                             int sinks, int local, int perRow, float* p) {
  int t = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= perRow) return;
  int len = start + t + 1;
  int pos = cand[(long long)t * perRow + c];
  float v;
  if (pos < 0) {
    v = NEG_INF;
  } else if (pos < sinks || pos >= len - local) {
    v = -NEG_INF;
  } else {
    v = sum_over_heads(z + (long long)t * heads * perRow + c, heads, perRow);
  }
  p[(long long)t * perRow + c] = v;
}

// In-place LayerNorm of each row of x [n, dim] (LightningIndexer.layerNorm): mean and variance in
// double, y = (x − mean)/√(var + 1e-6)·γ (+ β), β may be null. Grid n, block SEL_THREADS.
extern "C" __global__ void layernorm_rows(float* x, int dim, const float* gamma,
                                          const float* beta) {
  float* r = x + (long long)blockIdx.x * dim;
  double s = 0.0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) s += r[i];
  double mean = block_sum_double(s) / dim;
  double v = 0.0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    double d = r[i] - mean;
    v += d * d;
  }
  double inv = 1.0 / sqrt(block_sum_double(v) / dim + 1e-6);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    double y = (r[i] - mean) * inv * gamma[i];
    r[i] = (float)(beta == 0 ? y : y + beta[i]);
  }
}

// The lightning indexer's RoPE (LightningIndexer: rotate-half over the first rotDims dimensions of
// each head): row t (at x + t·rowStride) holds nHeads heads headStride floats apart, each rotated to
// positions[t] as rope_rows rotates a head of rotDims. Grid n.
extern "C" __global__ void rope_prefix_rows(float* x, const int* positions, const double* invFreq,
                                            int nHeads, int rotDims, int headStride,
                                            int rowStride) {
  int t = blockIdx.x;
  rope_row(x + (long long)t * rowStride, (double)positions[t], invFreq, nHeads, rotDims,
           headStride, 0);
}

// Visibility mask of indexer scores [n, len] over a shard's slots (ascending by position): row t
// sees slots [0, visible[t]). Grid (n, ceil(len / blockDim)).
extern "C" __global__ void mask_beyond(float* scores, int len, const int* visible) {
  int t = blockIdx.x, s = blockIdx.y * blockDim.x + threadIdx.x;
  if (s < len && s >= visible[t]) scores[(long long)t * len + s] = NEG_INF;
}

// Causal mask of indexer scores [n, len]: row t (position start + t) never selects a later key.
// Grid (n, ceil(len / blockDim)).
extern "C" __global__ void mask_future(float* scores, int len, int start) {
  int t = blockIdx.x, s = blockIdx.y * blockDim.x + threadIdx.x;
  if (s < len && s > start + t) scores[(long long)t * len + s] = NEG_INF;
}
