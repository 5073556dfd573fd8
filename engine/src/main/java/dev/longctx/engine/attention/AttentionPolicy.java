package dev.longctx.engine.attention;

import java.util.Locale;

/**
 * How a sequence attends: which keys each query sees (all of them, the top-k of an indexer, or the
 * top blocks) and at which RoPE positions (plain, or SelfExtend's grouped positions). Chosen per
 * model ({@code Transformer.withAttention}) and per request ({@code Transformer.newSequence(max,
 * policy)}). Every record validates its parameters at construction with a message naming the
 * offending value; {@link #checkContext} checks a requested length against what the policy supports
 * for a model's trained context.
 *
 * <p>Combinations: the sparse policies take an optional {@link SelfExtend} whose position mapping
 * applies to the selected keys (the selection and the two-rotation attention compose because the
 * SelfExtend logit of a key depends only on (i, j), ALGORITHMS.md §2.3).
 */
public sealed interface AttentionPolicy {

  /** Name used on the command line ({@code --attention}). */
  String name();

  /** SelfExtend position mapping in force, or null for plain RoPE positions. */
  SelfExtend positions();

  /**
   * The trained lightning indexer that selects this policy's keys (indexer top-k with the model
   * file's or an indexer file's, {@link IndexerSource.Trained}), or null.
   */
  default LightningIndexer lightningIndexer() {
    return this instanceof IndexerTopK t ? t.indexer().lightningIndexer() : null;
  }

  /**
   * The longest sequence this policy supports for a model trained on {@code trainedContext} tokens,
   * or {@link Integer#MAX_VALUE} when unlimited (plain RoPE runs, and degrades, past its trained
   * context).
   */
  default int maxContext(int trainedContext) {
    SelfExtend se = positions();
    return se == null ? Integer.MAX_VALUE : se.maxContext(trainedContext);
  }

  /** Throws with the limit and how it follows from the parameters if {@code tokens} exceeds it. */
  default void checkContext(int tokens, int trainedContext) {
    SelfExtend se = positions();
    if (se != null) {
      se.validateFor(trainedContext);
      int max = se.maxContext(trainedContext);
      if (tokens > max) {
        throw new IllegalArgumentException(
            String.format(
                Locale.ROOT,
                "%d tokens exceed SelfExtend's maximum context %d = (L_train %d − w %d)·G %d + w"
                    + " %d; raise --group-size or shorten the input",
                tokens,
                max,
                trainedContext,
                se.neighborWindow(),
                se.groupSize(),
                se.neighborWindow()));
      }
    }
  }

  static Dense dense() {
    return new Dense();
  }

  /** Plain causal attention over every key. */
  record Dense() implements AttentionPolicy {
    @Override
    public String name() {
      return "dense";
    }

    @Override
    public SelfExtend positions() {
      return null;
    }
  }

