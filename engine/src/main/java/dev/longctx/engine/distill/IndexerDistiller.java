package dev.longctx.engine.distill;

import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Trains one lightning indexer per attention layer of a frozen model on its own attention
 * (ALGORITHMS.md §5.3, the DSA warm-up recipe without autograd): every layer independently, the
 * model's inputs detached, Adam on the KL loss of {@link IndexerObjective} over a batch of windows
 * per step. Initialization per §5.3: small random W_q, W_k and W_w (W_w not zero, or the queries
 * and keys get no gradient), LayerNorm γ = 1, β = 0.
 */
public final class IndexerDistiller {

  /**
   * @param heads H_I
   * @param headDim d_I (a multiple of 4)
   * @param steps Adam steps
   * @param learningRate Adam's step size (§5.3: 1e-3)
   * @param batch windows per step
   * @param seed initialization and batch sampling
   */
  public record Options(
      int heads, int headDim, int steps, double learningRate, int batch, long seed) {
    public Options {
      if (steps < 0 || batch < 1) {
        throw new IllegalArgumentException(
            "steps must be >= 0 and batch >= 1, got " + steps + " and " + batch);
      }
      if (!(learningRate > 0)) {
        throw new IllegalArgumentException("learning rate must be > 0, got " + learningRate);
      }
    }
  }

  /** A progress report: mean loss per query over the step's batch and over the held-out windows. */
  public record Progress(int step, double trainLoss, double heldOutLoss) {}

  /**
   * The trained indexer: its float64 parameters per layer (in {@link IndexerObjective.Shape}'s
   * layout), those it started from, and the held-out loss before and after training.
   */
  public record Result(
      IndexerObjective objective,
      double[][] parameters,
      double[][] initialParameters,
      double initialLoss,
      double finalLoss) {

    /** The indexer in float32, as the engine runs it. */
    public LightningIndexer indexer(float ropeTheta) {
      return IndexerDistiller.indexer(objective.shape(), parameters, ropeTheta);
    }
  }

  private static final double BETA1 = 0.9;
  private static final double BETA2 = 0.999;
  private static final double EPSILON = 1e-8;

  private IndexerDistiller() {}

  /** Fresh parameters per §5.3: uniform ±1/√D for the three matrices, γ = 1, β = 0. */
  public static double[] initialParameters(IndexerObjective.Shape shape, SplittableRandom random) {
    double[] theta = new double[shape.size()];
    double a = 1.0 / Math.sqrt(shape.dim());
    for (int i = 0; i < shape.gamma(); i++) {
      theta[i] = random.nextDouble(-a, a);
    }
    Arrays.fill(theta, shape.gamma(), shape.beta(), 1.0);
    for (int i = shape.ww(); i < shape.size(); i++) {
      theta[i] = random.nextDouble(-a, a);
    }
    return theta;
  }

  /**
   * Trains the indexers of every layer on {@code train} (per window, one {@link
   * IndexerObjective.Window} per layer) and reports the held-out loss every {@code reportEvery}
   * steps (and at the start and end) to {@code progress}.
   */
  public static Result train(
      IndexerObjective objective,
      List<IndexerObjective.Window[]> train,
      List<IndexerObjective.Window[]> heldOut,
      Options options,
      int reportEvery,
      Consumer<Progress> progress) {
    if (train.isEmpty()) {
      throw new IllegalArgumentException("distillation needs at least one training window");
    }
    int layers = train.getFirst().length;
    SplittableRandom random = new SplittableRandom(options.seed());
    double[][] theta = new double[layers][];
    double[][] start = new double[layers][];
    for (int l = 0; l < layers; l++) {
      theta[l] = initialParameters(objective.shape(), random);
      start[l] = theta[l].clone();
    }
    double initial = meanLoss(objective, theta, heldOut.isEmpty() ? train : heldOut);
    progress.accept(new Progress(0, Double.NaN, initial));
    int size = objective.shape().size();
    double[][] m = new double[layers][size];
    double[][] v = new double[layers][size];
    double[] grad = new double[size];
    double trainLoss = Double.NaN;
    for (int step = 1; step <= options.steps(); step++) {
      List<IndexerObjective.Window[]> batch = new ArrayList<>(options.batch());
      int queries = 0;
      for (int b = 0; b < options.batch(); b++) {
        IndexerObjective.Window[] w = train.get(random.nextInt(train.size()));
        batch.add(w);
        queries += w[0].rows().length;
      }
      double lossSum = 0;
      for (int l = 0; l < layers; l++) {
        Arrays.fill(grad, 0);
        for (IndexerObjective.Window[] w : batch) {
          lossSum += objective.evaluate(theta[l], w[l], grad, 1.0 / queries).sum();
        }
        adam(theta[l], grad, m[l], v[l], step, options.learningRate());
      }
      trainLoss = lossSum / queries / layers;
      if (step % Math.max(1, reportEvery) == 0 && step < options.steps()) {
        double held = heldOut.isEmpty() ? Double.NaN : meanLoss(objective, theta, heldOut);
        progress.accept(new Progress(step, trainLoss, held));
      }
    }
    double last = meanLoss(objective, theta, heldOut.isEmpty() ? train : heldOut);
    if (options.steps() > 0) {
      progress.accept(
          new Progress(options.steps(), trainLoss, heldOut.isEmpty() ? Double.NaN : last));
    }
    return new Result(objective, theta, start, initial, last);
  }

