package dev.longctx.engine.distill;

import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.Parallel;

/**
 * The distillation loss of one layer's lightning indexer and its exact gradient, in float64
 * (ALGORITHMS.md §5.3): the indexer
 *
 * <pre>
 *   q_{t,j} = RoPE_[0,d_r)(W_q^(j) x_t),   k_s = RoPE_[0,d_r)(LN(W_k x_s)),   w_t = W_w x_t
 *   I_{t,s} = c · Σ_j w_{t,j} · ReLU(q_{t,j}·k_s),   c = (H_I·d_I)^-½
 * </pre>
 *
 * against the frozen model's attention distribution p_t (mean over query heads), loss
 *
 * <pre>
 *   L = (1/T) Σ_t Σ_{s≤t} p_{t,s} · (log p_{t,s} − I_{t,s} + LSE_t)     (DS32 eq. 3, KL(p_t ‖ softmax I_t))
 * </pre>
 *
 * and its gradient back through the ReLU, both RoPE rotations (Rᵀ), the key LayerNorm and the three
 * projections, with the model's inputs x detached. Rows never materialize an L×L matrix of more
 * than one query at a time: the work is split over query rows, each chunk keeping its own
 * key-gradient accumulator.
 *
 * <p>The parameters of a layer are one flat array (see {@link Shape}): W_q (H_I·d_I rows of the
 * model width D), W_k (d_I × D), γ and β of the LayerNorm (d_I each), W_w (H_I × D), row major —
 * the layout {@link dev.longctx.engine.attention.LightningIndexer.Layer} takes.
 */
public final class IndexerObjective {

  /**
   * A layer's indexer dimensions and where each parameter sits in the flat array.
   *
   * @param heads H_I
   * @param headDim d_I (a multiple of 4: RoPE rotates the first d_r = d_I/2 in halves)
   * @param dim D, the model width (the indexer reads the attention layer's normalized input)
   */
  public record Shape(int heads, int headDim, int dim) {
    public Shape {
      if (heads <= 0 || dim <= 0) {
        throw new IllegalArgumentException(
            "indexer heads and input width must be > 0, got " + heads + " and " + dim);
      }
      if (headDim <= 0 || headDim % 4 != 0) {
        throw new IllegalArgumentException(
            "indexer head dim must be a positive multiple of 4, got " + headDim);
      }
    }

    int wq() {
      return 0;
    }

    int wk() {
      return heads * headDim * dim;
    }

    int gamma() {
      return wk() + headDim * dim;
    }

    int beta() {
      return gamma() + headDim;
    }

    int ww() {
      return beta() + headDim;
    }

    /** Length of the flat parameter array. */
    public int size() {
      return ww() + heads * dim;
    }

    /** The score scale c = (H_I·d_I)^-½. */
    double scale() {
      return 1.0 / Math.sqrt((double) heads * headDim);
    }
  }

  /**
   * What the frozen model gives one layer for one window of tokens at positions {@code 0..n-1}: its
   * normalized attention inputs, and the attention distributions of some (or all) query rows. Every
   * token is a key; only the rows listed are queries of the loss, so a long window costs O(rows ·
   * n) rather than O(n²).
   *
   * @param x [n, D] the layer's normalized attention input rows
   * @param rows the query rows, ascending
   * @param p [rows.length, n]: entry (r, s) is p_{rows[r], s} for s ≤ rows[r] (Σ_s = 1; entries
   *     past the row ignored)
   * @param n tokens
   */
  public record Window(float[] x, int[] rows, float[] p, int n) {

    /** A window whose every token is a query: p is [n, n]. */
    public Window(float[] x, float[] p, int n) {
      this(x, TeacherAttention.allRows(n), p, n);
    }
  }

  private final Shape shape;
  private final double[] invFreq;

  /**
   * @param ropeTheta the model's RoPE base, rotating as {@link LightningIndexer#rope} does
   */
  public IndexerObjective(Shape shape, float ropeTheta) {
    this.shape = shape;
    Rope rope = LightningIndexer.rope(shape.headDim(), ropeTheta);
    this.invFreq = new double[rope.headDim() / 2];
    for (int i = 0; i < invFreq.length; i++) {
      invFreq[i] = rope.frequency(i);
    }
  }