  /**
   * SelfExtend (ALGORITHMS.md §2): keys closer than {@code neighborWindow} use their own positions,
   * farther keys grouped positions {@code ⌊j/G⌋} against a query at {@code ⌊i/G⌋ + w − w/G}.
   *
   * @param groupSize G ≥ 1 (llama.cpp {@code --grp-attn-n})
   * @param neighborWindow w ≥ 1, a multiple of G (llama.cpp {@code --grp-attn-w})
   * @param mode the paper's exact mapping or llama.cpp's chunk-aligned one
   */
  record SelfExtend(int groupSize, int neighborWindow, SelfExtendMode mode)
      implements AttentionPolicy {
    public SelfExtend {
      if (groupSize < 1) {
        throw new IllegalArgumentException("SelfExtend group size must be >= 1, got " + groupSize);
      }
      if (neighborWindow < 1) {
        throw new IllegalArgumentException(
            "SelfExtend neighbor window must be >= 1, got " + neighborWindow);
      }
      if (neighborWindow % groupSize != 0) {
        throw new IllegalArgumentException(
            "SelfExtend neighbor window w = "
                + neighborWindow
                + " must be a multiple of the group size G = "
                + groupSize
                + " (ALGORITHMS.md §2.2)");
      }
      if (mode == null) {
        throw new IllegalArgumentException("SelfExtend mode must not be null");
      }
    }

    public SelfExtend(int groupSize, int neighborWindow) {
      this(groupSize, neighborWindow, SelfExtendMode.EXACT);
    }

    @Override
    public String name() {
      return "self-extend";
    }

    @Override
    public SelfExtend positions() {
      return this;
    }

    /** {@code (L_train − w)·G + w} (ALGORITHMS.md §2.2, paper eq. 4). */
    public int maxContext(int trainedContext) {
      long max = (long) (trainedContext - neighborWindow) * groupSize + neighborWindow;
      return (int) Math.min(Integer.MAX_VALUE, max);
    }

    /**
     * The first key of query {@code i}'s neighbor region: keys {@code j ≥} this use their own
     * positions, earlier keys grouped ones. Exact: {@code i − w + 1} (ALGORITHMS.md §2.2);
     * llama.cpp: the chunk start {@code c = w·⌊i/w⌋} (§2.4 closed form).
     */
    public int neighborStart(int i) {
      return switch (mode) {
        case EXACT -> Math.max(0, i - neighborWindow + 1);
        case LLAMACPP -> neighborWindow * (i / neighborWindow);
      };
    }

    /** RoPE position of a key in the grouped region: {@code ⌊j/G⌋}. */
    public int groupKeyPosition(int j) {
      return j / groupSize;
    }

    /**
     * RoPE position of query {@code i} against grouped keys: {@code ⌊i/G⌋ + w − w/G} (exact, §2.2),
     * or {@code c/G + (i − c)} with {@code c = w·⌊i/w⌋} (llama.cpp, §2.4).
     */
    public int groupQueryPosition(int i) {
      return switch (mode) {
        case EXACT -> i / groupSize + neighborWindow - neighborWindow / groupSize;
        case LLAMACPP -> {
          int c = neighborWindow * (i / neighborWindow);
          yield c / groupSize + (i - c);
        }
      };
    }

    /** The relative position query {@code i} sees key {@code j ≤ i} at. */
    public int relativePosition(int i, int j) {
      return j >= neighborStart(i) ? i - j : groupQueryPosition(i) - groupKeyPosition(j);
    }

    void validateFor(int trainedContext) {
      if (neighborWindow >= trainedContext) {
        throw new IllegalArgumentException(
            "SelfExtend neighbor window w = "
                + neighborWindow
                + " must be smaller than the trained context "
                + trainedContext);
      }
    }
  }

  /** Which SelfExtend position bookkeeping to use. */
  enum SelfExtendMode {
    /** The paper's mapping (ALGORITHMS.md §2.2), two rotated key caches (§2.4 design 1). */
    EXACT,
    /**
     * llama.cpp's {@code --grp-attn-n/--grp-attn-w}: the neighbor window is chunk-aligned, keys
     * before {@code c = w·⌊i/w⌋} are grouped (ALGORITHMS.md §2.4, closed form).
     */
    LLAMACPP;

    public static SelfExtendMode parse(String s) {
      return switch (s.toLowerCase(Locale.ROOT)) {
        case "exact" -> EXACT;
        case "llamacpp", "llama.cpp" -> LLAMACPP;
        default ->
            throw new IllegalArgumentException(
                "unknown SelfExtend mode '" + s + "' (expected exact or llamacpp)");
      };
    }
  }

  /**
   * DSA-style top-k sparse attention (ALGORITHMS.md §1.2 steps 9–11): an indexer scores every
   * causal key, the k best under (score desc, position asc) are attended by every head of the
   * query. Queries with fewer than {@code denseBelowTokens} causal keys (or at most k) attend
   * densely, which is the same result (§1.3 "Short sequences").
   *
   * @param k keys per query, ≥ 1
   * @param denseBelowTokens queries at positions below this attend densely, ≥ 0
   * @param indexer where the scores come from
   * @param positions SelfExtend mapping applied to the selected keys, or null
   */
  record IndexerTopK(int k, int denseBelowTokens, IndexerSource indexer, SelfExtend positions)
      implements AttentionPolicy {
    public IndexerTopK {
      if (k < 1) {
        throw new IllegalArgumentException("indexer top-k must be >= 1, got " + k);
      }
      if (denseBelowTokens < 0) {
        throw new IllegalArgumentException("dense-below must be >= 0, got " + denseBelowTokens);
      }
      if (indexer == null) {
        throw new IllegalArgumentException("indexer must not be null");
      }
    }

    public IndexerTopK(int k) {
      this(k, 0, IndexerSource.ownHeads(), null);
    }

    @Override
    public String name() {
      return "indexer-topk";
    }
  }

