// Checks the kernels of engine/src/main/cuda/longctx.cu on the CPU through emulate.h, against
// float64 references written here independently of the kernels: the top-k order, dense, sparse
// and per-row-range paged attention with LSE, the dequantizing matvec for every weight type (and
// for the split layout of Q8_0 / Q4_0, on row views of a stacked matrix), RMSNorm, RoPE,
// softmax/argmax and the indexer scores. Prints one line per check; exits 1 on a mismatch.
#include "emulate.h"
#include "../../../engine/src/main/cuda/longctx.cu"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>

static int failures = 0;
static std::mt19937_64 rng(12345);

static float uniform(double scale) {
  return (float)(std::uniform_real_distribution<double>(-scale, scale)(rng));
}

static void expect_close(const char* what, const float* got, const double* ref, size_t n,
                         double tol) {
  double scale = 1, worst = 0;
  for (size_t i = 0; i < n; i++) scale = std::max(scale, std::fabs(ref[i]));
  for (size_t i = 0; i < n; i++) {
    double err = std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - ref[i]);
    worst = std::max(worst, err);
  }
  bool ok = worst <= tol * scale;
  if (!ok) failures++;
  std::printf("%-48s %s (max error %.3g, allowed %.3g)\n", what, ok ? "ok" : "FAIL", worst,
              tol * scale);
}

