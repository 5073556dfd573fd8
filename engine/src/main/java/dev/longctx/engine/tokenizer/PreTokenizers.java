package dev.longctx.engine.tokenizer;

import java.util.regex.Pattern;

/**
 * The regexes that split text into words before byte-level BPE, chosen by GGUF's {@code
 * tokenizer.ggml.pre}. They are the patterns of the models' own {@code tokenizer.json} files, with
 * {@code (?i:'s|...)} spelled out as case classes. {@link Pattern#UNICODE_CHARACTER_CLASS} makes
 * {@code \s} Unicode White_Space, as in the Rust/Python regex engines those files target; without
 * it Java's {@code \s} is ASCII only and e.g. U+3000 would split differently.
 */
public final class PreTokenizers {

  private static final String CONTRACTIONS =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

  /** Llama-3: letters with one leading non-letter, digits in groups of up to three. */
  public static final String LLAMA3 =
      CONTRACTIONS
          + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
          + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

  /** Qwen2: as Llama-3 but every digit on its own. */
  public static final String QWEN2 =
      CONTRACTIONS
          + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
          + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

  /** GPT-2's original pattern. */
  public static final String GPT2 =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

  private PreTokenizers() {}

  /**
   * The pattern for a {@code tokenizer.ggml.pre} name.
   *
   * @throws IllegalArgumentException for a name this engine does not know
   */
  public static Pattern forName(String name) {
    String regex =
        switch (name) {
          case "llama3", "llama-v3", "llama-bpe" -> LLAMA3;
          case "qwen2", "deepseek-r1-qwen" -> QWEN2;
          case "default", "gpt2", "gpt-2" -> GPT2;
          default ->
              throw new IllegalArgumentException(
                  "unsupported pre-tokenizer '" + name + "' (known: llama-bpe, qwen2, default)");
        };
    return compile(regex);
  }

  /** Compiles a tokenizer regex with Unicode semantics for {@code \s}. */
  public static Pattern compile(String regex) {
    return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
  }
}
