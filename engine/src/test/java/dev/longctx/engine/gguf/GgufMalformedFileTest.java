package dev.longctx.engine.gguf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.tensor.GgmlType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every defect is a {@link ModelFormatException} naming the file, the byte offset (or key) and the
 * reason; never an IndexOutOfBoundsException or a silently wrong result.
 *
 * <p>The small file most tests corrupt has this layout (checked in {@link #setUp()}):
 *
 * <pre>
 *   0  magic, 4 version, 8 tensor count (1), 16 metadata count (2)
 *  24  key "a" (length @24, bytes @32), type @33 = UINT32, value @37 = 7
 *  41  key "s" (length @41, bytes @49), type @50 = STRING, length @54 = 5, bytes @62 "hello"
 *  67  tensor "t": name length @67, name @75, n_dims @76 = 2, dims @80 = 4, @88 = 2,
 *      type @96 = F32, offset @100 = 0; header ends at 108
 * 128  data section: t = 32 bytes [128, 160); file size 160
 * </pre>
 */
class GgufMalformedFileTest {

  @TempDir Path dir;
  private byte[] base;
  private int files;

  @BeforeEach
  void setUp() throws IOException {
    base = bytesOf(smallFile());
    try (GgufFile g = GgufFile.of(dir.resolve("base.gguf"), MemorySegment.ofArray(base))) {
      assertThat(g.dataOffset()).isEqualTo(128);
      assertThat(g.fileSize()).isEqualTo(160);
      assertThat(g.getInt("a")).isEqualTo(7);
      assertThat(g.getString("s")).isEqualTo("hello");
      assertThat(g.tensor("t").dims()).containsExactly(4, 2);
    }
    assertThat(new String(base, 75, 1, StandardCharsets.US_ASCII)).isEqualTo("t");
  }

  private static GgufWriter smallFile() {
    return new GgufWriter()
        .putUInt32("a", 7)
        .putString("s", "hello")
        .addTensor("t", new long[] {4, 2}, new float[] {1, 2, 3, 4, 5, 6, 7, 8});
  }

  private byte[] bytesOf(GgufWriter w) throws IOException {
    Path p = dir.resolve("written-" + files++ + ".gguf");
    w.write(p);
    return Files.readAllBytes(p);
  }

  private static byte[] patchInt(byte[] bytes, int at, int value) {
    byte[] b = bytes.clone();
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(at, value);
    return b;
  }

  private static byte[] patchLong(byte[] bytes, int at, long value) {
    byte[] b = bytes.clone();
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(at, value);
    return b;
  }

  /** Saves {@code bytes} as a file and asserts that opening it fails at {@code offset}. */
  private void assertRejectedAt(byte[] bytes, long offset, String... reasons) throws IOException {
    assertRejected(bytes, "offset " + offset, reasons);
  }

  private void assertRejected(byte[] bytes, String where, String... reasons) throws IOException {
    Path p = dir.resolve("broken-" + files++ + ".gguf");
    Files.write(p, bytes);
    assertThatThrownBy(() -> GgufFile.open(p).close())
        .isInstanceOfSatisfying(
            ModelFormatException.class,
            e -> {
              assertThat(e.file()).isEqualTo(p);
              assertThat(e.getMessage()).startsWith(p + ": " + where + ": ");
              for (String reason : reasons) {
                assertThat(e.getMessage()).contains(reason);
              }
            });
  }

  @ParameterizedTest(name = "cut at {0}")
  @CsvSource(
      delimiter = '|',
      value = {
        // in the header
        "0   | 0   | truncated: the magic needs 4 bytes but only 0 are left in the file of 0",
        "2   | 0   | truncated: the magic needs 4 bytes but only 2 are left in the file of 2",
        "6   | 4   | truncated: the version needs 4 bytes but only 2 are left in the file of 6",
        "10  | 8   | truncated: the tensor count needs 8 bytes but only 2 are left in the file of 10",
        "20  | 16  | truncated: the metadata count needs 8 bytes but only 4 are left",
        // in the metadata: first too short to hold even the announced number of entries
        "45  | 16  | truncated or corrupt: count of 2 metadata entries cannot fit: each needs at"
            + " least 13 bytes, but only 21 are left in the file of 45",
        "52  | 8   | truncated or corrupt: count of 1 tensor infos cannot fit: each needs at least"
            + " 32 bytes, but only 28 are left in the file of 52",
        "60  | 54  | truncated: the length of metadata 's' needs 8 bytes but only 6 are left",
        "65  | 54  | truncated or corrupt: string length 5 of metadata 's' exceeds the 3 bytes"
            + " left in the file of 65",
        // in the tensor infos
        "72  | 67  | truncated: the length of the name of tensor info #0 needs 8 bytes but only 5"
            + " are left",
        "75  | 67  | truncated or corrupt: string length 1 of the name of tensor info #0 exceeds"
            + " the 0 bytes left in the file of 75",
        "90  | 88  | truncated: dims[1] of tensor 't' needs 8 bytes but only 2 are left",
        "98  | 96  | truncated: the type of tensor 't' needs 4 bytes but only 2 are left",
        "104 | 100 | truncated: the data offset of tensor 't' needs 8 bytes but only 4 are left",
        // in the tensor data (or before it starts)
        "108 | 128 | truncated: tensor 't' needs bytes [128, 160) but the file has 108",
        "150 | 128 | truncated: tensor 't' needs bytes [128, 160) but the file has 150",
        "159 | 128 | truncated: tensor 't' needs bytes [128, 160) but the file has 159",
      })
  void truncatedFileNamesWhereAndWhat(int cut, long offset, String reason) throws IOException {
    assertRejectedAt(Arrays.copyOf(base, cut), offset, reason.strip());
  }

  @Test
  void everyPrefixOfAFileWithEveryValueTypeIsRejectedAsTruncated() throws IOException {
    GgufWriter w = new GgufWriter().putAll(GgufRoundTripTest.everyValueType());
    w.addTensor("f32", new long[] {3}, new float[] {1, 2, 3});
    w.addTensor("q8", GgmlType.Q8_0, new long[] {32, 2}, MemorySegment.ofArray(new byte[68]));
    byte[] bytes = bytesOf(w);
    long end;
    try (GgufFile g = GgufFile.of(dir.resolve("rich.gguf"), MemorySegment.ofArray(bytes))) {
      GgufTensorInfo last = g.tensors().getLast();
      end = g.dataOffset() + last.offset() + last.byteSize();
    }
    // Cutting only the padding after the last tensor leaves a valid file; any earlier cut fails.
    Path p = dir.resolve("prefix.gguf");
    for (int cut = 0; cut < end; cut++) {
      MemorySegment prefix = MemorySegment.ofArray(Arrays.copyOf(bytes, cut));
      try {
        GgufFile.of(p, prefix);
        fail("a prefix of " + cut + " bytes was accepted");
      } catch (ModelFormatException e) {
        assertThat(e.getMessage()).startsWith(p + ": offset ").contains("truncated");
      }
    }
  }

  @Test
  void flippedMagicSaysWhatWasFound() throws IOException {
    byte[] b = base.clone();
    b[0] = 'X';
    assertRejectedAt(
        b, 0, "not a GGUF file: magic is 58 47 55 46 (\"XGUF\"), expected 47 47 55 46 (\"GGUF\")");
    assertRejectedAt(
        "PK\u0003\u0004 zip".getBytes(StandardCharsets.ISO_8859_1),
        0,
        "magic is 50 4b 03 04 (\"PK..\")");
  }

  @Test
  void version1AndUnknownVersionsAreRejected() throws IOException {
    assertRejectedAt(
        patchInt(base, 4, 1),
        4,
        "GGUF version 1 is not supported (only 2 and 3); re-convert the model");
    assertRejectedAt(patchInt(base, 4, 4), 4, "unsupported GGUF version 4; supported: 2, 3");
    assertRejectedAt(
        patchInt(base, 4, 0x0300_0000), 4, "(a big-endian GGUF file? only little-endian");
  }

  @Test
  void unknownMetadataValueTypeIsRejected() throws IOException {
    assertRejectedAt(
        patchInt(base, 33, 13), 33, "metadata 'a' has unknown value type id 13 (known: 0..12)");
    assertRejectedAt(
        patchInt(base, 50, -1), 50, "metadata 's' has unknown value type id 4294967295");
  }

  @Test
  void unknownArrayElementTypeAndAbsurdArrayLengthAreRejected() throws IOException {
    // key "arr": length @24, bytes @32, type @35 = ARRAY, element type @39 = INT32, count @43 = 2
    byte[] b = bytesOf(new GgufWriter().putInt32Array("arr", new int[] {1, 2}));
    assertThat(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(43)).isEqualTo(2);
    assertRejectedAt(
        patchInt(b, 39, 42), 39, "metadata 'arr' has unknown array element type id 42");
    assertRejectedAt(
        patchLong(b, 43, 1L << 40),
        43,
        "truncated or corrupt: count of 1099511627776 INT32 elements of metadata 'arr' cannot"
            + " fit: each needs at least 4 bytes, but only");
    assertRejectedAt(patchLong(b, 43, -1L), 43, "count of 18446744073709551615 INT32 elements");
  }

  @Test
  void unknownTensorTypeIdIsRejected() throws IOException {
    assertRejectedAt(patchInt(base, 96, 99), 96, "tensor 't' has unknown ggml type id 99");
    // 4 and 5 were Q4_2 and Q4_3, removed from ggml long ago.
    assertRejectedAt(patchInt(base, 96, 4), 96, "tensor 't' has unknown ggml type id 4");
  }

  @Test
  void tensorDataPastTheEndOfTheFileIsRejected() throws IOException {
    assertRejectedAt(
        patchLong(base, 100, 1024),
        1152,
        "truncated: tensor 't' needs bytes [1152, 1184) but the file has 160");
    assertRejectedAt(
        patchLong(base, 88, 1L << 40),
        128,
        "truncated: tensor 't' needs bytes [128, 17592186044544) but the file has 160");
  }

  @Test
  void stringLengthLongerThanTheFileIsRejected() throws IOException {
    assertRejectedAt(
        patchLong(base, 54, 1_000_000),
        54,
        "truncated or corrupt: string length 1000000 of metadata 's' exceeds the 98 bytes left in"
            + " the file of 160");
    assertRejectedAt(
        patchLong(base, 24, -1L),
        24,
        "string length 18446744073709551615 of metadata key #0 exceeds");
    assertRejectedAt(patchLong(base, 67, 200), 67, "string length 200 of the name of tensor info");
  }

  @Test
  void absurdCountsInTheHeaderAreRejectedBeforeAllocating() throws IOException {
    assertRejectedAt(
        patchLong(base, 8, Long.MAX_VALUE),
        8,
        "count of 9223372036854775807 tensor infos cannot fit");
    assertRejectedAt(patchLong(base, 16, 1L << 33), 16, "count of 8589934592 metadata entries");
  }

  @Test
  void badShapesAreRejected() throws IOException {
    assertRejectedAt(patchLong(base, 80, 0), 80, "tensor 't' has dims[0] = 0, not > 0");
    assertRejectedAt(
        patchLong(base, 88, -2), 88, "tensor 't' has dims[1] = 18446744073709551614, not > 0");
    assertRejectedAt(patchInt(base, 76, 5), 76, "tensor 't' has n_dims 5, outside 1..4");
    assertRejectedAt(patchInt(base, 76, 0), 76, "tensor 't' has n_dims 0, outside 1..4");
    assertRejectedAt(
        patchInt(base, 96, GgmlType.Q8_0.id()),
        96,
        "tensor 't' of type Q8_0 has dims[0] = 4, not a multiple of the block size 32");
    assertRejectedAt(
        patchLong(base, 100, 4),
        100,
        "tensor 't' has data offset 4, not a multiple of the alignment 32");
  }

  @Test
  void alignmentThatIsNotAPowerOfTwoIsRejected() throws IOException {
    // key "general.alignment": length @24, bytes @32, type @49 = UINT32, value @53
    byte[] b = bytesOf(new GgufWriter().alignment(64).putString("x", "y"));
    assertThat(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(53)).isEqualTo(64);
    assertRejected(
        patchInt(b, 53, 48),
        "key 'general.alignment'",
        "alignment 48 is not a power of two in [1, 2^30]");
    assertRejected(patchInt(b, 53, 0), "key 'general.alignment'", "alignment 0 is not a power");
    // The writer refuses a non-integer alignment, so misspell the key and fix it in the bytes.
    byte[] asString = bytesOf(new GgufWriter().putString("general.alignmenX", "32"));
    asString[48] = 't';
    assertRejected(asString, "key 'general.alignment'", "expected an integer, found STRING");
  }

  @Test
  void duplicateKeysAndTensorNamesAndOverlappingTensorsAreRejected() throws IOException {
    byte[] b = base.clone();
    b[49] = 'a'; // key "s" becomes a second "a"
    assertRejectedAt(b, 41, "duplicate metadata key 'a'");

    // Tensor "u" follows "t": name length @108, name @116, n_dims @117, dim @121, type @129,
    // offset @133; data section at 160: t [160, 192), u [192, 224).
    byte[] two = bytesOf(smallFile().addTensor("u", new long[] {8}, new float[8]));
    assertThat((char) two[116]).isEqualTo('u');
    assertThat(ByteBuffer.wrap(two).order(ByteOrder.LITTLE_ENDIAN).getLong(133)).isEqualTo(32);
    byte[] dup = two.clone();
    dup[116] = 't';
    assertRejectedAt(dup, 108, "duplicate tensor name 't'");
    assertRejectedAt(
        patchLong(two, 133, 0),
        160,
        "tensor 'u' at data offset 0 overlaps tensor 't' at data offset 0 (32 bytes)");
  }

  @Test
  void randomCorruptionNeverEscapesAsAnotherException() throws IOException {
    GgufWriter w = new GgufWriter().putAll(GgufRoundTripTest.everyValueType());
    w.addTensor("f32", new long[] {3, 2}, new float[6]);
    w.addTensor("q4", GgmlType.Q4_0, new long[] {32, 2}, MemorySegment.ofArray(new byte[36]));
    byte[] good = bytesOf(w);
    Random r = new Random(1234);
    Path p = dir.resolve("fuzz.gguf");
    int rejected = 0;
    for (int i = 0; i < 3000; i++) {
      byte[] b = good.clone();
      for (int k = 1 + r.nextInt(3); k > 0; k--) {
        // Mostly hit the header (where the structure is); large values stress the length checks.
        int at = r.nextInt(r.nextBoolean() ? Math.min(good.length, 700) : good.length);
        b[at] = (byte) (r.nextBoolean() ? r.nextInt() : 0xFF);
      }
      try (GgufFile g = GgufFile.of(p, MemorySegment.ofArray(b))) {
        for (GgufTensorInfo t : g.tensors()) {
          assertThat(g.tensorData(t).byteSize()).isEqualTo(t.byteSize());
        }
      } catch (ModelFormatException e) {
        assertThat(e.getMessage()).startsWith(p + ": ");
        rejected++;
      }
    }
    assertThat(rejected).isGreaterThan(100);
  }
}