  public Shape shape() {
    return shape;
  }

  /** The loss summed over a window's queries, and their number. */
  public record Loss(double sum, int queries) {}

  /**
   * Σ_t KL(p_t ‖ softmax I_t) of {@code window} under {@code theta}, and, when {@code grad} is not
   * null, adds {@code scale ·} its gradient to {@code grad}.
   */
  public Loss evaluate(double[] theta, Window window, double[] grad, double scale) {
    Shape sh = shape;
    int n = window.n();
    int[] rows = window.rows();
    int heads = sh.heads(), hd = sh.headDim();
    Forward f = forward(theta, window.x(), n);
    double c = sh.scale();
    int threads = Math.min(Parallel.threads(), rows.length);
    double[] lossParts = new double[threads];
    double[][] dkParts = new double[threads][];
    double[] dq = grad == null ? null : new double[n * heads * hd];
    double[] dw = grad == null ? null : new double[n * heads];
    Parallel.forRange(
        threads,
        (from, to) -> {
          for (int part = from; part < to; part++) {
            double[] dk = grad == null ? null : new double[n * hd];
            double[] u = new double[heads * n];
            double[] logits = new double[n];
            double[] g = new double[n];
            double loss = 0;
            // Rows interleaved over the parts: causal rows grow with t.
            for (int r = part; r < rows.length; r += threads) {
              loss += row(f, window.p(), r * n, rows[r], n, c, u, logits, g, dq, dw, dk);
            }
            lossParts[part] = loss;
            dkParts[part] = dk;
          }
        });
    double loss = 0;
    for (double l : lossParts) {
      loss += l;
    }
    if (grad != null) {
      double[] dk = new double[n * hd];
      for (double[] part : dkParts) {
        for (int i = 0; i < dk.length; i++) {
          dk[i] += part[i];
        }
      }
      backward(theta, window.x(), n, f, dq, dw, dk, grad, scale);
    }
    return new Loss(loss, rows.length);
  }

  /**
   * Indexer scores I_{t,s} (s ≤ t) of the query rows {@code rows} of the n tokens {@code x} under
   * {@code theta}: [n, n], row t at t·n (rows not listed 0).
   */
  public double[] scores(double[] theta, float[] x, int n, int[] rows) {
    Forward f = forward(theta, x, n);
    double[] out = new double[n * n];
    Parallel.forRange(
        rows.length,
        (from, to) -> {
          double[] u = new double[shape.heads() * n];
          for (int r = from; r < to; r++) {
            rowScores(f, rows[r], n, u, out, rows[r] * n);
          }
        });
    return out;
  }

  /**
   * Row t's scores I_{t,s} for s ≤ t into {@code out[off ..]}, and the head dot products u_{j,s} =
   * q_{t,j}·k_s into {@code u[j·n + s]} (the backward pass's ReLU gates).
   */
  private void rowScores(Forward f, int t, int n, double[] u, double[] out, int off) {
    int heads = shape.heads(), hd = shape.headDim();
    double c = shape.scale();
    for (int s = 0; s <= t; s++) {
      double sum = 0;
      for (int j = 0; j < heads; j++) {
        double dot = dot(f.q, (t * heads + j) * hd, f.k, s * hd, hd);
        u[j * n + s] = dot;
        if (dot > 0) {
          sum += f.w[t * heads + j] * dot;
        }
      }
      out[off + s] = c * sum;
    }
  }

  /** The forward pass's per-token state: rotated queries and keys, head weights, LayerNorm's. */
  private static final class Forward {
    double[] q; // [n, heads, hd], rotated
    double[] k; // [n, hd], rotated
    double[] w; // [n, heads]
    double[] xhat; // [n, hd], normalized W_k x
    double[] invSigma; // [n]
  }

