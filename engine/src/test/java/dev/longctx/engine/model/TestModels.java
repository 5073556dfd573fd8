package dev.longctx.engine.model;

import dev.longctx.engine.TestData;

/** The real models of {@code ../shared/data}, opened for tests (skipped where absent). */
public final class TestModels {

  private TestModels() {}

  /** karpathy's stories260K (llama2.c format) with its tok512 tokenizer. */
  public static LoadedModel stories260K() {
    return LoadedModel.load(
        TestData.file("models/stories260K/stories260K.bin"),
        TestData.file("models/stories260K/tok512.bin"));
  }

  /** TinyStories-656K as a Hugging Face directory (safetensors, tied embeddings). */
  public static LoadedModel tinyStories656K() {
    return LoadedModel.load(TestData.file("models/tinystories-656k"), null);
  }
}
