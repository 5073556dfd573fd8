package dev.longctx.engine.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.longctx.engine.cuda.Backend.Availability;
import dev.longctx.engine.gguf.GgufFile;
import dev.longctx.engine.inference.Decoder;
import dev.longctx.engine.kernel.Ops;
import dev.longctx.engine.model.GgufModelLoader;
import dev.longctx.engine.model.GgufModelWriter;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.engine.model.LlamaWeights;
import dev.longctx.engine.model.MatrixTypes;
import dev.longctx.engine.model.SyntheticModel;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The device the CUDA tests share, or a skip with the reason when none is usable (also under
 * CI=true: CI machines have no GPU; the device checks run through docs/tools/gpu-check.sh).
 */
final class CudaTests {

  private static CudaContext shared;

  private CudaTests() {}

  static synchronized CudaContext context() {
    Availability a = CudaProbe.probe();
    assumeTrue(a.available(), () -> "no usable CUDA device (" + a.reason() + "); skipping");
    if (shared == null) {
      shared = CudaContext.open();
      System.out.println(
          "CUDA tests on "
              + shared.deviceName()
              + " (sm_"
              + shared.computeCapability()
              + ", kernels from "
              + shared.kernelSource()
              + ")");
    }
    shared.bind();
    return shared;
  }

  /** A model file opened with its config and weights (which read from it until it is closed). */
  record Synthetic(GgufFile file, LlamaConfig config, LlamaWeights weights)
      implements AutoCloseable {
    @Override
    public void close() {
      file.close();
    }
  }

  /**
   * A synthetic model of {@code shape} (random weights from {@code seed}, F32) written to {@code
   * file} as GGUF and loaded.
   */
  static Synthetic syntheticModel(Path file, LlamaConfig shape, long seed) throws IOException {
    return syntheticModel(file, shape, seed, GgmlType.F32);
  }

  /** {@link #syntheticModel(Path, LlamaConfig, long)} with its matrices written as {@code type}. */
  static Synthetic syntheticModel(Path file, LlamaConfig shape, long seed, GgmlType type)
      throws IOException {
    return syntheticModel(file, shape, seed, MatrixTypes.of(type));
  }

  /** {@link #syntheticModel(Path, LlamaConfig, long)} with matrix types chosen by {@code types}. */
  static Synthetic syntheticModel(Path file, LlamaConfig shape, long seed, MatrixTypes types)
      throws IOException {
    String name = file.getFileName().toString().replace(".gguf", "");
    GgufModelWriter.write(
        file,
        name,
        SyntheticModel.source(shape, true, seed),
        SyntheticModel.vocabulary(shape.vocabSize()),
        types);
    GgufFile gguf = GgufFile.open(file);
    LlamaConfig c = GgufModelLoader.config(gguf);
    return new Synthetic(gguf, c, GgufModelLoader.weights(gguf, c));
  }

  /** A quiet NaN bit pattern, to poison output buffers so unwritten elements fail comparisons. */
  static final int NAN_BITS = 0x7fc00000;

  /** A device buffer of {@code n} floats filled with NaN. */
  static DeviceBuffer poisoned(CudaContext cx, long n) {
    DeviceBuffer b = cx.alloc(n * Float.BYTES);
    cx.fill(b, NAN_BITS);
    return b;
  }

  static float[] read(CudaContext cx, DeviceBuffer b, int n) {
    float[] out = new float[n];
    cx.read(b, 0, out, n);
    return out;
  }

  /** The logits after the prompt and after each of {@code steps} greedy tokens. */
  static <S> List<float[]> greedyLogits(Decoder<S> model, S seq, int[] prompt, int steps) {
    List<float[]> all = new ArrayList<>();
    float[] logits = model.prefill(seq, prompt);
    all.add(logits);
    for (int i = 0; i < steps; i++) {
      logits = model.decode(seq, Ops.argmax(logits, 0, logits.length));
      all.add(logits);
    }
    return all;
  }

  /** The largest |a[i] − b[i]|. */
  static double maxAbsDiff(float[] a, float[] b) {
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      max = Math.max(max, Math.abs(a[i] - b[i]));
    }
    return max;
  }
}
