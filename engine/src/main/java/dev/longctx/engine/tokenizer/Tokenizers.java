package dev.longctx.engine.tokenizer;

import dev.longctx.engine.gguf.GgufFile;
import java.nio.file.Path;

/** Factories for every supported tokenizer source. */
public final class Tokenizers {

  private Tokenizers() {}

  /** The tokenizer for a vocabulary given as plain data (from any file format). */
  public static Tokenizer fromVocabulary(Vocabulary v) {
    return switch (v.model()) {
      case SENTENCEPIECE -> new SentencePieceTokenizer(v);
      case BYTE_LEVEL_BPE -> new ByteLevelBpeTokenizer(v);
    };
  }

  /**
   * A llama2.c {@code tokenizer.bin} with {@code vocabSize} tokens (from the model's header).
   *
   * @throws dev.longctx.engine.ModelFormatException when the file is unreadable or truncated
   */
  public static Tokenizer fromLlama2c(Path file, int vocabSize) {
    if (vocabSize <= 0) {
      throw new IllegalArgumentException("vocabSize must be positive: " + vocabSize);
    }
    return fromVocabulary(Llama2cTokenizerLoader.load(file, vocabSize));
  }

  /** A llama2.c {@code tokenizer.bin}, reading tokens up to the end of the file. */
  public static Tokenizer fromLlama2c(Path file) {
    return fromVocabulary(Llama2cTokenizerLoader.load(file, -1));
  }

  /** The vocabulary of a llama2.c {@code tokenizer.bin}; {@code vocabSize} ≤ 0 reads to EOF. */
  public static Vocabulary readLlama2cVocabulary(Path file, int vocabSize) {
    return Llama2cTokenizerLoader.load(file, vocabSize);
  }

  /**
   * A Hugging Face tokenizer: {@code dir} holds {@code tokenizer.json} (BPE model) and optionally
   * {@code tokenizer_config.json}, {@code special_tokens_map.json}, {@code generation_config.json};
   * a path to {@code tokenizer.json} itself works too. BOS is not part of {@code encode}: {@link
   * Tokenizer#addBos()} says whether the post-processor adds it, and {@link Tokenizer#encodePrompt}
   * produces what {@code tokenizers}' {@code encode(text)} would.
   *
   * @throws dev.longctx.engine.ModelFormatException naming the file and JSON key or offset
   */
  public static HuggingFaceTokenizer fromHuggingFace(Path dir) {
    return HuggingFaceTokenizerLoader.load(dir);
  }

  /**
   * The tokenizer in a GGUF file's {@code tokenizer.ggml.*} metadata: model "llama" is
   * SentencePiece BPE, "gpt2" byte-level BPE with the pre-tokenizer named by {@code
   * tokenizer.ggml.pre}.
   *
   * @throws dev.longctx.engine.ModelFormatException naming the metadata key at fault
   */
  public static Tokenizer fromGguf(GgufFile gguf) {
    return fromVocabulary(GgufVocabulary.read(gguf));
  }
}
