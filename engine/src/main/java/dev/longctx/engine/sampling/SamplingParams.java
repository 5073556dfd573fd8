package dev.longctx.engine.sampling;

/**
 * How the next token is drawn from the logits. The filters run in the order repetition penalty →
 * temperature → top-k → top-p → min-p → draw (see {@link Sampler}).
 *
 * @param temperature logits are divided by it; 0 means greedy (argmax, lowest id on ties)
 * @param topK keep only the k most likely tokens; 0 turns the filter off
 * @param topP keep the smallest set of most likely tokens whose probability reaches topP, in (0,
 *     1]; 1 turns the filter off
 * @param minP drop tokens whose probability is below minP times the most likely one's, in [0, 1); 0
 *     turns the filter off
 * @param repetitionPenalty ≥ 1; a token seen in the last {@code repetitionLastN} tokens has a
 *     positive logit divided by it and a non-positive one multiplied by it (llama.cpp {@code
 *     penalty_repeat}); 1 turns it off
 * @param repetitionLastN how many of the most recent tokens the penalty looks at (llama.cpp {@code
 *     penalty_last_n}), ≥ 0; 0 turns it off
 * @param seed seed of the sampler's random stream; the same seed gives the same draws
 */
public record SamplingParams(
    float temperature,
    int topK,
    float topP,
    float minP,
    float repetitionPenalty,
    int repetitionLastN,
    long seed) {

  public SamplingParams {
    if (!(temperature >= 0) || Float.isInfinite(temperature)) {
      throw new IllegalArgumentException(
          "temperature must be >= 0 and finite (0 = greedy), got " + temperature);
    }
    if (topK < 0) {
      throw new IllegalArgumentException("topK must be >= 0 (0 = off), got " + topK);
    }
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("topP must be in (0, 1] (1 = off), got " + topP);
    }
    if (!(minP >= 0 && minP < 1)) {
      throw new IllegalArgumentException("minP must be in [0, 1) (0 = off), got " + minP);
    }
    if (!(repetitionPenalty >= 1) || Float.isInfinite(repetitionPenalty)) {
      throw new IllegalArgumentException(
          "repetitionPenalty must be >= 1 and finite (1 = off), got " + repetitionPenalty);
    }
    if (repetitionLastN < 0) {
      throw new IllegalArgumentException(
          "repetitionLastN must be >= 0 (0 = off), got " + repetitionLastN);
    }
  }

  /** Greedy decoding: argmax, no penalty. */
  public static SamplingParams greedy() {
    return new SamplingParams(0f, 0, 1f, 0f, 1f, 0, 0L);
  }

  /** Plain sampling from {@code softmax(logits / temperature)}, no filters. */
  public static SamplingParams temperature(float temperature, long seed) {
    return new SamplingParams(temperature, 0, 1f, 0f, 1f, 0, seed);
  }

  public SamplingParams withTopK(int k) {
    return new SamplingParams(temperature, k, topP, minP, repetitionPenalty, repetitionLastN, seed);
  }

  public SamplingParams withTopP(float p) {
    return new SamplingParams(temperature, topK, p, minP, repetitionPenalty, repetitionLastN, seed);
  }

  public SamplingParams withMinP(float p) {
    return new SamplingParams(temperature, topK, topP, p, repetitionPenalty, repetitionLastN, seed);
  }

  public SamplingParams withRepetitionPenalty(float penalty, int lastN) {
    return new SamplingParams(temperature, topK, topP, minP, penalty, lastN, seed);
  }

  public SamplingParams withSeed(long s) {
    return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, s);
  }

  public boolean isGreedy() {
    return temperature == 0;
  }
}