  private Forward forward(double[] theta, float[] x, int n) {
    Shape sh = shape;
    int heads = sh.heads(), hd = sh.headDim(), dim = sh.dim();
    Forward f = new Forward();
    f.q = new double[n * heads * hd];
    f.k = new double[n * hd];
    f.w = new double[n * heads];
    f.xhat = new double[n * hd];
    f.invSigma = new double[n];
    Parallel.forRange(
        n,
        (from, to) -> {
          for (int t = from; t < to; t++) {
            int xo = t * dim;
            for (int r = 0; r < heads * hd; r++) {
              f.q[t * heads * hd + r] = dotX(theta, sh.wq() + r * dim, x, xo, dim);
            }
            for (int j = 0; j < heads; j++) {
              rotate(f.q, (t * heads + j) * hd, t, false);
              f.w[t * heads + j] = dotX(theta, sh.ww() + j * dim, x, xo, dim);
            }
            double mean = 0;
            for (int i = 0; i < hd; i++) {
              double z = dotX(theta, sh.wk() + i * dim, x, xo, dim);
              f.xhat[t * hd + i] = z;
              mean += z;
            }
            mean /= hd;
            double var = 0;
            for (int i = 0; i < hd; i++) {
              double d = f.xhat[t * hd + i] - mean;
              var += d * d;
            }
            double inv = 1.0 / Math.sqrt(var / hd + LightningIndexer.LAYER_NORM_EPS);
            f.invSigma[t] = inv;
            for (int i = 0; i < hd; i++) {
              double xh = (f.xhat[t * hd + i] - mean) * inv;
              f.xhat[t * hd + i] = xh;
              f.k[t * hd + i] = theta[sh.gamma() + i] * xh + theta[sh.beta() + i];
            }
            rotate(f.k, t * hd, t, false);
          }
        });
    return f;
  }

  /**
   * Query row t (its p at {@code pOff}): its loss term, and (when dq is not null) g = softmax(I_t)
   * − p_t pushed back into dq, dw (row t's) and dk (every key s ≤ t).
   */
  private double row(
      Forward f,
      float[] p,
      int pOff,
      int t,
      int n,
      double c,
      double[] u,
      double[] logits,
      double[] g,
      double[] dq,
      double[] dw,
      double[] dk) {
    int heads = shape.heads(), hd = shape.headDim();
    rowScores(f, t, n, u, logits, 0);
    double loss = logitGradient(logits, p, pOff, t + 1, dq == null ? null : g);
    if (dq == null) {
      return loss;
    }
    for (int s = 0; s <= t; s++) {
      double gs = g[s];
      if (gs == 0) {
        continue;
      }
      for (int j = 0; j < heads; j++) {
        double uj = u[j * n + s];
        if (uj <= 0) {
          continue; // ReLU'(u) = 1[u > 0]
        }
        dw[t * heads + j] += c * gs * uj;
        double delta = c * gs * f.w[t * heads + j];
        int qo = (t * heads + j) * hd, ko = s * hd;
        for (int i = 0; i < hd; i++) {
          dq[qo + i] += delta * f.k[ko + i];
          dk[ko + i] += delta * f.q[qo + i];
        }
      }
    }
    return loss;
  }

  /**
   * One query's loss Σ_s p_s·(log p_s − I_s + LSE) over {@code logits[0, len)} against {@code
   * p[pOff, pOff + len)} (terms with p_s = 0 are 0), and, when {@code g} is not null, the exact
   * gradient g_s = ∂L/∂I_s = softmax(I)_s − p_s into {@code g[0, len)} (§5.3: it sums to 0 because
   * Σ p = 1).
   */
  static double logitGradient(double[] logits, float[] p, int pOff, int len, double[] g) {
    double max = Double.NEGATIVE_INFINITY;
    for (int s = 0; s < len; s++) {
      max = Math.max(max, logits[s]);
    }
    double z = 0;
    for (int s = 0; s < len; s++) {
      z += Math.exp(logits[s] - max);
    }
    double lse = max + Math.log(z);
    double loss = 0;
    for (int s = 0; s < len; s++) {
      double ps = p[pOff + s];
      if (ps > 0) {
        loss += ps * (Math.log(ps) - logits[s] + lse);
      }
      if (g != null) {
        g[s] = Math.exp(logits[s] - lse) - ps;
      }
    }
    return loss;
  }

