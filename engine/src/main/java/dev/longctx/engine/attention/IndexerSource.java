package dev.longctx.engine.attention;

import dev.longctx.engine.gguf.GgufFile;
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

  /** The lightning indexer this source scores with (a trained one), or null (own heads). */
  default LightningIndexer lightningIndexer() {
    return this instanceof Trained t ? t.indexer() : null;
  }

  /**
   * A trained lightning indexer (ALGORITHMS.md §1.2, §5.3 architecture for non-MLA models), from
   * the model file or from an indexer file: the engine, the GPU and the shards' distributed top-k
   * use either alike.
   */
  sealed interface Trained extends IndexerSource permits ModelFile, IndexerFile {
    LightningIndexer indexer();
  }

  /**
   * A trained lightning indexer stored in the model file; see {@link LightningIndexer} for the
   * accepted tensor names.
   */
  record ModelFile(LightningIndexer indexer) implements Trained {
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
   * An indexer distilled by ALGORITHMS.md §5.3 for a model that has none ({@code ./longctx
   * distill-indexer}), stored in its own GGUF file: the tensors {@link LightningIndexer} reads,
   * under the architecture {@value #ARCHITECTURE}, with the model shape it was trained for.
   */
  record IndexerFile(Path path, LightningIndexer indexer, String id) implements Trained {

    /** {@code general.architecture} of an indexer file. */
    public static final String ARCHITECTURE = "lightning-indexer";

    /** Metadata keys: the model's layer count, width and RoPE base the indexer was trained on. */
    public static final String LAYERS = ARCHITECTURE + ".block_count";

    public static final String INPUT_WIDTH = ARCHITECTURE + ".input_width";
    public static final String ROPE_BASE = ARCHITECTURE + ".rope.freq_base";

    /**
     * Metadata key of the file's identity: a random UUID written with the file, so that processes
     * can check they hold the same indexer without hashing its weights.
     */
    public static final String ID = ARCHITECTURE + ".id";

    /**
     * @param id the file's identity: its {@link #ID}, or for a file without one its name and size
     */
    public IndexerFile {
      if (path == null || indexer == null || id == null) {
        throw new IllegalArgumentException("path, indexer and id must not be null");
      }
    }

    /** An indexer known by its path only (its identity is the file name). */
    public IndexerFile(Path path, LightningIndexer indexer) {
      this(path, indexer, String.valueOf(path.getFileName()));
    }

    /**
     * Reads the indexer file at {@code path} for a model of {@code layers} layers, width {@code
     * dim} and RoPE base {@code ropeTheta}; fails naming the file and what does not match. The file
     * stays mapped for the life of the process, as a model file does.
     */
    public static IndexerFile read(Path path, int layers, int dim, float ropeTheta) {
      GgufFile gguf = GgufFile.open(path);
      try {
        String arch = gguf.getString("general.architecture", "");
        if (!arch.equals(ARCHITECTURE) || !LightningIndexer.present(gguf)) {
          throw new IllegalArgumentException(
              path
                  + " is not an indexer file (general.architecture '"
                  + arch
                  + "', expected '"
                  + ARCHITECTURE
                  + "' with blk.N.indexer.* tensors)");
        }
        int fileLayers = gguf.getInt(LAYERS, -1);
        int fileDim = gguf.getInt(INPUT_WIDTH, -1);
        if (fileLayers != layers || fileDim != dim) {
          throw new IllegalArgumentException(
              path
                  + " holds an indexer for "
                  + fileLayers
                  + " layers of width "
                  + fileDim
                  + "; the model has "
                  + layers
                  + " of width "
                  + dim);
        }
        float base = gguf.getFloat(ROPE_BASE, ropeTheta);
        if (base != ropeTheta) {
          throw new IllegalArgumentException(
              path + " was trained with RoPE base " + base + "; the model's is " + ropeTheta);
        }
        String id = gguf.getString(ID, path.getFileName() + ":" + gguf.fileSize());
        return new IndexerFile(path, LightningIndexer.fromGguf(gguf, layers, ropeTheta), id);
      } catch (RuntimeException e) {
        gguf.close();
        throw e;
      }
    }

    @Override
    public String name() {
      return "file";
    }
  }
}
