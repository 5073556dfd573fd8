package dev.longctx.engine.model;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.inference.Transformer;
import dev.longctx.engine.tokenizer.GgufVocabulary;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.engine.tokenizer.Tokenizers;
import dev.longctx.engine.tokenizer.Vocabulary;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A model ready to run: hyper-parameters, weights (mmap'd, valid until {@link #close()}), its
 * tokenizer and the forward pass. {@link #load} detects the format: a directory or {@code
 * .safetensors} file is a Hugging Face checkpoint, a file starting with the bytes "GGUF" is GGUF,
 * anything else is tried as a llama2.c checkpoint.
 */
public final class LoadedModel implements AutoCloseable {

  /** Model file formats. */
  public enum Format {
    GGUF,
    LLAMA2C,
    SAFETENSORS
  }

  private final Path path;
  private final Format format;
  private final LlamaConfig config;
  private final LlamaWeights weights;
  private final Tokenizer tokenizer;
  private final Vocabulary vocabulary;
  private final Transformer transformer;
  private final AutoCloseable mapping;

  private LoadedModel(
      Path path,
      Format format,
      LlamaConfig config,
      LlamaWeights weights,
      Tok tok,
      AutoCloseable mapping) {
    this.path = path;
    this.format = format;
    this.config = config;
    this.weights = weights;
    this.tokenizer = tok.tokenizer();
    this.vocabulary = tok.vocabulary();
    this.mapping = mapping;
    this.transformer = new Transformer(config, weights);
    if (tokenizer.vocabSize() > config.vocabSize()) {
      throw ModelFormatException.of(
          path,
          "the tokenizer has "
              + tokenizer.vocabSize()
              + " tokens but the model's vocabulary has "
              + config.vocabSize()
              + ": they do not belong together");
    }
  }

  /**
   * Loads {@code model}; {@code tokenizer} may be null when the model carries its own (GGUF,
   * Hugging Face directory) or a llama2.c tokenizer file sits beside it.
   */
  public static LoadedModel load(Path model, Path tokenizer) {
    Format format = detect(model);
    if (format == Format.GGUF) {
      GgufFile gguf = GgufFile.open(model);
      try {
        LlamaConfig config = GgufModelLoader.config(gguf);
        LlamaWeights weights = GgufModelLoader.weights(gguf, config);
        Tok tok =
            tokenizer != null
                ? externalTokenizer(tokenizer, config)
                : Tok.of(GgufVocabulary.read(gguf));
        return new LoadedModel(model, format, config, weights, tok, gguf);
      } catch (RuntimeException e) {
        gguf.close();
        throw e;
      }
    }
    Arena arena = Arena.ofShared();
    try {
      if (format == Format.SAFETENSORS) {
        ConfigAndWeights l = SafetensorsLoader.load(model, arena);
        Path dir = Files.isDirectory(model) ? model : model.toAbsolutePath().getParent();
        Tok tok =
            tokenizer != null
                ? externalTokenizer(tokenizer, l.config())
                : new Tok(Tokenizers.fromHuggingFace(dir), null);
        return new LoadedModel(model, format, l.config(), l.weights(), tok, arena);
      }
      ConfigAndWeights l = Llama2cLoader.load(model, arena);
      Path tokPath = tokenizer != null ? tokenizer : siblingTokenizer(model);
      Tok tok = externalTokenizer(tokPath, l.config());
      return new LoadedModel(model, format, l.config(), l.weights(), tok, arena);
    } catch (RuntimeException e) {
      arena.close();
      throw e;
    }
  }

  /** The format of {@code model}, from its name or first bytes. */
  public static Format detect(Path model) {
    if (Files.isDirectory(model) || model.toString().endsWith(".safetensors")) {
      return Format.SAFETENSORS;
    }
    if (!Files.exists(model)) {
      throw ModelFormatException.of(model, "no such file");
    }
    try (InputStream in = Files.newInputStream(model)) {
      byte[] magic = in.readNBytes(4);
      if (magic.length == 4
          && magic[0] == 'G'
          && magic[1] == 'G'
          && magic[2] == 'U'
          && magic[3] == 'F') {
        return Format.GGUF;
      }
    } catch (IOException e) {
      throw ModelFormatException.of(model, "cannot read: " + e.getMessage(), e);
    }
    if (model.toString().endsWith(".gguf")) {
      throw ModelFormatException.atOffset(
          model, 0, "not a GGUF file: the magic bytes are not 'GGUF'");
    }
    return Format.LLAMA2C;
  }

  /** A tokenizer and, where the format has one, the vocabulary it was built from. */
  private record Tok(Tokenizer tokenizer, Vocabulary vocabulary) {
    static Tok of(Vocabulary v) {
      return new Tok(Tokenizers.fromVocabulary(v), v);
    }
  }

  private static Tok externalTokenizer(Path tokenizer, LlamaConfig config) {
    if (Files.isDirectory(tokenizer) || tokenizer.toString().endsWith(".json")) {
      return new Tok(
          Tokenizers.fromHuggingFace(
              Files.isDirectory(tokenizer) ? tokenizer : tokenizer.toAbsolutePath().getParent()),
          null);
    }
    if (tokenizer.toString().endsWith(".gguf")) {
      try (GgufFile vocab = GgufFile.open(tokenizer)) {
        return Tok.of(GgufVocabulary.read(vocab));
      }
    }
    // llama2.c tokenizer files have no token count: read them whole and compare.
    Vocabulary v = Tokenizers.readLlama2cVocabulary(tokenizer, -1);
    if (v.size() != config.vocabSize()) {
      throw ModelFormatException.of(
          tokenizer,
          "holds "
              + v.size()
              + " tokens but the model's vocabulary has "
              + config.vocabSize()
              + ": they do not belong together");
    }
    return Tok.of(v);
  }

  /**
   * A llama2.c model's tokenizer when not given: {@code tokenizer.bin} or one {@code tok*.bin}
   * beside it.
   */
  private static Path siblingTokenizer(Path model) {
    Path dir = model.toAbsolutePath().getParent();
    List<Path> candidates = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "tok*.bin")) {
      ds.forEach(candidates::add);
    } catch (IOException e) {
      throw ModelFormatException.of(dir, "cannot list: " + e.getMessage(), e);
    }
    candidates.remove(model.toAbsolutePath());
    if (candidates.size() != 1) {
      throw ModelFormatException.of(
          model,
          "a llama2.c model needs a tokenizer: pass --tokenizer PATH (found "
              + candidates.size()
              + " tok*.bin files beside it)");
    }
    return candidates.getFirst();
  }

  public Path path() {
    return path;
  }

  public Format format() {
    return format;
  }

  public LlamaConfig config() {
    return config;
  }

  public LlamaWeights weights() {
    return weights;
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  /**
   * The vocabulary as plain data (for writing it into a GGUF file), or null for a Hugging Face
   * {@code tokenizer.json}, which has no GGUF equivalent here yet.
   */
  public Vocabulary vocabulary() {
    return vocabulary;
  }

  public Transformer transformer() {
    return transformer;
  }

  /** Unmaps the weights; the model must not be used afterwards. */
  @Override
  public void close() {
    try {
      mapping.close();
    } catch (Exception e) {
      throw new IllegalStateException("cannot unmap " + path + ": " + e.getMessage(), e);
    }
  }
}
