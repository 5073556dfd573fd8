package dev.longctx.worker.cli;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LoadedModel;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Attention policy options shared by the commands that run the model (ALGORITHMS.md §1–§3). */
public class AttentionOptions {

  @Option(
      names = "--attention",
      defaultValue = "dense",
      description =
          "Attention policy: dense, self-extend, indexer-topk or block-topk (default:"
              + " ${DEFAULT-VALUE}). SelfExtend options combine with the sparse policies.")
  String attention;

  @Option(names = "--group-size", description = "SelfExtend group size G (llama.cpp --grp-attn-n).")
  Integer groupSize;

  @Option(
      names = "--neighbor-window",
      description = "SelfExtend neighbor window w, a multiple of G (llama.cpp --grp-attn-w).")
  Integer neighborWindow;

  @Option(
      names = "--self-extend-mode",
      description = "SelfExtend mapping: exact (the paper's, default) or llamacpp (chunk-aligned).")
  String selfExtendMode;

  @Option(
      names = "--index-top-k",
      description =
          "indexer-topk: keys attended per query (also --top-k where it does not mean sampling).")
  Integer topK;

  @Option(
      names = "--dense-below",
      description = "indexer-topk: queries at positions below this attend densely (default 0).")
  Integer denseBelow;

  @Option(
      names = "--indexer",
      defaultValue = "own-heads",
      description =
          "indexer-topk scores: own-heads (training-free, INT8 keys of the model's heads), model"
              + " (lightning-indexer tensors in the GGUF file), or the path of an indexer file"
              + " made by distill-indexer (default: ${DEFAULT-VALUE}).")
  String indexer;

  @Option(names = "--block-size", description = "block-topk: tokens per block.")
  Integer blockSize;

  @Option(
      names = "--top-blocks",
      description = "block-topk: blocks per query, the current block included.")
  Integer topBlocks;

  @Option(
      names = "--block-score",
      description = "block-topk scoring: quest (min/max bound, default) or mean (MoBA).")
  String blockScore;

  /**
   * The model's transformer under the policy the options describe; its {@code maxContext()} is the
   * policy's limit.
   */
  dev.longctx.engine.inference.Transformer transformer(LoadedModel model) {
    return model.transformer().withAttention(policy(model));
  }

  /**
   * Default context for a command: the trained context, or SelfExtend's extended one when the
   * policy has one.
   */
  static int defaultContext(dev.longctx.engine.inference.Transformer tr) {
    return tr.attentionPolicy().positions() != null ? tr.maxContext() : tr.config().contextLength();
  }

  /** The policy the options describe, validated against the model. */
  AttentionPolicy policy(LoadedModel model) {
    IndexerSource source = null;
    if (attention.equalsIgnoreCase("indexer-topk")) {
      source =
          switch (indexer) {
            case "own-heads" -> IndexerSource.ownHeads();
            case "model" -> modelIndexer(model);
            default -> {
              LlamaConfig c = model.config();
              yield IndexerSource.IndexerFile.read(
                  Path.of(indexer), c.layers(), c.dim(), c.ropeTheta());
            }
          };
    } else if (!indexer.equals("own-heads")) {
      throw new IllegalArgumentException("--indexer applies only to --attention indexer-topk");
    }
    if (blockScore != null && !attention.equalsIgnoreCase("block-topk")) {
      throw new IllegalArgumentException("--block-score applies only to --attention block-topk");
    }
    AttentionPolicy p =
        AttentionPolicy.of(
            attention,
            groupSize,
            neighborWindow,
            selfExtendMode,
            topK,
            denseBelow,
            blockSize,
            topBlocks,
            blockScore,
            source);
    model.transformer().withAttention(p); // validates against the model
    return p;
  }

  private static IndexerSource modelIndexer(LoadedModel model) {
    if (model.format() != LoadedModel.Format.GGUF) {
      throw new IllegalArgumentException(
          "--indexer model needs a GGUF model file with indexer tensors");
    }
    LightningIndexer indexer = indexerOf(model);
    if (indexer == null) {
      throw new IllegalArgumentException(
          model.path()
              + " has no lightning-indexer tensors (blk.N.indexer.attn_k.weight or"
              + " blk.N.attn_indexer.wk.weight)");
    }
    return new IndexerSource.ModelFile(indexer);
  }

  /**
   * What shard processes started here need to score as {@code policy} does: for a distilled indexer
   * file, the file (the shards read it as this process did; the model file's indexer they find
   * themselves), else nothing.
   */
  static java.util.List<String> forShards(AttentionPolicy policy) {
    if (policy instanceof AttentionPolicy.IndexerTopK t
        && t.indexer() instanceof IndexerSource.IndexerFile f) {
      return java.util.List.of(
          "--attention",
          "indexer-topk",
          "--index-top-k",
          Integer.toString(t.k()),
          "--indexer",
          f.path().toAbsolutePath().toString());
    }
    return java.util.List.of();
  }

  /**
   * The trained lightning indexer a shard of {@code model} scores with: {@code policy}'s when it
   * selects with one (the model file's or an indexer file's, read already), else the model file's
   * own, or null where it has none.
   */
  static IndexerSource.Trained indexerFor(AttentionPolicy policy, LoadedModel model) {
    if (policy instanceof AttentionPolicy.IndexerTopK t
        && t.indexer() instanceof IndexerSource.Trained own) {
      return own;
    }
    LightningIndexer file = indexerOf(model);
    return file == null ? null : new IndexerSource.ModelFile(file);
  }

  /**
   * The lightning indexer in {@code model}'s file (ALGORITHMS.md §1.2), or null where it is not a
   * GGUF file with indexer tensors: what a shard scores with for requests using indexer "model".
   */
  static LightningIndexer indexerOf(LoadedModel model) {
    if (model.format() != LoadedModel.Format.GGUF) {
      return null;
    }
    LlamaConfig c = model.config();
    // The model's mapping stays open while the model is; this second mapping lives as long.
    GgufFile gguf = GgufFile.open(model.path());
    if (!LightningIndexer.present(gguf)) {
      gguf.close();
      return null;
    }
    return LightningIndexer.fromGguf(gguf, c.layers(), c.ropeTheta());
  }
}