  /** From the rotated-space gradients back to the parameters (added × scale into grad). */
  private void backward(
      double[] theta,
      float[] x,
      int n,
      Forward f,
      double[] dq,
      double[] dw,
      double[] dk,
      double[] grad,
      double scale) {
    Shape sh = shape;
    int heads = sh.heads(), hd = sh.headDim(), dim = sh.dim();
    for (int t = 0; t < n; t++) {
      for (int j = 0; j < heads; j++) {
        rotate(dq, (t * heads + j) * hd, t, true); // Rᵀ: gradient of the pre-RoPE query
      }
      rotate(dk, t * hd, t, true); // gradient of the LayerNorm output y
    }
    // LayerNorm: dγ, dβ, and dz = (1/σ)(ĝ − mean ĝ − x̂ ⊙ mean(ĝ ⊙ x̂)) with ĝ = γ ⊙ dy.
    double[] dz = new double[n * hd];
    double[] dGamma = new double[hd], dBeta = new double[hd];
    for (int s = 0; s < n; s++) {
      double meanG = 0, meanGx = 0;
      for (int i = 0; i < hd; i++) {
        double dy = dk[s * hd + i];
        double xh = f.xhat[s * hd + i];
        dGamma[i] += dy * xh;
        dBeta[i] += dy;
        double gh = theta[sh.gamma() + i] * dy;
        meanG += gh;
        meanGx += gh * xh;
      }
      meanG /= hd;
      meanGx /= hd;
      for (int i = 0; i < hd; i++) {
        double gh = theta[sh.gamma() + i] * dk[s * hd + i];
        dz[s * hd + i] = f.invSigma[s] * (gh - meanG - f.xhat[s * hd + i] * meanGx);
      }
    }
    for (int i = 0; i < hd; i++) {
      grad[sh.gamma() + i] += scale * dGamma[i];
      grad[sh.beta() + i] += scale * dBeta[i];
    }
    // Projections: ∂W = Σ_t (∂out_t) x_tᵀ, one parameter row per task.
    int rows = heads * hd + hd + heads;
    Parallel.forRange(
        rows,
        (from, to) -> {
          for (int r = from; r < to; r++) {
            int base;
            double[] src;
            int stride, col;
            if (r < heads * hd) {
              base = sh.wq() + r * dim;
              src = dq;
              stride = heads * hd;
              col = r;
            } else if (r < heads * hd + hd) {
              int i = r - heads * hd;
              base = sh.wk() + i * dim;
              src = dz;
              stride = hd;
              col = i;
            } else {
              int j = r - heads * hd - hd;
              base = sh.ww() + j * dim;
              src = dw;
              stride = heads;
              col = j;
            }
            for (int t = 0; t < n; t++) {
              double g = scale * src[t * stride + col];
              if (g == 0) {
                continue;
              }
              int xo = t * dim;
              for (int d = 0; d < dim; d++) {
                grad[base + d] += g * x[xo + d];
              }
            }
          }
        });
  }

  /**
   * RoPE at position {@code pos} of one head's first d_r dimensions in place, rotate-half pairs (i,
   * i + d_r/2) by angle pos·θ_i; {@code transpose} applies Rᵀ (rotation by −angle), which carries a
   * gradient back through it.
   */
  private void rotate(double[] v, int off, int pos, boolean transpose) {
    int half = invFreq.length;
    for (int i = 0; i < half; i++) {
      double angle = pos * invFreq[i];
      double cos = Math.cos(angle), sin = transpose ? -Math.sin(angle) : Math.sin(angle);
      double a = v[off + i], b = v[off + i + half];
      v[off + i] = a * cos - b * sin;
      v[off + i + half] = a * sin + b * cos;
    }
  }

  private static double dot(double[] a, int ao, double[] b, int bo, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += a[ao + i] * b[bo + i];
    }
    return sum;
  }

  private static double dotX(double[] w, int wo, float[] x, int xo, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += w[wo + i] * x[xo + i];
    }
    return sum;
  }
}