static std::vector<float> nan_buffer(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// ---- top-k ----
// chunk = 0: one block per row; else the two launches of CudaKernels.topk (pieces of `chunk`,
// then the candidates ranked by their original positions).
static void check_topk(int n, int k, int chunk = 0) {
  std::vector<float> s(n);
  for (int i = 0; i < n; i++) {
    s[i] = std::floor(uniform(30));
    if (i % 97 == 3) s[i] = -INFINITY;
    if (i % 89 == 5) s[i] = NAN;
  }
  std::vector<int> pos(k, 0x7fffffff);
  std::vector<float> sc = nan_buffer(k);
  if (chunk == 0) {
    launch(topk_rows, 1, 1, 1024, (const float*)s.data(), n, k, pos.data(), sc.data(),
           (const int*)nullptr, n, 1);
  } else {
    int chunks = (n + chunk - 1) / chunk;
    std::vector<int> cpos(chunks * k);
    std::vector<float> csc(chunks * k);
    launch(topk_rows, chunks, 1, 1024, (const float*)s.data(), n, k, cpos.data(), csc.data(),
           (const int*)nullptr, chunk, 0);
    launch(topk_rows, 1, 1, 1024, (const float*)csc.data(), chunks * k, k, pos.data(),
           sc.data(), (const int*)cpos.data(), chunks * k, 1);
  }
  std::vector<int> idx;
  for (int i = 0; i < n; i++)
    if (!std::isnan(s[i]) && s[i] != -INFINITY) idx.push_back(i);
  std::sort(idx.begin(), idx.end(),
            [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  bool ok = true;
  for (int i = 0; i < k; i++) {
    int want = i < (int)idx.size() ? idx[i] : -1;
    if (pos[i] != want) ok = false;
    if (want >= 0 && sc[i] != s[want]) ok = false;
    if (want < 0 && sc[i] != -INFINITY) ok = false;
  }
  if (!ok) failures++;
  std::printf("topk n=%-6d k=%-5d chunk=%-6d %25s\n", n, k, chunk, ok ? "ok" : "FAIL");
}

// ---- attention over a paged cache ----
// splits = -1: the tensor-core prefill kernel (FP16 products, looser tolerance); -s: its keys cut
// into s splits (sized by the longest range in ranges mode, as CudaKernels does), then
// attention_combine; splits = 0: the per-(row, head) kernel; else attention_split (GQA group ≤ 4
// at d = 64, ≤ 8 at d = 128) over that many key splits, then attention_combine.
// Ranges (not with sparse; n ≥ 3, len > 256), each row over its own slot range [ranges[2t],
// ranges[2t + 1]): RANDOM: row 0 an empty range, row 1 one from slot 0, row 2 one across the first
// page boundary, rows 16..31 of each 64 (a tensor-core warp) empty, the others random; WHOLE:
// every row [0, len) (a GPU shard serving another shard's prefill chunk); WINDOWS: row t
// [150 + 3t, 350 + 3t) clipped to len, mid-cache windows across page boundaries whose union over
// 64 rows is longer than the longest range. Slots outside every range are NaN in the cache.
enum Ranges { NO_RANGES, RANDOM, WHOLE, WINDOWS };
static void check_attention(int len, int n, int heads, int kvHeads, int headDim, bool sparse,
                            bool perKvHead, int splits = 0, Ranges rangeKind = NO_RANGES) {
  bool ranged = rangeKind != NO_RANGES;
  const int page = 256, kvDim = kvHeads * headDim, count = 40;
  int pages = (len + page - 1) / page;
  std::vector<std::vector<float>> kp(pages, std::vector<float>(page * kvDim)),
      vp(pages, std::vector<float>(page * kvDim));
  std::vector<float> keys(len * kvDim), values(len * kvDim), q(n * heads * headDim);
  for (auto& x : keys) x = uniform(2);
  for (auto& x : values) x = uniform(1);
  for (auto& x : q) x = uniform(2);
  std::vector<unsigned long long> kt(pages), vt(pages);
  for (int p = 0; p < pages; p++) {
    kt[p] = (unsigned long long)kp[p].data();
    vt[p] = (unsigned long long)vp[p].data();
  }
  launch(kv_store, 4, 1, 64, (const u64*)kt.data(), page, (const float*)keys.data(), 0, len, kvDim);
  launch(kv_store, 4, 1, 64, (const u64*)vt.data(), page, (const float*)values.data(), 0, len,
         kvDim);
  int lists = perKvHead ? kvHeads : 1;
  std::vector<int> sel(n * lists * count);
  for (size_t i = 0; i < sel.size(); i++)
    sel[i] = (int)(i % count) >= count - 5 ? -1 : (int)(rng() % len);
  if (sparse) std::fill(sel.begin(), sel.begin() + count, -1);  // an empty key set
  std::vector<int> ranges(2 * n);
  int longestRange = 0;
  for (int t = 0; ranged && t < n; t++) {
    int first = (int)(rng() % len), end = first + (int)(rng() % (len - first + 1));
    if (t == 0 || t % 64 / 16 == 1) first = end = len / 3;
    if (t == 1) first = 0;
    if (t == 2) first = page - 37, end = std::min(len, page + 150);
    if (rangeKind == WHOLE) first = 0, end = len;
    if (rangeKind == WINDOWS) first = std::min(len, 150 + 3 * t), end = std::min(len, 350 + 3 * t);
    ranges[2 * t] = first;
    ranges[2 * t + 1] = end;
    longestRange = std::max(longestRange, end - first);
  }
  if (ranged) {
    // Slots before every range or past them all hold NaN: no kernel may stage them.
    int lo = len, hi = 0;
    for (int t = 0; t < n; t++)
      if (ranges[2 * t] < ranges[2 * t + 1])
        lo = std::min(lo, ranges[2 * t]), hi = std::max(hi, ranges[2 * t + 1]);
    for (int i = 0; i < len; i++)
      if (i < lo || i >= hi)
        for (int j = 0; j < kvDim; j++)
          kp[i / page][(i % page) * kvDim + j] = vp[i / page][(i % page) * kvDim + j] = NAN;
  }
  const int* rangesArg = ranged ? (const int*)ranges.data() : (const int*)nullptr;
  std::vector<float> out = nan_buffer(n * heads * headDim), lse = nan_buffer(n * heads);
  float scale = 1.0f / std::sqrt((float)headDim);
  int start = len - n;
  const int* selected = sparse ? (const int*)sel.data() : (const int*)nullptr;
  if (splits < 0) {
    // −1: one pass over the keys; −s: s key ranges merged by attention_combine
    auto kernel = headDim == 64 ? attention_prefill_tc_d64 : attention_prefill_tc_d128;
    int keys = std::max(ranged ? longestRange : len, 1);
    int parts = -splits, keysPerSplit = ((keys + parts - 1) / parts + 63) / 64 * 64;
    std::vector<float> partO(n * heads * parts * headDim), partML(n * heads * parts * 2);
    launch(kernel, (n + 63) / 64, heads * parts, 128, (const float*)q.data(),
           (const u64*)kt.data(), (const u64*)vt.data(), page, out.data(), lse.data(), n, heads,
           kvHeads, scale, start, rangesArg, parts, keysPerSplit, partO.data(), partML.data());
    if (parts > 1)
      launch(attention_combine, n * heads, 1, 64, (const float*)partO.data(),
             (const float*)partML.data(), out.data(), lse.data(), headDim, parts);
  } else if (splits == 0) {
    launch(attention, n, heads, 128, (const float*)q.data(), (const u64*)kt.data(),
           (const u64*)vt.data(), page, out.data(), lse.data(), heads, kvHeads, headDim, scale,
           start, rangesArg, selected, count, lists * count, perKvHead ? 1 : 0);
  } else {
    int longest = sparse ? count : ranged ? longestRange : len;
    int keysPerSplit = ((longest + splits - 1) / splits + 15) / 16 * 16;
    std::vector<float> partO(n * heads * splits * headDim), partML(n * heads * splits * 2);
    auto kernel = headDim == 64 ? attention_split_g4_d64 : attention_split_g8_d128;
    launch(kernel, n * kvHeads, splits, 128, (const float*)q.data(), (const u64*)kt.data(),
           (const u64*)vt.data(), page, partO.data(), partML.data(), heads, kvHeads, scale, start,
           rangesArg, selected, count, lists * count, perKvHead ? 1 : 0, splits, keysPerSplit);
    launch(attention_combine, n * heads, 1, 64, (const float*)partO.data(),
           (const float*)partML.data(), out.data(), lse.data(), headDim, splits);
  }
  std::vector<double> refOut(out.size()), refLse(lse.size());
  std::vector<float> lseGot = lse;
  for (int t = 0; t < n; t++)
    for (int h = 0; h < heads; h++) {
      int kvh = h / (heads / kvHeads);
      std::vector<int> ps;
      if (sparse) {
        int from = t * lists * count + (perKvHead ? kvh * count : 0);
        for (int i = 0; i < count; i++)
          if (sel[from + i] >= 0) ps.push_back(sel[from + i]);
      } else if (ranged) {
        for (int i = ranges[2 * t]; i < ranges[2 * t + 1]; i++) ps.push_back(i);
      } else {
        for (int i = 0; i <= start + t; i++) ps.push_back(i);
      }
      const float* qq = &q[(t * heads + h) * headDim];
      std::vector<double> sc(ps.size());
      double mx = -INFINITY;
      for (size_t i = 0; i < ps.size(); i++) {
        double d = 0;
        for (int j = 0; j < headDim; j++) d += (double)qq[j] * keys[ps[i] * kvDim + kvh * headDim + j];
        sc[i] = d * scale;
        mx = std::max(mx, sc[i]);
      }
      double sum = 0;
      for (double x : sc) sum += std::exp(x - mx);
      for (int j = 0; j < headDim; j++) {
        double o = 0;
        for (size_t i = 0; i < ps.size(); i++)
          o += std::exp(sc[i] - mx) * values[ps[i] * kvDim + kvh * headDim + j];
        refOut[(t * heads + h) * headDim + j] = ps.empty() ? 0 : o / sum;
      }
      refLse[t * heads + h] = ps.empty() ? -INFINITY : mx + std::log(sum);
      if (ps.empty()) {  // compare −∞ exactly, then neutralize for expect_close
        if (lseGot[t * heads + h] != -INFINITY) failures++;
        refLse[t * heads + h] = 0;
        lseGot[t * heads + h] = 0;
      }
    }
  char name[128];
  const char* rangeName = rangeKind == WHOLE     ? "ranges/whole"
                          : rangeKind == WINDOWS ? "ranges/windows"
                                                 : "ranges";
  std::snprintf(name, sizeof name, "attention%s %s len=%d n=%d h=%d/%d d=%d%s",
                splits < 0 ? "_prefill_tc" : splits ? "_split" : "",
                sparse ? (perKvHead ? "sparse/kv" : "sparse") : ranged ? rangeName : "causal",
                len, n, heads, kvHeads, headDim,
                splits < -1 ? (" s=" + std::to_string(-splits)).c_str() : "");
  double tolerance = splits < 0 ? 3e-3 : 1e-5;
  expect_close(name, out.data(), refOut.data(), out.size(), tolerance);
  expect_close("  lse", lseGot.data(), refLse.data(), lse.size(), tolerance);
}

// ---- matvec: weights encoded here, decoded by an independent reference ----
static void check_matvec(int type, int rows, int cols, int n) {
  std::vector<double> w(rows * cols);
  std::vector<unsigned char> bytes;
  for (auto& x : w) x = uniform(1);
  if (type == TYPE_F32) {
    bytes.resize(rows * cols * 4);
    for (int i = 0; i < rows * cols; i++) {
      float f = (float)w[i];
      w[i] = f;
      std::memcpy(&bytes[i * 4], &f, 4);
    }
  } else if (type == TYPE_F16 || type == TYPE_BF16) {
    bytes.resize(rows * cols * 2);
    for (int i = 0; i < rows * cols; i++) {
      unsigned short h;
      if (type == TYPE_F16) {
        h = emulated_float_to_half((float)w[i]);
        w[i] = emulated_half_to_float(h);
      } else {
        unsigned u = __float_as_uint((float)w[i]) & 0xffff0000u;  // truncation is a valid bf16
        h = (unsigned short)(u >> 16);
        w[i] = __uint_as_float(u);
      }
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  } else {
    int blockBytes = type == TYPE_Q8_0 ? 34 : 18;
    bytes.resize((size_t)rows * cols / 32 * blockBytes);
    for (int b = 0; b < rows * cols / 32; b++) {
      unsigned char* blk = &bytes[b * blockBytes];
      unsigned short dh = emulated_float_to_half(type == TYPE_Q8_0 ? 1 / 127.0f : 1 / 8.0f);
      double d = emulated_half_to_float(dh);
      std::memcpy(blk, &dh, 2);
      for (int i = 0; i < 32; i++) {
        int qv = type == TYPE_Q8_0 ? (int)(rng() % 255) - 127 : (int)(rng() % 16);
        if (type == TYPE_Q8_0) {
          blk[2 + i] = (unsigned char)(signed char)qv;
          w[b * 32 + i] = d * qv;
        } else {
          if (i < 16) blk[2 + i] = (unsigned char)qv;            // low nibble: element i
          else blk[2 + i - 16] |= (unsigned char)(qv << 4);     // high nibble: element i
          w[b * 32 + i] = d * (qv - 8);
        }
      }
    }
  }
  std::vector<float> x(n * cols);
  for (auto& v : x) v = uniform(1);
  std::vector<float> y = nan_buffer(n * rows);
  launch(matvec, (rows + 7) / 8, n, 256, (const u8*)bytes.data(), type, (const float*)x.data(),
         y.data(), rows, cols, n);
  std::vector<double> ref(n * rows);
  for (int t = 0; t < n; t++)
    for (int r = 0; r < rows; r++) {
      double s = 0;
      for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[t * cols + c];
      ref[t * rows + r] = s;
    }
  char name[96];
  std::snprintf(name, sizeof name, "matvec type=%d %dx%d n=%d", type, rows, cols, n);
  expect_close(name, y.data(), ref.data(), y.size(), 2e-6 * std::sqrt(cols));
  // embed_rows: row 3 and row rows−1, compared element-wise with the decoded weights
  int tokens[2] = {3 % rows, rows - 1};
  std::vector<float> e = nan_buffer(2 * cols);
  launch(embed_rows, 2, 1, 64, (const u8*)bytes.data(), (const u8*)nullptr, type,
         (const int*)tokens, e.data(), cols);
  std::vector<double> eref(2 * cols);
  for (int t = 0; t < 2; t++)
    for (int c = 0; c < cols; c++) eref[t * cols + c] = w[tokens[t] * cols + c];
  expect_close("  embed_rows", e.data(), eref.data(), e.size(), 1e-7);
  // dequantize_to_half (the cuBLAS prefill's weight copy): FP16 and BF16, read back exactly
  for (int fp16 = 0; fp16 < 2; fp16++) {
    std::vector<unsigned short> h(rows * cols, 0xffff);
    launch(dequantize_to_half, 3, 1, 64, (const u8*)bytes.data(), (const u8*)nullptr, type,
           h.data(), rows, cols, fp16);
    std::vector<float> back(rows * cols);
    for (int i = 0; i < rows * cols; i++)
      back[i] = fp16 ? emulated_half_to_float(h[i]) : __uint_as_float((unsigned)h[i] << 16);
    expect_close(fp16 ? "  dequantize_to_half fp16" : "  dequantize_to_half bf16", back.data(),
                 w.data(), back.size(), fp16 ? 1e-3 : 8e-3);
  }
}

// ---- the split layout of Q8_0 / Q4_0 (longctx.cu "split layout"; DeviceTensor.Layout.SPLIT) ----
// A [rows, cols] matrix of random quants and random per-block scales, encoded here from the
// layout's description (forward: lane, word, element), then matvec_split, embed_rows and
// dequantize_to_half on the row view [first, first + count) (both arrays addressed at row first,
// as DeviceTensor.rows does) against float64. xOffset ≠ 0 misaligns x (the element-wise path).
static void check_split(int type, int rows, int cols, int first, int count, int n,
                        int xOffset = 0) {
  bool q8 = type == TYPE_Q8_0_SPLIT;
  int blocks = cols / 32, stride = (blocks + 7) / 8 * 8;  // scales per row, padded to 16 bytes
  size_t rowBytes = q8 ? cols : cols / 2;
  std::vector<int> q((size_t)rows * cols);
  std::vector<unsigned short> d((size_t)rows * blocks);
  std::vector<double> w((size_t)rows * cols);
  for (int r = 0; r < rows; r++)
    for (int b = 0; b < blocks; b++) {
      d[(size_t)r * blocks + b] = emulated_float_to_half(uniform(q8 ? 1 / 64.0 : 1 / 4.0));
      double scale = emulated_half_to_float(d[(size_t)r * blocks + b]);
      for (int i = 0; i < 32; i++) {
        size_t at = (size_t)r * cols + b * 32 + i;
        q[at] = q8 ? (int)(rng() % 256) - 128 : (int)(rng() % 16);
        w[at] = scale * (q8 ? q[at] : q[at] - 8);
      }
    }
  // quants [rows, rowBytes], then scales [rows, stride] (16-byte aligned: rows·rowBytes is)
  std::vector<unsigned char> image(rows * rowBytes + (size_t)rows * stride * 2 + 16, 0xEE);
  unsigned char* scaleBase = image.data() + rows * rowBytes;
  for (int r = 0; r < rows; r++) {
    unsigned char* qr = image.data() + r * rowBytes;
    unsigned short* sr = (unsigned short*)scaleBase + (size_t)r * stride;
    const int* qv = &q[(size_t)r * cols];
    const unsigned short* dv = &d[(size_t)r * blocks];
    int chunk = q8 ? 512 : 1024, full = cols / chunk * chunk, per = chunk / 32;
    for (int f = 0; f < cols / chunk; f++) {
      for (int l = 0; l < 32; l++)
        for (int e = 0; e < 4; e++) {
          if (q8) {
            for (int j = 0; j < 4; j++)
              qr[512 * f + 16 * l + 4 * j + e] = (unsigned char)qv[512 * f + 128 * j + 4 * l + e];
          } else {
            for (int v = 0; v < 4; v++)
              qr[512 * f + 16 * l + 4 * v + e] =
                  (unsigned char)(qv[1024 * f + 256 * v + 4 * l + e] |
                                  (qv[1024 * f + 256 * v + 128 + 4 * l + e] << 4));
          }
        }
      for (int g = 0; g < 4; g++)
        for (int j = 0; j < per / 4; j++) sr[per * f + (per / 4) * g + j] = dv[per * f + 4 * j + g];
    }
    int tail = cols - full;
    if (q8) {
      for (int c = full; c < cols; c++) qr[c] = (unsigned char)qv[c];
    } else {
      for (int t = 0; t < tail / 2; t++)
        qr[full / 2 + t] = (unsigned char)(qv[full + t] | (qv[full + tail / 2 + t] << 4));
    }
    for (int b = full / 32; b < blocks; b++) sr[b] = dv[b];
  }
  const u8* viewQ = image.data() + first * rowBytes;
  const u8* viewS = scaleBase + (size_t)first * stride * 2;
  std::vector<float> xs(n * cols + xOffset);
  for (auto& v : xs) v = uniform(1);
  const float* x = xs.data() + xOffset;
  std::vector<float> y = nan_buffer(n * count);
  launch(matvec_split, (count + 15) / 16, n, 256, viewQ, viewS, type, x, y.data(), count, cols, n);
  std::vector<double> ref(n * count);
  for (int t = 0; t < n; t++)
    for (int r = 0; r < count; r++) {
      double s = 0;
      for (int c = 0; c < cols; c++) s += w[(size_t)(first + r) * cols + c] * x[t * cols + c];
      ref[t * count + r] = s;
    }
  char name[128];
  std::snprintf(name, sizeof name, "matvec_split %s %dx%d rows [%d, %d) n=%d%s",
                q8 ? "Q8_0" : "Q4_0", rows, cols, first, first + count, n,
                xOffset ? " x unaligned" : "");
  expect_close(name, y.data(), ref.data(), y.size(), 2e-6 * std::sqrt(cols));
  if (xOffset) return;
  // embed_rows over the view: its first row, a middle one, its last
  int tokens[3] = {0, count / 2, count - 1};
  std::vector<float> e = nan_buffer(3 * cols);
  launch(embed_rows, 3, 1, 64, viewQ, viewS, type, (const int*)tokens, e.data(), cols);
  std::vector<double> eref(3 * cols);
  for (int t = 0; t < 3; t++)
    for (int c = 0; c < cols; c++) eref[t * cols + c] = w[(size_t)(first + tokens[t]) * cols + c];
  expect_close("  embed_rows", e.data(), eref.data(), e.size(), 1e-7);
  for (int fp16 = 0; fp16 < 2; fp16++) {
    std::vector<unsigned short> h((size_t)count * cols, 0xffff);
    launch(dequantize_to_half, 3, 1, 64, viewQ, viewS, type, h.data(), count, cols, fp16);
    std::vector<float> back(h.size());
    for (size_t i = 0; i < h.size(); i++)
      back[i] = fp16 ? emulated_half_to_float(h[i]) : __uint_as_float((unsigned)h[i] << 16);
    expect_close(fp16 ? "  dequantize_to_half fp16" : "  dequantize_to_half bf16", back.data(),
                 &w[(size_t)first * cols], back.size(), fp16 ? 1e-3 : 8e-3);
  }
  // a GGUF type handed to matvec_split gives NaN, never a silent wrong product
  std::vector<float> bad(count, 0.f);
  launch(matvec_split, (count + 15) / 16, 1, 256, viewQ, viewS, TYPE_Q8_0, x, bad.data(), count,
         cols, 1);
  bool allNan = std::all_of(bad.begin(), bad.end(), [](float v) { return std::isnan(v); });
  if (!allNan) failures++;
  std::printf("%-48s %s\n", "  matvec_split of a GGUF type gives NaN", allNan ? "ok" : "FAIL");
}

static void check_rows() {
  int dim = 300, n = 3;
  std::vector<float> x(n * dim), w(dim), out = nan_buffer(n * dim);
  for (auto& v : x) v = uniform(3);
  for (auto& v : w) v = uniform(1);
  launch(rmsnorm_rows, n, 1, 256, out.data(), (const float*)x.data(), (const float*)w.data(), dim,
         1e-5f);
  std::vector<double> ref(n * dim);
  for (int t = 0; t < n; t++) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[t * dim + i] * x[t * dim + i];
    double s = 1 / std::sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; i++) ref[t * dim + i] = x[t * dim + i] * s * w[i];
  }
  expect_close("rmsnorm_rows", out.data(), ref.data(), out.size(), 1e-6);

  for (int interleaved = 0; interleaved < 2; interleaved++) {
    int heads = 3, hd = 64, half = 32;
    int positions[4] = {0, 1, 4097, 1000003};
    std::vector<double> inv(half);
    for (int i = 0; i < half; i++) inv[i] = 1.0 / std::pow(500000.0, 2.0 * i / hd);
    std::vector<float> v(4 * heads * hd);
    for (auto& a : v) a = uniform(1);
    std::vector<float> r = v;
    launch(rope_rows, 4, 1, 256, r.data(), (const int*)positions, (const double*)inv.data(), heads,
           hd, heads * hd, interleaved);
    std::vector<double> ref(v.size());
    for (int t = 0; t < 4; t++)
      for (int h = 0; h < heads; h++)
        for (int i = 0; i < half; i++) {
          int base = t * heads * hd + h * hd;
          int a = interleaved ? base + 2 * i : base + i, b = interleaved ? a + 1 : a + half;
          double ang = positions[t] * inv[i];
          ref[a] = v[a] * std::cos(ang) - v[b] * std::sin(ang);
          ref[b] = v[a] * std::sin(ang) + v[b] * std::cos(ang);
        }
    expect_close(interleaved ? "rope interleaved" : "rope rotate-half", r.data(), ref.data(),
                 r.size(), 1e-6);
  }

  int len = 5000;
  std::vector<float> s(2 * len);
  for (auto& a : s) a = uniform(20);
  s[17] = 30;
  s[len + 3] = 30;
  s[len + 4000] = 30;  // a tie: the lower index wins
  std::vector<int> am = {-7, -7};
  launch(argmax_rows, 2, 1, 256, (const float*)s.data(), len, am.data());
  bool ok = am[0] == 17 && am[1] == 3;
  if (!ok) failures++;
  std::printf("%-48s %s\n", "argmax_rows", ok ? "ok" : "FAIL");
  std::vector<float> sm = s;
  launch(softmax_rows, 2, 1, 256, sm.data(), len);
  std::vector<double> sref(2 * len);
  for (int r = 0; r < 2; r++) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < len; i++) mx = std::max(mx, (double)s[r * len + i]);
    for (int i = 0; i < len; i++) sum += std::exp(s[r * len + i] - mx);
    for (int i = 0; i < len; i++) sref[r * len + i] = std::exp(s[r * len + i] - mx) / sum;
  }
  expect_close("softmax_rows", sm.data(), sref.data(), sm.size(), 1e-6);

  int heads = 4, hd = 32, keysN = 700, rows = 2;
  std::vector<float> q(rows * heads * hd), iw(rows * heads), k(keysN * hd),
      out2 = nan_buffer(rows * keysN);
  for (auto& a : q) a = uniform(1);
  for (auto& a : iw) a = uniform(1);
  for (auto& a : k) a = uniform(1);
  launch(indexer_scores, (keysN + 255) / 256, rows, 256, (const float*)q.data(),
         (const float*)iw.data(), (const float*)k.data(), keysN, heads, hd, 0.5f, out2.data());
  std::vector<double> iref(rows * keysN);
  for (int t = 0; t < rows; t++)
    for (int s2 = 0; s2 < keysN; s2++) {
      double sum = 0;
      for (int j = 0; j < heads; j++) {
        double u = 0;
        for (int d = 0; d < hd; d++) u += (double)q[(t * heads + j) * hd + d] * k[s2 * hd + d];
        sum += iw[t * heads + j] * std::max(u, 0.0);
      }
      iref[t * keysN + s2] = sum * 0.5;
    }
  expect_close("indexer_scores", out2.data(), iref.data(), out2.size(), 1e-5);
  std::vector<float> out3 = nan_buffer(rows * keysN);
  launch(indexer_scores_tiled, (keysN + 31) / 32, rows, 128, (const float*)q.data(),
         (const float*)iw.data(), (const float*)k.data(), keysN, heads, hd, 0.5f, out3.data());
  expect_close("indexer_scores_tiled", out3.data(), iref.data(), out3.size(), 1e-5);
}

