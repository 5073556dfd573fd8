package dev.longctx.engine.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link GgufWriter} → {@link GgufFile} reproduces every value type and tensor byte exactly. */
class GgufRoundTripTest {

  @TempDir Path dir;

  /** One value of every type, edge values and empty arrays/strings included. */
  static Map<String, GgufValue> everyValueType() {
    Map<String, GgufValue> m = new LinkedHashMap<>();
    m.put("u8.min", GgufValue.uint8(0));
    m.put("u8.max", GgufValue.uint8(255));
    m.put("i8.min", GgufValue.int8(-128));
    m.put("i8.max", GgufValue.int8(127));
    m.put("u16.max", GgufValue.uint16(0xFFFF));
    m.put("i16.min", GgufValue.int16(Short.MIN_VALUE));
    m.put("u32.max", GgufValue.uint32(0xFFFF_FFFFL));
    m.put("i32.min", GgufValue.int32(Integer.MIN_VALUE));
    m.put("u64.max", GgufValue.uint64(-1L));
    m.put("u64.small", GgufValue.uint64(42));
    m.put("i64.min", GgufValue.int64(Long.MIN_VALUE));
    m.put("f32", GgufValue.float32(-0.15625f));
    m.put("f32.nan", GgufValue.float32(Float.NaN));
    m.put("f32.negzero", GgufValue.float32(-0.0f));
    m.put("f64", GgufValue.float64(Math.PI));
    m.put("bool.true", GgufValue.bool(true));
    m.put("bool.false", GgufValue.bool(false));
    m.put("str", GgufValue.string("plain"));
    m.put("str.empty", GgufValue.string(""));
    m.put("str.unicode", GgufValue.string("héllo ▁world 世界 🦙 \u0000 end"));
    m.put("a.u8", GgufValue.uint8Array(new byte[] {0, 1, (byte) 0xFF}));
    m.put("a.i8", GgufValue.int8Array(new byte[] {-128, 0, 127}));
    m.put("a.u16", GgufValue.uint16Array(new short[] {0, (short) 0xFFFF}));
    m.put("a.i16", GgufValue.int16Array(new short[] {Short.MIN_VALUE, -1, Short.MAX_VALUE}));
    m.put("a.u32", GgufValue.uint32Array(new int[] {0, 7, -1}));
    m.put("a.i32", GgufValue.int32Array(new int[] {Integer.MIN_VALUE, -1, 0, Integer.MAX_VALUE}));
    m.put("a.u64", GgufValue.uint64Array(new long[] {0, -1L}));
    m.put("a.i64", GgufValue.int64Array(new long[] {Long.MIN_VALUE, Long.MAX_VALUE}));
    m.put("a.f32", GgufValue.float32Array(new float[] {1.5f, -2f, Float.NEGATIVE_INFINITY}));
    m.put("a.f64", GgufValue.float64Array(new double[] {1e-300, -0.0, Double.MAX_VALUE}));
    m.put("a.bool", GgufValue.boolArray(new boolean[] {true, false, true}));
    m.put("a.str", GgufValue.stringArray("", "a b", "▁the", "Ġ", "<|im_start|>", "日本語"));
    m.put(
        "a.nested",
        GgufValue.arrayOfArrays(
            GgufValue.int32Array(new int[] {1, 2}),
            GgufValue.stringArray("x"),
            GgufValue.arrayOfArrays(GgufValue.float32Array(new float[] {3f}))));
    m.put("a.empty.u8", GgufValue.uint8Array(new byte[0]));
    m.put("a.empty.i32", GgufValue.int32Array(new int[0]));
    m.put("a.empty.f32", GgufValue.float32Array(new float[0]));
    m.put("a.empty.str", GgufValue.stringArray());
    m.put("a.empty.nested", GgufValue.arrayOfArrays());
    return m;
  }

  private Path write(GgufWriter w, String name) throws IOException {
    Path p = dir.resolve(name);
    long size = w.write(p);
    assertThat(Files.size(p)).isEqualTo(size);
    return p;
  }

