/**
 * GGUF, llama.cpp's model file format: {@link dev.longctx.engine.gguf.GgufFile} maps and validates
 * a version 2 or 3 file and hands out typed metadata and zero-copy tensor slices; {@link
 * dev.longctx.engine.gguf.GgufWriter} streams a version 3 file (used for synthetic test models and
 * conversions). Key and tensor names are kept verbatim as in the GGUF specification and llama.cpp
 * ({@code tokenizer.ggml.tokens}, {@code blk.0.attn_q.weight}).
 */
package dev.longctx.engine.gguf;
