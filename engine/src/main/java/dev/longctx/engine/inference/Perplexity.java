package dev.longctx.engine.inference;

import java.util.function.IntConsumer;

/**
 * Perplexity of a token stream: the tokens are cut into consecutive windows of {@code ctx} tokens
 * (each optionally starting with BOS, which then takes one of the ctx slots); every token of a
 * window after its first is predicted from all tokens before it in the window; perplexity =
 * exp(mean negative log-likelihood over those predictions).
 */
public final class Perplexity {

  /** The outcome: predictions scored, their summed NLL (nats), and exp(mean NLL). */
  public record Result(long predictions, double totalNll, int windows) {
    public double perplexity() {
      return Math.exp(totalNll / predictions);
    }

    public double meanNll() {
      return totalNll / predictions;
    }
  }

  private Perplexity() {}

  /**
   * @param tokens the text's tokens, without BOS
   * @param ctx window length in tokens (including the BOS when {@code bos >= 0})
   * @param bos BOS id to start every window with, or -1 for none
   * @param maxWindows stop after this many windows (≤ 0: all)
   * @param progress called with the number of predictions scored so far, after each chunk
   */
  public static Result evaluate(
      Transformer model, int[] tokens, int ctx, int bos, int maxWindows, IntConsumer progress) {
    int textPerWindow = bos >= 0 ? ctx - 1 : ctx;
    if (textPerWindow < 1) {
      throw new IllegalArgumentException("ctx " + ctx + " leaves no room for text tokens");
    }
    int vocab = model.config().vocabSize();
    double[] total = {0};
    long[] count = {0};
    int windows = 0;
    for (int start = 0; start < tokens.length; start += textPerWindow) {
      if (maxWindows > 0 && windows == maxWindows) {
        break;
      }
      int n = Math.min(textPerWindow, tokens.length - start);
      int[] window = new int[n + (bos >= 0 ? 1 : 0)];
      if (bos >= 0) {
        window[0] = bos;
      }
      System.arraycopy(tokens, start, window, bos >= 0 ? 1 : 0, n);
      if (window.length < 2) {
        break;
      }
      Sequence seq = model.newSequence(window.length);
      model.forwardAll(
          seq,
          window,
          0,
          window.length - 1,
          Transformer.DEFAULT_CHUNK,
          (first, rows, logits) -> {
            for (int r = 0; r < rows; r++) {
              int target = window[first + r + 1];
              total[0] += negativeLogLikelihood(logits, r * vocab, vocab, target);
              count[0]++;
            }
            progress.accept((int) count[0]);
          });
      windows++;
    }
    if (count[0] == 0) {
      throw new IllegalArgumentException("perplexity needs at least two tokens");
    }
    return new Result(count[0], total[0], windows);
  }

  /** {@code -log softmax(logits)[target]}, computed in double with the max subtracted. */
  static double negativeLogLikelihood(float[] logits, int offset, int n, int target) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      max = Math.max(max, logits[offset + i]);
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += Math.exp(logits[offset + i] - max);
    }
    return Math.log(sum) + max - logits[offset + target];
  }
}