  /**
   * Block top-k (MoBA / Quest, ALGORITHMS.md §3): keys in blocks of {@code blockSize}; each query
   * attends to its current block plus the {@code topBlocks − 1} best complete past blocks (so
   * {@code topBlocks} counts the current block, as MoBA's k does).
   *
   * @param blockSize B ≥ 1
   * @param topBlocks blocks per query including the current one, ≥ 1
   * @param score how a block is scored against the query
   * @param positions SelfExtend mapping applied to the selected keys, or null
   */
  record BlockTopK(int blockSize, int topBlocks, BlockScore score, SelfExtend positions)
      implements AttentionPolicy {
    public BlockTopK {
      if (blockSize < 1) {
        throw new IllegalArgumentException("block size must be >= 1, got " + blockSize);
      }
      if (topBlocks < 1) {
        throw new IllegalArgumentException(
            "top blocks must be >= 1 (it counts the current block), got " + topBlocks);
      }
      if (score == null) {
        throw new IllegalArgumentException("block score must not be null");
      }
    }

    public BlockTopK(int blockSize, int topBlocks) {
      this(blockSize, topBlocks, BlockScore.QUEST, null);
    }

    @Override
    public String name() {
      return "block-topk";
    }
  }

  /** Block representatives (ALGORITHMS.md §3.1, §3.3). */
  enum BlockScore {
    /** MoBA: ⟨q, mean of the block's keys⟩. */
    MEAN,
    /** Quest: Σ_i max(q_i·min_i, q_i·max_i), an upper bound on q·k in the block. */
    QUEST;

    public static BlockScore parse(String s) {
      return switch (s.toLowerCase(Locale.ROOT)) {
        case "mean", "moba" -> MEAN;
        case "quest", "minmax", "min-max" -> QUEST;
        default ->
            throw new IllegalArgumentException(
                "unknown block score '" + s + "' (expected mean or quest)");
      };
    }
  }

  /**
   * Builds a policy from command-line style values; the parameters a policy does not use must be
   * null (so a misplaced option is an error, not silently ignored).
   */
  static AttentionPolicy of(
      String name,
      Integer groupSize,
      Integer neighborWindow,
      String selfExtendMode,
      Integer topK,
      Integer denseBelow,
      Integer blockSize,
      Integer topBlocks,
      String blockScore,
      IndexerSource indexer) {
    SelfExtend se = null;
    if (groupSize != null || neighborWindow != null || selfExtendMode != null) {
      if (groupSize == null || neighborWindow == null) {
        throw new IllegalArgumentException(
            "SelfExtend needs both --group-size and --neighbor-window");
      }
      se =
          new SelfExtend(
              groupSize,
              neighborWindow,
              selfExtendMode == null ? SelfExtendMode.EXACT : SelfExtendMode.parse(selfExtendMode));
    }
    String n = name.toLowerCase(Locale.ROOT);
    switch (n) {
      case "dense" -> {
        rejectUnused(n, "--group-size/--neighbor-window", se);
        rejectUnused(n, "--top-k", topK);
        rejectUnused(n, "--dense-below", denseBelow);
        rejectUnused(n, "--block-size", blockSize);
        rejectUnused(n, "--top-blocks", topBlocks);
        return dense();
      }
      case "self-extend", "selfextend" -> {
        if (se == null) {
          throw new IllegalArgumentException(
              "--attention self-extend needs --group-size and --neighbor-window");
        }
        rejectUnused(n, "--top-k", topK);
        rejectUnused(n, "--dense-below", denseBelow);
        rejectUnused(n, "--block-size", blockSize);
        rejectUnused(n, "--top-blocks", topBlocks);
        return se;
      }
      case "indexer-topk" -> {
        if (topK == null) {
          throw new IllegalArgumentException("--attention indexer-topk needs --top-k");
        }
        rejectUnused(n, "--block-size", blockSize);
        rejectUnused(n, "--top-blocks", topBlocks);
        return new IndexerTopK(
            topK,
            denseBelow == null ? 0 : denseBelow,
            indexer == null ? IndexerSource.ownHeads() : indexer,
            se);
      }
      case "block-topk" -> {
        if (blockSize == null || topBlocks == null) {
          throw new IllegalArgumentException(
              "--attention block-topk needs --block-size and --top-blocks");
        }
        rejectUnused(n, "--top-k", topK);
        rejectUnused(n, "--dense-below", denseBelow);
        return new BlockTopK(
            blockSize,
            topBlocks,
            blockScore == null ? BlockScore.QUEST : BlockScore.parse(blockScore),
            se);
      }
      default ->
          throw new IllegalArgumentException(
              "unknown attention policy '"
                  + name
                  + "' (expected dense, self-extend, indexer-topk or block-topk)");
    }
  }

  private static void rejectUnused(String policy, String option, Object value) {
    if (value != null) {
      throw new IllegalArgumentException(option + " does not apply to --attention " + policy);
    }
  }
}
