package dev.longctx.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.TestData;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.gguf.GgufTensorInfo;
import dev.longctx.engine.gguf.GgufWriter;
import dev.longctx.engine.kernel.Rope;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad model files fail with a {@link ModelFormatException} whose one-line message names the file,
 * where (offset or key) and why — never an index or buffer exception.
 */
class MalformedModelTest {

  @TempDir Path tmp;

  @Test
  void truncatedLlama2cCheckpointNamesFileOffsetAndSize() throws IOException {
    byte[] full = Files.readAllBytes(TestData.file("models/stories260K/stories260K.bin"));
    Path cut = tmp.resolve("cut.bin");
    Files.write(cut, Arrays.copyOf(full, full.length / 2));
    assertThatThrownBy(() -> Llama2cLoader.load(cut, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(cut.toString())
        .hasMessageContaining("offset")
        .hasMessageContaining("truncated");
  }

  @Test
  void llama2cHeaderWithImplausibleValueIsRejected() throws IOException {
    Path bad = tmp.resolve("bad.bin");
    ByteBuffer b = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(64).putInt(172).putInt(-5).putInt(8).putInt(4).putInt(512).putInt(512);
    Files.write(bad, b.array());
    assertThatThrownBy(() -> Llama2cLoader.load(bad, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("offset 8")
        .hasMessageContaining("n_layers");
  }

  @Test
  void safetensorsHeaderThatLiesAboutSizesIsRejected() throws IOException {
    Path dir = copyTinyStoriesConfig();
    // The header claims a [4, 4] F32 tensor (64 bytes) but data_offsets span 32 bytes.
    writeSafetensors(
        dir.resolve("model.safetensors"),
        "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,32]}}",
        32);
    assertThatThrownBy(() -> SafetensorsLoader.load(dir, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("model.safetensors")
        .hasMessageContaining("model.norm.weight")
        .hasMessageContaining("64 bytes");
  }

  @Test
  void safetensorsDataPastEndOfFileIsRejected() throws IOException {
    Path dir = copyTinyStoriesConfig();
    writeSafetensors(
        dir.resolve("model.safetensors"),
        "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}",
        16);
    assertThatThrownBy(() -> SafetensorsLoader.load(dir, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("past the end");
  }

  @Test
  void safetensorsHeaderLengthLargerThanFileIsRejected() throws IOException {
    Path dir = copyTinyStoriesConfig();
    Path f = dir.resolve("model.safetensors");
    ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(1_000_000L).putLong(0);
    Files.write(f, b.array());
    assertThatThrownBy(() -> SafetensorsLoader.load(dir, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("offset 0")
        .hasMessageContaining("header length 1000000");
  }

  @Test
  void unknownArchitectureInConfigIsRejected() throws IOException {
    Path dir = copyTinyStoriesConfig();
    String config =
        Files.readString(dir.resolve("config.json")).replace("\"llama\"", "\"gpt_neox\"");
    Files.writeString(dir.resolve("config.json"), config);
    assertThatThrownBy(() -> SafetensorsLoader.load(dir, Arena.ofAuto()))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining("model_type")
        .hasMessageContaining("gpt_neox");
  }

  @Test
  void missingModelFileIsNamed() {
    Path missing = tmp.resolve("nope.gguf");
    assertThatThrownBy(() -> LoadedModel.load(missing, null))
        .isInstanceOf(ModelFormatException.class)
        .hasMessage(missing + ": no such file");
  }

  @Test
  void ggufWithFlippedMagicIsNamedAsNotGguf() throws IOException {
    Path f = tmp.resolve("flipped.gguf");
    Files.write(f, "FUGG\3\0\0\0".getBytes(StandardCharsets.ISO_8859_1));
    assertThatThrownBy(() -> LoadedModel.load(f, null))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(f.toString())
        .hasMessageContaining("offset 0");
  }

  @Test
  void tokenizerThatDoesNotMatchTheModelIsRejected() {
    // The 32000-piece Llama-2 tokenizer with the 512-token stories260K model.
    assertThatThrownBy(
            () ->
                LoadedModel.load(
                    TestData.file("models/stories260K/stories260K.bin"),
                    TestData.file("tokenizers/llama2/tokenizer.bin")))
        .isInstanceOf(ModelFormatException.class)
        .satisfies(e -> assertThat(e.getMessage()).contains("512").contains("32000"));
  }

  @Test
  void ggufOfUnknownArchitectureNamesTheKey() throws IOException {
    Path f = tmp.resolve("gptj.gguf");
    new GgufWriter().putString("general.architecture", "gptj").write(f);
    assertThatThrownBy(() -> LoadedModel.load(f, null))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(f + ": key 'general.architecture'")
        .hasMessageContaining("unknown architecture 'gptj'");
  }

  @Test
  void ggufWithAnUnsupportedTensorTypeNamesTheTensorAndType() throws IOException {
    LlamaConfig c =
        new LlamaConfig(
            "llama", 256, 256, 1, 4, 4, 64, 300, 64, 1e-5f, 10000f, Rope.Layout.INTERLEAVED, null);
    Path good = tmp.resolve("good.gguf");
    GgufModelWriter.write(
        good, "t", SyntheticModel.source(c, true, 1), SyntheticModel.vocabulary(300), GgmlType.F32);
    // Rewrite the same metadata with one matrix declared as Q5_K (same byte budget is irrelevant:
    // the type is refused before its bytes are read).
    Path bad = tmp.resolve("q5k.gguf");
    try (GgufFile in = GgufFile.open(good)) {
      GgufWriter w = new GgufWriter().putAll(in.metadata());
      for (GgufTensorInfo t : in.tensors()) {
        if (t.name().equals("blk.0.attn_q.weight")) {
          long bytes = GgmlType.Q5_K.byteSize(t.elementCount());
          w.addTensor(
              t.name(), GgmlType.Q5_K, t.dims(), MemorySegment.ofArray(new byte[(int) bytes]));
        } else {
          w.addTensor(t.name(), t.type(), t.dims(), in.tensorData(t));
        }
      }
      w.write(bad);
    }
    assertThatThrownBy(() -> LoadedModel.load(bad, null))
        .isInstanceOf(ModelFormatException.class)
        .hasMessageContaining(bad.toString())
        .hasMessageContaining("blk.0.attn_q.weight")
        .hasMessageContaining("Q5_K");
  }

  private Path copyTinyStoriesConfig() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("hf"));
    Files.copy(TestData.file("models/tinystories-656k/config.json"), dir.resolve("config.json"));
    return dir;
  }

  private static void writeSafetensors(Path file, String header, int dataBytes) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Files.write(file, b.array());
  }
}
