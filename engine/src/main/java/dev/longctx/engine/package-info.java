/**
 * The longctx inference engine: a plain Java library (JDK only) that loads real model files (GGUF,
 * llama2.c, safetensors), tokenizes, runs the Llama-family forward pass with Vector API kernels,
 * and samples. Layering rule (checked by {@code LayeringTest}): nothing here imports Quarkus, gRPC,
 * fabric8 or the Java Operator SDK.
 */
package dev.longctx.engine;