  /** The loss per query and layer, averaged over {@code windows} and every layer. */
  public static double meanLoss(
      IndexerObjective objective, double[][] theta, List<IndexerObjective.Window[]> windows) {
    double sum = 0;
    long queries = 0;
    for (IndexerObjective.Window[] w : windows) {
      for (int l = 0; l < theta.length; l++) {
        IndexerObjective.Loss loss = objective.evaluate(theta[l], w[l], null, 0);
        sum += loss.sum();
        queries += loss.queries();
      }
    }
    return sum / queries;
  }

  /** One Adam step (Kingma and Ba, bias-corrected moments). */
  static void adam(double[] theta, double[] grad, double[] m, double[] v, int step, double lr) {
    double c1 = 1 - Math.pow(BETA1, step), c2 = 1 - Math.pow(BETA2, step);
    for (int i = 0; i < theta.length; i++) {
      double g = grad[i];
      m[i] = BETA1 * m[i] + (1 - BETA1) * g;
      v[i] = BETA2 * v[i] + (1 - BETA2) * g * g;
      theta[i] -= lr * (m[i] / c1) / (Math.sqrt(v[i] / c2) + EPSILON);
    }
  }

  /**
   * Attention-mass recall (ALGORITHMS.md §5.1) of the top-k selection by {@code scores} ([n, n],
   * row t's at t·n) against the model's p: R_t = Σ_{s ∈ S_t} p_{t,s} with S_t the k highest scores
   * of row t (ties by position, as the engine selects), averaged over the window's query rows with
   * more than k keys (rows of k keys or fewer select everything). With {@code scores} null, the
   * oracle's: S_t the k largest p.
   */
  public static double recall(IndexerObjective.Window window, double[] scores, int k) {
    int n = window.n();
    float[] p = window.p();
    float[] row = new float[n];
    double sum = 0;
    int counted = 0;
    for (int r = 0; r < window.rows().length; r++) {
      int t = window.rows()[r];
      if (t < k) {
        continue;
      }
      // The engine's selection over float scores (TopK: score desc, position asc).
      for (int s = 0; s <= t; s++) {
        row[s] = scores == null ? p[r * n + s] : (float) scores[t * n + s];
      }
      double mass = 0;
      for (int s : TopK.select(row, null, t + 1, k).positions()) {
        mass += p[r * n + s];
      }
      sum += mass;
      counted++;
    }
    return counted == 0 ? 1.0 : sum / counted;
  }

  /** Float32 indexer layers from float64 parameters. */
  static LightningIndexer indexer(
      IndexerObjective.Shape shape, double[][] parameters, float ropeTheta) {
    List<LightningIndexer.Layer> layers = new ArrayList<>(parameters.length);
    int h = shape.heads(), hd = shape.headDim(), dim = shape.dim();
    for (double[] theta : parameters) {
      layers.add(
          new LightningIndexer.Layer(
              FloatTensor.ofFloats(floats(theta, shape.wq(), h * hd * dim), h * hd, dim),
              FloatTensor.ofFloats(floats(theta, shape.wk(), hd * dim), hd, dim),
              floats(theta, shape.gamma(), hd),
              floats(theta, shape.beta(), hd),
              FloatTensor.ofFloats(floats(theta, shape.ww(), h * dim), h, dim)));
    }
    return new LightningIndexer(layers, ropeTheta);
  }

  private static float[] floats(double[] v, int off, int n) {
    float[] out = new float[n];
    for (int i = 0; i < n; i++) {
      out[i] = (float) v[off + i];
    }
    return out;
  }
}