static void check_elementwise() {
  int n = 3000, width = 40;
  std::vector<float> g(n), u(n), a(n), b(n), y(n), bias(width);
  for (int i = 0; i < n; i++) {
    g[i] = uniform(6);
    u[i] = uniform(2);
    a[i] = uniform(1);
    b[i] = uniform(1);
    y[i] = uniform(1);
  }
  for (auto& v : bias) v = uniform(1);
  std::vector<double> rg(n), ra(n), ry(n);
  for (int i = 0; i < n; i++) {
    rg[i] = g[i] / (1 + std::exp(-(double)g[i])) * u[i];
    ra[i] = (double)a[i] + b[i];
    ry[i] = (double)y[i] + bias[i % width];
  }
  launch(swiglu, 4, 1, 128, g.data(), (const float*)u.data(), (long long)n);
  launch(add_inplace, 4, 1, 128, a.data(), (const float*)b.data(), (long long)n);
  launch(add_bias_rows, 4, 1, 128, y.data(), (const float*)bias.data(), width, (long long)n);
  expect_close("swiglu", g.data(), rg.data(), n, 1e-6);
  expect_close("add_inplace", a.data(), ra.data(), n, 1e-7);
  expect_close("add_bias_rows", y.data(), ry.data(), n, 1e-7);
  std::vector<unsigned short> h(n, 0xffff);
  launch(float_to_half_kernel, 4, 1, 128, (const float*)a.data(), h.data(), (long long)n, 1);
  std::vector<float> back(n);
  for (int i = 0; i < n; i++) back[i] = emulated_half_to_float(h[i]);
  expect_close("float_to_half_kernel", back.data(), ra.data(), n, 1e-3);
}

