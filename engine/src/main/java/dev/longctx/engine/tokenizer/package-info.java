/**
 * Tokenizers: text ↔ token ids for the supported model families, JDK only.
 *
 * <p>Two algorithms cover them, both built from a plain-data {@link
 * dev.longctx.engine.tokenizer.Vocabulary} so that every file format feeds the same code: {@link
 * dev.longctx.engine.tokenizer.SentencePieceTokenizer} (score-ordered merges with byte fallback:
 * llama2.c {@code tokenizer.bin}, GGUF "llama") and {@link
 * dev.longctx.engine.tokenizer.ByteLevelBpeTokenizer} (rank-ordered merges over GPT-2 byte
 * characters: GGUF "gpt2", i.e. Llama-3 and Qwen2). Hugging Face {@code tokenizer.json} files run
 * through {@link dev.longctx.engine.tokenizer.HuggingFaceTokenizer}, which adds the library's
 * normalizer, pre-tokenizer and decoder stages around the same rank-ordered merge loop. Entry
 * points are in {@link dev.longctx.engine.tokenizer.Tokenizers}.
 *
 * <p>BOS is never added by {@code encode}: {@link dev.longctx.engine.tokenizer.Tokenizer#addBos()}
 * tells the caller whether the model expects it, and {@link
 * dev.longctx.engine.tokenizer.Tokenizer#encodePrompt} applies it.
 */
package dev.longctx.engine.tokenizer;