  @Test
  void everyMetadataValueTypeRoundTripsInOrder() throws IOException {
    Map<String, GgufValue> values = everyValueType();
    Path p = write(new GgufWriter().putAll(values), "values.gguf");
    try (GgufFile g = GgufFile.open(p)) {
      assertThat(g.version()).isEqualTo(3);
      assertThat(g.tensors()).isEmpty();
      assertThat(new ArrayList<>(g.metadata().keySet())).containsExactlyElementsOf(values.keySet());
      assertThat(g.metadata()).isEqualTo(values);
      for (GgufValueType t : GgufValueType.values()) {
        assertThat(g.metadata().values()).anyMatch(v -> v.type() == t);
        assertThat(g.metadata().values())
            .anyMatch(v -> v.isArray() && v.elementType() == t && v.arrayLength() > 0);
      }
    }
  }

  @Test
  void typedPutMethodsRoundTripThroughTypedGetters() throws IOException {
    GgufWriter w =
        new GgufWriter()
            .putUInt8("u8", 200)
            .putInt8("i8", -5)
            .putUInt16("u16", 60000)
            .putInt16("i16", -300)
            .putUInt32("u32", 4_000_000_000L)
            .putInt32("i32", -7)
            .putUInt64("u64", 1L << 40)
            .putInt64("i64", -(1L << 40))
            .putFloat32("f32", 0.25f)
            .putFloat64("f64", 1e-9)
            .putBool("b", true)
            .putString("s", "Llama 3.2 1B ✓")
            .putUInt8Array("au8", new byte[] {(byte) 200, 1})
            .putInt8Array("ai8", new byte[] {-1})
            .putUInt16Array("au16", new short[] {(short) 60000})
            .putInt16Array("ai16", new short[] {-2})
            .putUInt32Array("au32", new int[] {(int) 4_000_000_000L})
            .putInt32Array("ai32", new int[] {3, -3})
            .putUInt64Array("au64", new long[] {5})
            .putInt64Array("ai64", new long[] {-5})
            .putFloat32Array("af32", new float[] {0.5f, 1e-5f})
            .putFloat64Array("af64", new double[] {2.5})
            .putBoolArray("ab", new boolean[] {false, true})
            .putStringArray("as", List.of("<s>", "</s>"));
    try (GgufFile g = GgufFile.open(write(w, "typed.gguf"))) {
      assertThat(g.getInt("u8")).isEqualTo(200);
      assertThat(g.getInt("i8")).isEqualTo(-5);
      assertThat(g.getInt("u16")).isEqualTo(60000);
      assertThat(g.getInt("i16")).isEqualTo(-300);
      assertThat(g.getLong("u32")).isEqualTo(4_000_000_000L);
      assertThat(g.getInt("i32")).isEqualTo(-7);
      assertThat(g.getLong("u64")).isEqualTo(1L << 40);
      assertThat(g.getLong("i64")).isEqualTo(-(1L << 40));
      assertThat(g.getFloat("f32")).isEqualTo(0.25f);
      assertThat(g.getDouble("f64")).isEqualTo(1e-9);
      assertThat(g.getFloat("f64")).isEqualTo(1e-9f);
      assertThat(g.getBoolean("b")).isTrue();
      assertThat(g.getString("s")).isEqualTo("Llama 3.2 1B ✓");
      assertThat(g.getIntArray("au8")).containsExactly(200, 1);
      assertThat(g.getIntArray("ai8")).containsExactly(-1);
      assertThat(g.getIntArray("au16")).containsExactly(60000);
      assertThat(g.getIntArray("ai16")).containsExactly(-2);
      assertThat(g.getLongArray("au32")).containsExactly(4_000_000_000L);
      assertThat(g.getIntArray("ai32")).containsExactly(3, -3);
      assertThat(g.getIntArray("au64")).containsExactly(5);
      assertThat(g.getLongArray("ai64")).containsExactly(-5L);
      assertThat(g.getFloatArray("af32")).containsExactly(0.5f, 1e-5f);
      assertThat(g.getFloatArray("af64")).containsExactly(2.5f);
      assertThat(g.value("ab").value()).isEqualTo(new boolean[] {false, true});
      assertThat(g.getStringArray("as")).containsExactly("<s>", "</s>");
      // Types stay visible.
      assertThat(g.value("u32").type()).isEqualTo(GgufValueType.UINT32);
      assertThat(g.value("au16").elementType()).isEqualTo(GgufValueType.UINT16);
      // Defaults apply only to absent keys.
      assertThat(g.getInt("absent", 11)).isEqualTo(11);
      assertThat(g.getString("absent", "d")).isEqualTo("d");
      assertThat(g.getFloat("absent", 2f)).isEqualTo(2f);
      assertThat(g.getLong("absent", 3L)).isEqualTo(3L);
      assertThat(g.getBoolean("absent", true)).isTrue();
      assertThat(g.getInt("u8", 11)).isEqualTo(200);
      assertThat(g.findIntArray("absent")).isEmpty();
      assertThat(g.find("s", GgufValue::asString)).contains("Llama 3.2 1B ✓");
      assertThat(g.has("s")).isTrue();
      assertThat(g.has("absent")).isFalse();
    }
  }

