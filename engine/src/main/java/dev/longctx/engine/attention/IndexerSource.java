package dev.longctx.engine.attention;

import java.nio.file.Path;

/** Where the scores of {@link AttentionPolicy.IndexerTopK} come from (ALGORITHMS.md §1.2, §5). */
public sealed interface IndexerSource {

  /** Name used on the command line ({@code --indexer}). */
  String name();

  static OwnHeads ownHeads() {
    return new OwnHeads();
  }

  /**
   * Training-free selector from the model's own attention (ALGORITHMS.md §5.2 "own heads, quantized
   * keys"): an INT8 copy of the cached keys (one scale per token and KV head), every query head's
   * softmax over it, and the mean of those probabilities as the score, so one selection serves all
   * heads (the aggregation §5.2 recommends: probabilities, not raw logits, since per-head logit
   * scales differ). Chosen over Quest pages and mean-pooled blocks because it approximates the DSA
   * training target p_t itself (§1.5) at token granularity, needs no calibration, and the same data
   * structure serves the sharded form (§4.5); it reads a quarter of the key bytes dense attention
   * reads and none of the values.
   */
  record OwnHeads() implements IndexerSource {

    /** Tokens per page of the page-pruning stage: Quest's default S (ALGORITHMS.md §3.3, §5.4). */
    public static final int PAGE = 16;

    /** Always-selected first tokens (attention sinks, §5.1). */
    public static final int SINKS = 4;

    /** Always-selected last tokens, the query's own included (§5.1). */
    public static final int LOCAL = 64;

    /** Candidate tokens per selected token after page pruning. */
    public static final int OVERSAMPLE = 2;

    @Override
    public String name() {
      return "own-heads";
    }
  }

  /**
   * A trained lightning indexer stored in the model file (ALGORITHMS.md §1.2, §5.3 architecture for
   * non-MLA models); see {@link LightningIndexer} for the accepted tensor names.
   */
  record ModelFile(LightningIndexer indexer) implements IndexerSource {
    public ModelFile {
      if (indexer == null) {
        throw new IllegalArgumentException("indexer must not be null");
      }
    }

    @Override
    public String name() {
      return "model";
    }
  }

  /**
   * An indexer distilled by ALGORITHMS.md §5.3 and stored in its own file. The interface is in
   * place; reading such files comes with the distillation issue, until then a sequence that needs
   * one fails naming the file.
   */
  record IndexerFile(Path path) implements IndexerSource {
    public IndexerFile {
      if (path == null) {
        throw new IllegalArgumentException("path must not be null");
      }
    }

    @Override
    public String name() {
      return "file";
    }
  }
}