// The fused kernels give bit for bit what the launches they replace give.
static void check_fused() {
  for (int interleaved = 0; interleaved < 2; interleaved++) {
    int n = 3, heads = 6, kvHeads = 2, hd = 64, half = 32, kvDim = kvHeads * hd, page = 4;
    int start = 5;
    int positions[3] = {5, 6, 100007};
    std::vector<double> inv(half);
    for (int i = 0; i < half; i++) inv[i] = 1.0 / std::pow(10000.0, 2.0 * i / hd);
    std::vector<float> q(n * heads * hd), k(n * kvDim), v(n * kvDim);
    for (auto& a : q) a = uniform(1);
    for (auto& a : k) a = uniform(1);
    for (auto& a : v) a = uniform(1);
    // separate: rope q, rope k, store k and v
    std::vector<float> q1 = q, k1 = k, kStore1 = nan_buffer(3 * page * kvDim),
                       vStore1 = nan_buffer(3 * page * kvDim);
    std::vector<u64> kt1 = {(u64)kStore1.data(), (u64)(kStore1.data() + page * kvDim),
                            (u64)(kStore1.data() + 2 * page * kvDim)};
    std::vector<u64> vt1 = {(u64)vStore1.data(), (u64)(vStore1.data() + page * kvDim),
                            (u64)(vStore1.data() + 2 * page * kvDim)};
    launch(rope_rows, n, 1, 256, q1.data(), (const int*)positions, (const double*)inv.data(),
           heads, hd, heads * hd, interleaved);
    launch(rope_rows, n, 1, 256, k1.data(), (const int*)positions, (const double*)inv.data(),
           kvHeads, hd, kvDim, interleaved);
    launch(kv_store, 2, 1, 64, (const u64*)kt1.data(), page, (const float*)k1.data(), start, n,
           kvDim);
    launch(kv_store, 2, 1, 64, (const u64*)vt1.data(), page, (const float*)v.data(), start, n,
           kvDim);
    // fused
    std::vector<float> q2 = q, k2 = k, kStore2 = nan_buffer(3 * page * kvDim),
                       vStore2 = nan_buffer(3 * page * kvDim);
    std::vector<u64> kt2 = {(u64)kStore2.data(), (u64)(kStore2.data() + page * kvDim),
                            (u64)(kStore2.data() + 2 * page * kvDim)};
    std::vector<u64> vt2 = {(u64)vStore2.data(), (u64)(vStore2.data() + page * kvDim),
                            (u64)(vStore2.data() + 2 * page * kvDim)};
    launch(rope_store_rows, n, 1, 128, q2.data(), k2.data(), (const float*)v.data(),
           (const int*)positions, (const double*)inv.data(), heads, kvHeads, hd, interleaved,
           (const u64*)kt2.data(), (const u64*)vt2.data(), page, start);
    bool same = std::memcmp(q1.data(), q2.data(), q1.size() * 4) == 0 &&
                std::memcmp(k1.data(), k2.data(), k1.size() * 4) == 0;
    // slots [start, start + n) equal; the others untouched (NaN) in both
    for (size_t i = 0; i < kStore1.size(); i++) {
      bool kEq = std::isnan(kStore1[i]) ? std::isnan(kStore2[i]) : kStore1[i] == kStore2[i];
      bool vEq = std::isnan(vStore1[i]) ? std::isnan(vStore2[i]) : vStore1[i] == vStore2[i];
      same = same && kEq && vEq;
    }
    same = same && !std::isnan(kStore2[start * kvDim]) && std::isnan(kStore2[0]);
    if (!same) failures++;
    std::printf("%-48s %s\n",
                interleaved ? "rope_store_rows = rope + kv_store (interleaved)"
                            : "rope_store_rows = rope + kv_store (rotate-half)",
                same ? "ok" : "FAIL");
  }
  int dim = 300, n = 3;
  std::vector<float> x(n * dim), delta(n * dim), w(dim);
  for (auto& a : x) a = uniform(3);
  for (auto& a : delta) a = uniform(1);
  for (auto& a : w) a = uniform(1);
  std::vector<float> x1 = x, out1 = delta;
  launch(add_inplace, 4, 1, 128, x1.data(), (const float*)out1.data(), (long long)n * dim);
  launch(rmsnorm_rows, n, 1, 256, out1.data(), (const float*)x1.data(), (const float*)w.data(),
         dim, 1e-5f);
  std::vector<float> x2 = x, out2 = delta;  // out aliases delta, as CudaModel uses it
  launch(add_rmsnorm_rows, n, 1, 256, x2.data(), (const float*)out2.data(), out2.data(),
         (const float*)w.data(), dim, 1e-5f);
  bool same = std::memcmp(x1.data(), x2.data(), x1.size() * 4) == 0 &&
              std::memcmp(out1.data(), out2.data(), out1.size() * 4) == 0;
  if (!same) failures++;
  std::printf("%-48s %s\n", "add_rmsnorm_rows = add_inplace + rmsnorm_rows", same ? "ok" : "FAIL");
}