  @Test
  void wrongTypeOrMissingKeyNamesTheKey() throws IOException {
    GgufWriter w =
        new GgufWriter()
            .putUInt32("n", 0xFFFF_FFFFL)
            .putUInt64("big", -1L)
            .putString("s", "x")
            .putUInt32Array("au32", new int[] {1, -1});
    Path p = write(w, "types.gguf");
    try (GgufFile g = GgufFile.open(p)) {
      assertThatThrownBy(() -> g.getInt("n"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 'n': expected an int, found UINT32 4294967295");
      assertThatThrownBy(() -> g.getLong("big"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 'big': expected a long, found UINT64 18446744073709551615");
      assertThatThrownBy(() -> g.getString("n"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 'n': expected a STRING, found UINT32 4294967295");
      assertThatThrownBy(() -> g.getInt("s", 3))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 's': expected an int, found STRING");
      assertThatThrownBy(() -> g.getStringArray("s"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 's': expected an array of STRING, found STRING");
      assertThatThrownBy(() -> g.getIntArray("au32"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(
              p
                  + ": key 'au32': expected an array of int, found ARRAY[UINT32] with element 1"
                  + " = 4294967295");
      assertThatThrownBy(() -> g.getFloat("missing"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 'missing': missing from the metadata");
      assertThatThrownBy(() -> g.tensor("nope"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessage(p + ": key 'nope': no such tensor in the file");
    }
  }

  private static byte[] randomBytes(Random r, long n) {
    byte[] b = new byte[(int) n];
    r.nextBytes(b);
    return b;
  }

  @ParameterizedTest
  @ValueSource(ints = {32, 64, 128})
  void tensorsOfEveryShapeRoundTripAlignedAndByteExact(int alignment) throws IOException {
    Random r = new Random(alignment);
    float[] f32 = new float[3 * 7];
    for (int i = 0; i < f32.length; i++) {
      f32[i] = r.nextFloat() * 2 - 1;
    }
    // Odd sizes so that every tensor needs padding after it.
    Map<String, Object[]> specs = new LinkedHashMap<>();
    specs.put("f16.vec", new Object[] {GgmlType.F16, new long[] {5}});
    specs.put("blk.0.attn_q.weight", new Object[] {GgmlType.Q8_0, new long[] {64, 3}});
    specs.put("q4.3d", new Object[] {GgmlType.Q4_0, new long[] {32, 5, 2}});
    specs.put("q4.4d", new Object[] {GgmlType.Q4_0, new long[] {32, 1, 1, 3}});
    specs.put("q5k", new Object[] {GgmlType.Q5_K, new long[] {256}});
    GgufWriter w = new GgufWriter().putString("general.architecture", "llama");
    if (alignment != GgufFile.DEFAULT_ALIGNMENT) {
      w.alignment(alignment);
    }
    w.addTensor("token_embd.weight", new long[] {7, 3}, f32);
    Map<String, byte[]> data = new LinkedHashMap<>();
    for (var e : specs.entrySet()) {
      GgmlType type = (GgmlType) e.getValue()[0];
      long[] dims = (long[]) e.getValue()[1];
      long elements = 1;
      for (long d : dims) {
        elements *= d;
      }
      byte[] bytes = randomBytes(r, type.byteSize(elements));
      data.put(e.getKey(), bytes);
      w.addTensor(e.getKey(), type, dims, MemorySegment.ofArray(bytes));
    }
    Path p = write(w, "tensors.gguf");
    try (GgufFile g = GgufFile.open(p)) {
      assertThat(g.alignment()).isEqualTo(alignment);
      assertThat(g.tensors()).isEqualTo(w.tensorInfos());
      assertThat(g.tensors())
          .extracting(GgufTensorInfo::name)
          .containsExactly(
              "token_embd.weight", "f16.vec", "blk.0.attn_q.weight", "q4.3d", "q4.4d", "q5k");
      assertThat(g.dataOffset() % alignment).isZero();
      assertThat(g.fileSize() % alignment).isZero();
      for (GgufTensorInfo t : g.tensors()) {
        assertThat((g.dataOffset() + t.offset()) % alignment).as(t.name()).isZero();
      }
      assertThat(g.tensor("q4.3d").dims()).containsExactly(32, 5, 2);
      assertThat(g.tensor("q4.3d").byteSize()).isEqualTo(10 * 18);
      assertThat(g.tensor("blk.0.attn_q.weight").byteSize()).isEqualTo(3 * 2 * 34);
      for (var e : data.entrySet()) {
        assertThat(g.tensorData(e.getKey()).toArray(ValueLayout.JAVA_BYTE))
            .as(e.getKey())
            .isEqualTo(e.getValue());
      }
      FloatTensor emb = g.floatTensor("token_embd.weight");
      assertThat(emb.rows()).isEqualTo(3);
      assertThat(emb.cols()).isEqualTo(7);
      for (int i = 0; i < f32.length; i++) {
        assertThat(emb.getFloat(i)).isEqualTo(f32[i]);
      }
      assertThatThrownBy(() -> g.floatTensor("q5k"))
          .isInstanceOf(ModelFormatException.class)
          .hasMessageStartingWith(p + ": key 'q5k': ")
          .hasMessageContaining("tensor 'q5k' has type Q5_K, which the engine cannot compute with")
          .hasMessageContaining("(supported: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16)");
    }
  }

  @Test
  void largeTensorsStreamInChunksFromHeapNativeAndCustomSources() throws IOException {
    Random r = new Random(7);
    int n = 300_000; // 1.2 MB of F32: more than one 1 MiB chunk
    float[] floats = new float[n];
    for (int i = 0; i < n; i++) {
      floats[i] = r.nextFloat();
    }
    byte[] heap = randomBytes(r, 34L * 40_000); // Q8_0, 1.36 MB
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment nativeSeg = arena.allocate(18L * 70_000); // Q4_0, 1.26 MB
      nativeSeg.copyFrom(MemorySegment.ofArray(randomBytes(r, nativeSeg.byteSize())));
      GgufWriter w =
          new GgufWriter()
              .addTensor("floats", new long[] {1000, 300}, floats)
              .addTensor(
                  "heap", GgmlType.Q8_0, new long[] {32 * 400, 100}, MemorySegment.ofArray(heap))
              .addTensor("native", GgmlType.Q4_0, new long[] {32 * 700, 100}, nativeSeg)
              // A generated tensor, written in small pieces, as a synthetic model would.
              .addTensor(
                  "generated",
                  GgmlType.I8,
                  new long[] {100_000},
                  out -> {
                    for (int i = 0; i < 100; i++) {
                      ByteBuffer b = ByteBuffer.allocate(1000);
                      for (int j = 0; j < 1000; j++) {
                        b.put((byte) (i + j));
                      }
                      GgufWriter.writeFully(out, b.flip());
                    }
                  });
      Path p = write(w, "large.gguf");
      try (GgufFile g = GgufFile.open(p)) {
        assertThat(g.tensorData("floats").toArray(ValueLayout.JAVA_FLOAT_UNALIGNED))
            .isEqualTo(floats);
        assertThat(g.tensorData("heap").toArray(ValueLayout.JAVA_BYTE)).isEqualTo(heap);
        assertThat(g.tensorData("native").mismatch(nativeSeg)).isEqualTo(-1);
        MemorySegment gen = g.tensorData("generated");
        assertThat(gen.byteSize()).isEqualTo(100_000);
        assertThat(gen.get(ValueLayout.JAVA_BYTE, 54_321)).isEqualTo((byte) (54 + 321));
      }
    }
  }

  @Test
  void writerRejectsBadShapesDuplicatesAndMisSizedSources() throws IOException {
    GgufWriter w = new GgufWriter();
    assertThatThrownBy(
            () ->
                w.addTensor(
                    "q", GgmlType.Q8_0, new long[] {33}, MemorySegment.ofArray(new byte[34])))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("dims[0] = 33, not a multiple of the block size 32");
    assertThatThrownBy(
            () ->
                w.addTensor(
                    "q", GgmlType.Q8_0, new long[] {32}, MemorySegment.ofArray(new byte[33])))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("needs 34 bytes, got 33");
    assertThatThrownBy(() -> w.addTensor("z", new long[] {0}, new float[0]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("dim <= 0");
    assertThatThrownBy(() -> w.addTensor("five", new long[] {1, 1, 1, 1, 1}, new float[1]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("5 dims");
    assertThatThrownBy(() -> w.alignment(48)).isInstanceOf(IllegalArgumentException.class);
    w.addTensor("t", new long[] {2}, new float[2]);
    assertThatThrownBy(() -> w.addTensor("t", new long[] {2}, new float[2]))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("duplicate tensor name 't'");
    w.addTensor(
        "short",
        GgmlType.F32,
        new long[] {4},
        out -> GgufWriter.writeFully(out, ByteBuffer.allocate(12)));
    assertThatThrownBy(() -> w.write(dir.resolve("short.gguf")))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("tensor 'short': its source wrote 12 bytes, but F32 [4] needs 16");
  }

  @Test
  void putKeepsFirstPositionWhenAKeyIsReplaced() throws IOException {
    GgufWriter w = new GgufWriter().putInt32("a", 1).putInt32("b", 2).putInt32("a", 3);
    try (GgufFile g = GgufFile.open(write(w, "replace.gguf"))) {
      assertThat(g.metadata().keySet()).containsExactly("a", "b");
      assertThat(g.getInt("a")).isEqualTo(3);
    }
  }

  @Test
  void version2FilesReadLikeVersion3() throws IOException {
    Path p =
        write(
            new GgufWriter().putString("k", "v").addTensor("t", new long[] {2}, new float[] {1, 2}),
            "v2.gguf");
    byte[] bytes = Files.readAllBytes(p);
    bytes[4] = 2;
    Files.write(p, bytes);
    try (GgufFile g = GgufFile.open(p)) {
      assertThat(g.version()).isEqualTo(2);
      assertThat(g.getString("k")).isEqualTo("v");
      assertThat(g.floatTensor("t").getFloat(1)).isEqualTo(2f);
    }
  }

  @Test
  void tensorSlicesAreZeroCopyViewsThatDieWithTheFile() throws IOException {
    Path p =
        write(new GgufWriter().addTensor("t", new long[] {4}, new float[] {1, 2, 3, 4}), "z.gguf");
    GgufFile g = GgufFile.open(p);
    MemorySegment t = g.tensorData("t");
    assertThat(t.isMapped()).isTrue();
    assertThat(t.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 12)).isEqualTo(4f);
    g.close();
    assertThatThrownBy(() -> t.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 12))
        .isInstanceOf(IllegalStateException.class);
  }
}
