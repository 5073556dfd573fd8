/**
 * A small strict JSON parser ({@link dev.longctx.engine.json.Json}) for model side files such as
 * {@code tokenizer.json} and {@code config.json}, so the engine needs no JSON library.
 */
package dev.longctx.engine.json;