int main() {
  check_elementwise();
  check_fused();
  check_topk(5, 3);
  check_topk(1000, 64);
  check_topk(20000, 2048);
  check_topk(100, 4096);
  check_topk(20000, 2048, 7168);
  check_topk(30001, 100, 4096);
  check_attention(1, 1, 2, 1, 8, false, false);
  check_attention(300, 3, 8, 2, 64, false, false);
  check_attention(600, 2, 4, 4, 256, false, false);
  check_attention(600, 2, 8, 2, 64, true, false);
  check_attention(600, 2, 8, 2, 64, true, true);
  check_attention(1000, 1, 8, 2, 64, false, false, 5);
  check_attention(700, 3, 7, 1, 128, false, false, 3);
  check_attention(600, 2, 8, 2, 64, true, false, 2);
  check_attention(600, 2, 16, 2, 128, true, true, 1);
  check_attention(150, 70, 4, 2, 64, false, false, -1);
  check_attention(300, 100, 2, 1, 128, false, false, -1);
  check_attention(700, 70, 4, 2, 128, false, false, -3);
  check_attention(119, 70, 4, 2, 64, false, false, -1);  // row 15's last key alone in a tile
  check_attention(700, 5, 8, 2, 64, false, false, 0, RANDOM);
  check_attention(600, 4, 4, 4, 256, false, false, 0, RANDOM);
  check_attention(1000, 6, 8, 2, 64, false, false, 5, RANDOM);
  check_attention(900, 4, 7, 1, 128, false, false, 3, RANDOM);
  check_attention(600, 3, 16, 2, 128, false, false, 1, RANDOM);
  check_attention(700, 70, 4, 2, 64, false, false, -1, RANDOM);
  check_attention(700, 70, 4, 2, 64, false, false, -3, RANDOM);
  check_attention(900, 150, 2, 1, 128, false, false, -1, RANDOM);
  check_attention(900, 150, 2, 1, 128, false, false, -4, RANDOM);
  check_attention(1000, 70, 4, 1, 64, false, false, -2, WHOLE);
  check_attention(1000, 150, 2, 1, 128, false, false, -1, WHOLE);
  check_attention(1000, 150, 2, 1, 128, false, false, -3, WHOLE);
  check_attention(700, 70, 4, 2, 64, false, false, -1, WINDOWS);
  check_attention(700, 70, 4, 2, 64, false, false, -3, WINDOWS);
  check_attention(900, 150, 2, 1, 128, false, false, -3, WINDOWS);
  for (int type : {TYPE_F32, TYPE_F16, TYPE_BF16, TYPE_Q8_0, TYPE_Q4_0}) {
    check_matvec(type, 37, 64, 2);
    check_matvec(type, 9, 1024, 1);
    check_matvec(type, 5, 2560, 1);
  }
  for (int type : {TYPE_Q8_0_SPLIT, TYPE_Q4_0_SPLIT}) {
    // whole chunks only, chunks and a rest, only a rest (odd block counts), odd/even row counts,
    // row views of a stacked matrix starting at odd and even rows
    check_split(type, 37, 32, 0, 37, 2);
    check_split(type, 9, 96, 0, 9, 1);
    check_split(type, 40, 512, 13, 20, 1);
    check_split(type, 17, 1024, 0, 17, 2);
    check_split(type, 30, 1568, 11, 19, 1);
    check_split(type, 12, 2560, 4, 8, 1);
    check_split(type, 6, 896, 1, 5, 1);
    check_split(type, 5, 3072, 0, 5, 1);
    check_split(type, 9, 1568, 2, 7, 1, 1);
  }
  check_rows();
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "all ok", failures);
  return failures ? 1 : 0;
}
