package dev.longctx.engine.model;

/** What a format loader returns: the hyper-parameters and the weights they describe. */
public record ConfigAndWeights(LlamaConfig config, LlamaWeights weights) {}
