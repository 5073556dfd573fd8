package dev.longctx.engine.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The matrix products behind {@link FloatTensor#matmul}: {@code y[t][r] = Σ_k W[r][k] · x[t][k]}.
 *
 * <p><b>Decode</b> ({@code tokens == 1}) is bandwidth-bound: rows are claimed in chunks by the
 * pool's threads and each row is streamed once, in its quantized form, by the type's {@link
 * FloatTensor#dotRows} (several rows from different quarters of the chunk at a time, so that each
 * core keeps several sequential DRAM streams in flight).
 *
 * <p><b>Prefill</b> is a tiled GEMM. The unit of parallel work is {@link #ROW_BLOCK} weight rows ×
 * {@link #TOKEN_BLOCK} tokens (fewer tokens when there are too few row blocks to feed the threads),
 * taken token-block-major. Within a unit the columns are walked in chunks of {@link #K_CHUNK}: the
 * block's rows are dequantized once per chunk into a thread-local float panel ({@code ROW_BLOCK ×
 * K_CHUNK}, L2-resident) and reused by every token of the block; the activation slice ({@code
 * TOKEN_BLOCK × K_CHUNK}) stays in L2 too. The register kernel multiplies 4 panel rows by 3 tokens
 * along k with 12 vector accumulators (7 loads per 12 FMAs, no shuffles in the loop) and sums each
 * accumulator's lanes once per chunk. Each weight byte is thus read from memory once per token
 * block, not once per token, and dequantized once per token block.
 *
 * <p><b>Activations stay binary32.</b> llama.cpp quantizes activations to int8 blocks and takes
 * integer dot products (pmaddubsw / vpdpbusd). The Vector API has neither, so an int8 block dot
 * needs widening bytes to shorts, multiplying, and widening again; measured on the 2-core Zen 4 (in
 * cache, one thread, {@code MatmulBench}) the Q8_0 dot ran at 7–9 G elements/s with int8
 * activations against 13–18 with float activations (bytes widened straight to floats, one FMA per
 * lane). So the kernels keep float activations, which also keeps them exact up to binary32
 * rounding.
 */
final class Gemm {

  /** Weight rows per unit of parallel work (and per dequantized panel). */
  static final int ROW_BLOCK = Integer.getInteger("longctx.gemm.rowBlock", 32);

  /** Columns per dequantized panel chunk; a multiple of 256 so that every block type fits. */
  static final int K_CHUNK = Integer.getInteger("longctx.gemm.kChunk", 2048);

  /**
   * The register kernel's vector width: 256 bits unless {@code -Dlongctx.gemm.bits} says otherwise.
   * On AVX2 that is the preferred width anyway; on Zen 4 (AVX-512 executed as two 256-bit halves)
   * the 4×3 kernel measured 74 GFLOP/s at 256 bits against 65 at 512 (cheaper lane sums, same FMA
   * throughput).
   */
  static final VectorSpecies<Float> F =
      VectorSpecies.of(
          float.class, VectorShape.forBitSize(Integer.getInteger("longctx.gemm.bits", 256)));

  static final int L = F.length();

  private static final VectorShuffle<Float> ROT8 = rotation(8);
  private static final VectorShuffle<Float> ROT4 = rotation(4);
  private static final VectorShuffle<Float> ROT2 = rotation(2);
  private static final VectorShuffle<Float> ROT1 = rotation(1);

  private static VectorShuffle<Float> rotation(int by) {
    return VectorShuffle.fromOp(F, i -> (i + by) & (L - 1));
  }

  /** Tokens per unit of work (a multiple of the token tile). */
  static final int TOKEN_BLOCK = Integer.getInteger("longctx.gemm.tokenBlock", 96);

  static final int ROW_TILE = 4;
  static final int TOKEN_TILE = 3;

  /**
   * Floats of padding after each panel row and each packed activation row: rows whose byte stride
   * is a multiple of 4 KiB all map to the same L1 sets (and 4K-alias each other's loads), which
   * cost a third of the kernel's speed at cols = 8192.
   */
  static final int PAD = 16;

  private static final ThreadLocal<float[]> PANEL = ThreadLocal.withInitial(() -> new float[0]);
  private static final ThreadLocal<float[]> PACKED_X = ThreadLocal.withInitial(() -> new float[0]);

  static {
    if (K_CHUNK <= 0 || K_CHUNK % 256 != 0 || ROW_BLOCK <= 0) {
      throw new IllegalStateException(
          "longctx.gemm.kChunk must be a positive multiple of 256 and rowBlock positive");
    }
  }

  private Gemm() {}

  /** {@code y[r] = W[r] · x} for every row. */
  static void matvec(FloatTensor w, float[] x, float[] y) {
    int rows = w.rows();
    int chunk = Math.max(16, rows / (8 * Parallel.threads())) & -4;
    Parallel.forChunks(rows, chunk, (r0, r1) -> w.dotRows(r0, r1 - r0, x, 0, y, r0));
  }

  /** {@code y[t * rows + r] = W[r] · x[t * cols ..]} for every token and row. */
  static void gemm(FloatTensor w, float[] x, float[] y, int tokens) {
    int rows = w.rows();
    int cols = w.cols();
    int kc = Math.min(K_CHUNK, cols);
    int rowBlocks = ceilDiv(rows, ROW_BLOCK);
    int threads = Parallel.threads();
    // Token blocks bound the activation slice a unit streams per column chunk (tokenBlock × kc
    // floats, meant to stay in L2); with few row blocks they are cut further to feed the threads.
    int tokenBlock = Math.min(ceilDiv(tokens, TOKEN_TILE) * TOKEN_TILE, TOKEN_BLOCK);
    while (rowBlocks * ceilDiv(tokens, tokenBlock) < 4 * threads && tokenBlock > TOKEN_TILE) {
      tokenBlock = Math.max(TOKEN_TILE, (tokenBlock / 2) / TOKEN_TILE * TOKEN_TILE);
    }
    int nTokenBlocks = ceilDiv(tokens, tokenBlock);
    int tb = tokenBlock;
    // Activations repacked with a padded row stride (see PAD); the caller thread keeps the buffer.
    int xs = cols + PAD;
    float[] xp = PACKED_X.get();
    if (xp.length < tokens * xs) {
      xp = new float[tokens * xs];
      PACKED_X.set(xp);
    }
    for (int t = 0; t < tokens; t++) {
      System.arraycopy(x, t * cols, xp, t * xs, cols);
    }
    float[] xPacked = xp;
    int ps = kc + PAD;
    Parallel.forChunks(
        rowBlocks * nTokenBlocks,
        1,
        (u0, u1) -> {
          float[] panel = PANEL.get();
          if (panel.length < ROW_BLOCK * ps) {
            panel = new float[ROW_BLOCK * ps];
            PANEL.set(panel);
          }
          for (int u = u0; u < u1; u++) {
            // Token-block-major: the threads share one activation block at a time.
            int r0 = (u % rowBlocks) * ROW_BLOCK;
            int t0 = (u / rowBlocks) * tb;
            block(
                w,
                xPacked,
                xs,
                y,
                r0,
                Math.min(ROW_BLOCK, rows - r0),
                t0,
                Math.min(tokens, t0 + tb),
                panel,
                kc,
                ps);
          }
        });
  }

  /**
   * Rows {@code [r0, r0 + nr)} × tokens {@code [t0, t1)}; token t's activations are at {@code x[t *
   * xs ..]}, panel row i at {@code panel[i * ps ..]}.
   */
  private static void block(
      FloatTensor w,
      float[] x,
      int xs,
      float[] y,
      int r0,
      int nr,
      int t0,
      int t1,
      float[] panel,
      int kc,
      int ps) {
    int rows = w.rows();
    int cols = w.cols();
    for (int t = t0; t < t1; t++) {
      java.util.Arrays.fill(y, t * rows + r0, t * rows + r0 + nr, 0f);
    }
    for (int k0 = 0; k0 < cols; k0 += kc) {
      int kl = Math.min(kc, cols - k0);
      for (int i = 0; i < nr; i++) {
        w.dequantize(r0 + i, k0, kl, panel, i * ps);
      }
      int t = t0;
      for (; t + TOKEN_TILE <= t1; t += TOKEN_TILE) {
        int i = 0;
        for (; i + ROW_TILE <= nr; i += ROW_TILE) {
          kernel4x3(panel, i * ps, ps, x, t * xs + k0, xs, kl, y, t * rows + r0 + i, rows);
        }
        for (; i < nr; i++) {
          for (int tt = t; tt < t + TOKEN_TILE; tt++) {
            y[tt * rows + r0 + i] += dot(panel, i * ps, x, tt * xs + k0, kl);
          }
        }
      }
      for (; t < t1; t++) {
        int i = 0;
        for (; i + ROW_TILE <= nr; i += ROW_TILE) {
          kernel4x1(panel, i * ps, ps, x, t * xs + k0, kl, y, t * rows + r0 + i);
        }
        for (; i < nr; i++) {
          y[t * rows + r0 + i] += dot(panel, i * ps, x, t * xs + k0, kl);
        }
      }
    }
  }

  /**
   * {@code y[yo + i + j·ys] += Σ_{k<n} w[wo + i·ws + k] · x[xo + j·xs + k]} for rows i &lt; 4 and
   * tokens j &lt; 3.
   */
  static void kernel4x3(
      float[] w, int wo, int ws, float[] x, int xo, int xs, int n, float[] y, int yo, int ys) {
    FloatVector c00 = FloatVector.zero(F);
    FloatVector c01 = FloatVector.zero(F);
    FloatVector c02 = FloatVector.zero(F);
    FloatVector c10 = FloatVector.zero(F);
    FloatVector c11 = FloatVector.zero(F);
    FloatVector c12 = FloatVector.zero(F);
    FloatVector c20 = FloatVector.zero(F);
    FloatVector c21 = FloatVector.zero(F);
    FloatVector c22 = FloatVector.zero(F);
    FloatVector c30 = FloatVector.zero(F);
    FloatVector c31 = FloatVector.zero(F);
    FloatVector c32 = FloatVector.zero(F);
    int vn = n & -L;
    int w1 = wo + ws;
    int w2 = wo + 2 * ws;
    int w3 = wo + 3 * ws;
    int x1 = xo + xs;
    int x2 = xo + 2 * xs;
    int k = 0;
    for (; k < vn; k += L) {
      FloatVector a0 = FloatVector.fromArray(F, x, xo + k);
      FloatVector a1 = FloatVector.fromArray(F, x, x1 + k);
      FloatVector a2 = FloatVector.fromArray(F, x, x2 + k);
      FloatVector b = FloatVector.fromArray(F, w, wo + k);
      c00 = b.fma(a0, c00);
      c01 = b.fma(a1, c01);
      c02 = b.fma(a2, c02);
      b = FloatVector.fromArray(F, w, w1 + k);
      c10 = b.fma(a0, c10);
      c11 = b.fma(a1, c11);
      c12 = b.fma(a2, c12);
      b = FloatVector.fromArray(F, w, w2 + k);
      c20 = b.fma(a0, c20);
      c21 = b.fma(a1, c21);
      c22 = b.fma(a2, c22);
      b = FloatVector.fromArray(F, w, w3 + k);
      c30 = b.fma(a0, c30);
      c31 = b.fma(a1, c31);
      c32 = b.fma(a2, c32);
    }
    float s00 = sum(c00);
    float s01 = sum(c01);
    float s02 = sum(c02);
    float s10 = sum(c10);
    float s11 = sum(c11);
    float s12 = sum(c12);
    float s20 = sum(c20);
    float s21 = sum(c21);
    float s22 = sum(c22);
    float s30 = sum(c30);
    float s31 = sum(c31);
    float s32 = sum(c32);
    for (; k < n; k++) {
      float a0 = x[xo + k];
      float a1 = x[x1 + k];
      float a2 = x[x2 + k];
      float b0 = w[wo + k];
      float b1 = w[w1 + k];
      float b2 = w[w2 + k];
      float b3 = w[w3 + k];
      s00 += b0 * a0;
      s01 += b0 * a1;
      s02 += b0 * a2;
      s10 += b1 * a0;
      s11 += b1 * a1;
      s12 += b1 * a2;
      s20 += b2 * a0;
      s21 += b2 * a1;
      s22 += b2 * a2;
      s30 += b3 * a0;
      s31 += b3 * a1;
      s32 += b3 * a2;
    }
    y[yo] += s00;
    y[yo + 1] += s10;
    y[yo + 2] += s20;
    y[yo + 3] += s30;
    y[yo + ys] += s01;
    y[yo + ys + 1] += s11;
    y[yo + ys + 2] += s21;
    y[yo + ys + 3] += s31;
    y[yo + 2 * ys] += s02;
    y[yo + 2 * ys + 1] += s12;
    y[yo + 2 * ys + 2] += s22;
    y[yo + 2 * ys + 3] += s32;
  }

  /** {@code y[yo + i] += Σ_{k<n} w[wo + i·ws + k] · x[xo + k]} for rows i &lt; 4. */
  static void kernel4x1(float[] w, int wo, int ws, float[] x, int xo, int n, float[] y, int yo) {
    FloatVector c0 = FloatVector.zero(F);
    FloatVector c1 = FloatVector.zero(F);
    FloatVector c2 = FloatVector.zero(F);
    FloatVector c3 = FloatVector.zero(F);
    int vn = n & -L;
    int k = 0;
    for (; k < vn; k += L) {
      FloatVector a = FloatVector.fromArray(F, x, xo + k);
      c0 = FloatVector.fromArray(F, w, wo + k).fma(a, c0);
      c1 = FloatVector.fromArray(F, w, wo + ws + k).fma(a, c1);
      c2 = FloatVector.fromArray(F, w, wo + 2 * ws + k).fma(a, c2);
      c3 = FloatVector.fromArray(F, w, wo + 3 * ws + k).fma(a, c3);
    }
    float s0 = sum(c0);
    float s1 = sum(c1);
    float s2 = sum(c2);
    float s3 = sum(c3);
    for (; k < n; k++) {
      float a = x[xo + k];
      s0 += w[wo + k] * a;
      s1 += w[wo + ws + k] * a;
      s2 += w[wo + 2 * ws + k] * a;
      s3 += w[wo + 3 * ws + k] * a;
    }
    y[yo] += s0;
    y[yo + 1] += s1;
    y[yo + 2] += s2;
    y[yo + 3] += s3;
  }

  /** {@code Σ_{k<n} w[wo + k] · x[xo + k]}. */
  static float dot(float[] w, int wo, float[] x, int xo, int n) {
    FloatVector c = FloatVector.zero(F);
    int vn = n & -L;
    int k = 0;
    for (; k < vn; k += L) {
      c = FloatVector.fromArray(F, w, wo + k).fma(FloatVector.fromArray(F, x, xo + k), c);
    }
    float s = sum(c);
    for (; k < n; k++) {
      s += w[wo + k] * x[xo + k];
    }
    return s;
  }

  /** Lane sum in a fixed order (see {@link Vec#sum}); here for the kernel's own species. */
  static float sum(FloatVector v) {
    FloatVector s = v;
    if (L == 16) {
      s = s.add(s.rearrange(ROT8));
    }
    s = s.add(s.rearrange(ROT4));
    s = s.add(s.rearrange(ROT2));
    s = s.add(s.rearrange(ROT1));
    return s.lane(0);
  }

  private static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }
}
