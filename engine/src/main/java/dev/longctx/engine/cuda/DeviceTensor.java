package dev.longctx.engine.cuda;

import dev.longctx.engine.tensor.FloatTensor;
import dev.longctx.engine.tensor.GgmlType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * A weight matrix on the device, uploaded once: the kernels dequantize on the fly, so device memory
 * holds the same bytes as the file. F32, F16, BF16 and Q4_K keep their GGUF layout; Q8_0, Q4_0 and
 * Q6_K are uploaded by default in the {@link Layout#SPLIT split layout} (quants and scales as two
 * aligned arrays, the same bytes rearranged) that the decode matvec reads with 16-byte loads. A
 * tensor may be a row range of a larger upload ({@link #rows(int, int)}); only the tensor that owns
 * the buffer frees it.
 *
 * @param offset byte offset of row 0 (of the quants, in the split layout) in {@code buffer}
 * @param scalesOffset byte offset of row 0's scales in {@code buffer} (split layout; else 0)
 */
public record DeviceTensor(
    GgmlType type,
    Layout layout,
    int rows,
    int cols,
    DeviceBuffer buffer,
    long offset,
    long scalesOffset,
    boolean owner)
    implements AutoCloseable {

  /** The types the kernels read. */
  public static final Set<GgmlType> SUPPORTED =
      Set.of(
          GgmlType.F32,
          GgmlType.F16,
          GgmlType.BF16,
          GgmlType.Q8_0,
          GgmlType.Q4_0,
          GgmlType.Q4_K,
          GgmlType.Q6_K);

  /**
   * Added to the ggml type id to name the split layout to the kernels (TYPE_SPLIT in longctx.cu:
   * TYPE_Q8_0_SPLIT = 264, TYPE_Q4_0_SPLIT = 258, TYPE_Q6_K_SPLIT = 270).
   */
  static final int SPLIT_TYPE_FLAG = 256;

  /** Q8_0 elements (Q4_0: twice as many) per interleaved chunk of 512 quant bytes (longctx.cu). */
  private static final int Q8_CHUNK = 512;

  private static final int Q4_CHUNK = 1024;

  /** Source bytes repacked per host batch (the staging of one {@link CudaContext#write}). */
  private static final long REPACK_BATCH_BYTES = 4L << 20;

  /** How a matrix's bytes are laid out on the device. */
  public enum Layout {
    /**
     * The GGUF tensor bytes as they are (Q8_0 / Q4_0 / Q6_K: 34- / 18- / 210-byte blocks, 2-byte
     * aligned).
     */
    GGUF,
    /**
     * Q8_0 / Q4_0 (columns a multiple of 32) as two arrays (longctx.cu, "split layout"): the quants
     * [rows, cols] (Q4_0: nibbles [rows, cols/2]), rows 16-byte aligned and interleaved within
     * 512-byte chunks so a warp's 16-byte loads meet contiguous activations; then the FP16 scales
     * [rows, cols/32], each row padded to 16 bytes. The same values and (but for that padding) the
     * same bytes as the GGUF blocks. Q6_K (columns a multiple of 256): the quants [rows, 192 per
     * super-block] (each super-block's ql and qh as in its block), then per row the super-blocks'
     * int8 scales (16 bytes each) and their FP16 d, the row padded to 16 bytes (longctx.cu, "Q6_K
     * split layout").
     */
    SPLIT
  }

  /**
   * Uploads {@code t} in its {@link #defaultLayout default layout}; fails naming the type when no
   * kernel reads it (one outside {@link #SUPPORTED}).
   */
  public static DeviceTensor upload(CudaContext cx, FloatTensor t, String name) {
    return stack(cx, List.of(t), name);
  }

  /**
   * Uploads {@code t} in {@code layout} (SPLIT only for Q8_0 / Q4_0 with cols % 32 == 0 and Q6_K
   * with cols % 256 == 0).
   */
  public static DeviceTensor upload(CudaContext cx, FloatTensor t, String name, Layout layout) {
    return stack(cx, List.of(t), name, layout);
  }

  /**
   * The layout uploads use unless told: {@link Layout#SPLIT} for Q8_0, Q4_0 and Q6_K whose rows are
   * whole blocks, {@link Layout#GGUF} otherwise.
   */
  public static Layout defaultLayout(GgmlType type, int cols) {
    return splittable(type, cols) ? Layout.SPLIT : Layout.GGUF;
  }

  private static boolean splittable(GgmlType type, int cols) {
    return (type == GgmlType.Q8_0 || type == GgmlType.Q4_0) && cols % 32 == 0
        || type == GgmlType.Q6_K && cols % 256 == 0;
  }

  /**
   * Uploads {@code parts} (one type, one column count) as one matrix, their rows one after the
   * other: the decode step then reads e.g. the query, key and value projections in one launch whose
   * thousands of rows fill the device, where the 1024-row key and value matrices alone cannot. Row
   * ranges of the result address each part.
   */
  public static DeviceTensor stack(CudaContext cx, List<FloatTensor> parts, String name) {
    FloatTensor first = parts.getFirst();
    return stack(cx, parts, name, defaultLayout(first.type(), first.cols()));
  }

  /** {@link #stack(CudaContext, List, String)} in {@code layout}. */
  public static DeviceTensor stack(
      CudaContext cx, List<FloatTensor> parts, String name, Layout layout) {
    FloatTensor first = parts.getFirst();
    long bytes = 0;
    int rows = 0;
    for (FloatTensor t : parts) {
      if (!SUPPORTED.contains(t.type())) {
        throw new IllegalArgumentException(
            name
                + " is "
                + t.type()
                + "; the CUDA backend reads "
                + SUPPORTED
                + " (convert the model or use --backend cpu)");
      }
      if (t.type() != first.type() || t.cols() != first.cols()) {
        throw new IllegalArgumentException(
            name + ": stacked parts differ in type or columns: " + t + " vs " + first);
      }
      bytes += t.data().byteSize();
      rows += t.rows();
    }
    if (layout == Layout.SPLIT && !splittable(first.type(), first.cols())) {
      throw new IllegalArgumentException(
          name + ": the split layout holds Q8_0 / Q4_0 / Q6_K rows of whole blocks, not " + first);
    }
    GgmlType type = first.type();
    int cols = first.cols();
    long scalesAt = layout == Layout.SPLIT ? rows * quantRowBytes(type, cols) : 0;
    DeviceBuffer buffer =
        cx.alloc(layout == Layout.SPLIT ? scalesAt + rows * scaleRowBytes(type, cols) : bytes);
    try {
      long at = 0;
      int row = 0;
      for (FloatTensor t : parts) {
        if (layout == Layout.SPLIT) {
          writeSplit(cx, buffer, t, row, scalesAt);
        } else {
          cx.write(buffer, at, t.data());
        }
        at += t.data().byteSize();
        row += t.rows();
      }
    } catch (RuntimeException e) {
      buffer.close();
      throw e;
    }
    return new DeviceTensor(type, layout, rows, cols, buffer, 0, scalesAt, true);
  }

  /** Whether {@code parts} can be {@link #stack stacked}: one supported type, one column count. */
  public static boolean stackable(List<FloatTensor> parts) {
    FloatTensor first = parts.getFirst();
    return parts.stream()
        .allMatch(
            t ->
                SUPPORTED.contains(t.type())
                    && t.type() == first.type()
                    && t.cols() == first.cols());
  }

  /** Rows [from, from + count) as a tensor over the same device memory (not an owner). */
  public DeviceTensor rows(int from, int count) {
    if (from < 0 || count < 0 || from + count > rows) {
      throw new IndexOutOfBoundsException(
          "rows [" + from + ", " + (from + count) + ") of a " + rows + "-row tensor");
    }
    if (layout == Layout.SPLIT) {
      return new DeviceTensor(
          type,
          layout,
          count,
          cols,
          buffer,
          offset + from * quantRowBytes(type, cols),
          scalesOffset + from * scaleRowBytes(type, cols),
          false);
    }
    long rowBytes = type.byteSize((long) cols);
    return new DeviceTensor(type, layout, count, cols, buffer, offset + from * rowBytes, 0, false);
  }

  /** The device address of row 0: of its quants in the split layout. */
  public long address() {
    return buffer.address() + offset;
  }

  /** The device address of row 0's scales in the split layout; 0 in the GGUF layout. */
  public long scalesAddress() {
    return layout == Layout.SPLIT ? buffer.address() + scalesOffset : 0L;
  }

  /**
   * Whether the integer products over int8 activations ({@code CudaKernels.matvecQuantized}) read
   * this matrix: Q8_0, Q4_0 and Q6_K in the split layout, Q4_K in its GGUF super-blocks.
   */
  public boolean takesInt8Activations() {
    return layout == Layout.SPLIT || type == GgmlType.Q4_K;
  }

  /** Whether this is a Q8_0 or Q4_0 matrix in the split layout (matvec_split's). */
  boolean splitBlocks() {
    return layout == Layout.SPLIT && type != GgmlType.Q6_K;
  }

  /** The type id the kernels take: ggml's, plus {@link #SPLIT_TYPE_FLAG} in the split layout. */
  public int kernelType() {
    return layout == Layout.SPLIT ? SPLIT_TYPE_FLAG + type.id() : type.id();
  }

  /** Bytes of these rows in GGUF (the split layout's scale-row padding not counted). */
  public long bytes() {
    return type.byteSize((long) rows * cols);
  }

  @Override
  public void close() {
    if (owner) {
      buffer.close();
    }
  }

  // ---- the split layout ----------------------------------------------------------------------

  private static long quantRowBytes(GgmlType type, int cols) {
    return switch (type) {
      case Q8_0 -> cols;
      case Q6_K -> cols / Q6_K_BLOCK * Q6_K_QUANTS;
      default -> cols / 2;
    };
  }

  /**
   * A row's scales in bytes, padded to 16: FP16 per 32-element block (Q8_0 / Q4_0); Q6_K: 16 int8
   * scales and an FP16 d per super-block.
   */
  private static long scaleRowBytes(GgmlType type, int cols) {
    if (type == GgmlType.Q6_K) {
      int blocks = cols / Q6_K_BLOCK;
      return 16L * blocks + ((2L * blocks + 15) & ~15);
    }
    return ((cols / 32 + 7) & ~7) * 2L;
  }

  private static final int Q6_K_BLOCK = 256;

  /** Bytes of a Q6_K super-block's ql and qh, which lead its 210-byte block. */
  private static final int Q6_K_QUANTS = 192;

  /**
   * Writes the rows of {@code t} (GGUF blocks) as rows {@code firstRow}.. of a split-layout matrix
   * in {@code buffer} whose scales start at {@code scalesAt}, a host batch of rows at a time (its
   * rows repacked in parallel).
   */
  private static void writeSplit(
      CudaContext cx, DeviceBuffer buffer, FloatTensor t, int firstRow, long scalesAt) {
    Repack repack = new Repack(t.type(), t.cols());
    int srcRow = repack.srcRow;
    int batch = (int) Math.max(1, Math.min(t.rows(), REPACK_BATCH_BYTES / srcRow));
    byte[] src = new byte[batch * srcRow];
    byte[] quants = new byte[batch * repack.quantRow];
    byte[] scales = new byte[batch * repack.scaleRow];
    for (int r0 = 0; r0 < t.rows(); r0 += batch) {
      int n = Math.min(batch, t.rows() - r0);
      MemorySegment.copy(t.data(), ValueLayout.JAVA_BYTE, (long) r0 * srcRow, src, 0, n * srcRow);
      IntStream.range(0, n).parallel().forEach(r -> repack.row(src, r, quants, scales));
      long row = (long) firstRow + r0;
      cx.write(
          buffer,
          row * repack.quantRow,
          MemorySegment.ofArray(quants).asSlice(0, (long) n * repack.quantRow));
      cx.write(
          buffer,
          scalesAt + row * repack.scaleRow,
          MemorySegment.ofArray(scales).asSlice(0, (long) n * repack.scaleRow));
    }
  }

  private static final VarHandle INT =
      MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

  /**
   * GGUF rows of one type and width → split-layout rows: Q8_0 / Q4_0 through tables of where each
   * 4-element group and each scale goes (4 consecutive elements stay 4 consecutive bytes, or one
   * nibble half of 4 consecutive bytes, in every part of the layout); Q6_K by moving each
   * super-block's scales and d out of its quant bytes.
   */
  static final class Repack {
    final GgmlType type;
    final boolean q8;
    final int srcRow;
    final int quantRow;
    final int scaleRow;

    /**
     * Per 4-element group k (elements 4k..4k+3): its byte in the row; Q4_0 high nibbles as ~byte.
     */
    private final int[] group;

    /** Per block: the position of its scale (in FP16 values) in the row's scales. */
    private final int[] scale;

    Repack(GgmlType type, int cols) {
      this.type = type;
      q8 = type == GgmlType.Q8_0;
      srcRow = (int) type.byteSize(cols);
      quantRow = (int) quantRowBytes(type, cols);
      scaleRow = (int) scaleRowBytes(type, cols);
      if (type == GgmlType.Q6_K) {
        group = new int[0];
        scale = new int[0];
        return;
      }
      group = new int[cols / 4];
      for (int k = 0; k < group.length; k++) {
        int col = 4 * k;
        if (q8) {
          group[k] = q8Byte(cols, col);
        } else {
          group[k] = q4High(cols, col) ? ~q4Byte(cols, col) : q4Byte(cols, col);
        }
      }
      scale = new int[cols / 32];
      for (int b = 0; b < scale.length; b++) {
        scale[b] = scalePosition(q8 ? Q8_CHUNK : Q4_CHUNK, cols, b);
      }
    }

    /**
     * Row {@code r} of {@code src} (GGUF blocks: FP16 d, then 32 int8 for Q8_0, or for Q4_0 16
     * bytes whose low nibble is element i and high nibble element i + 16; Q6_K's 210-byte
     * super-blocks) into row r of {@code quants} and {@code scales} (padding zeroed).
     */
    void row(byte[] src, int r, byte[] quants, byte[] scales) {
      int at = r * srcRow;
      int qAt = r * quantRow;
      int sAt = r * scaleRow;
      Arrays.fill(scales, sAt, sAt + scaleRow, (byte) 0);
      if (type == GgmlType.Q6_K) {
        // per 210-byte block: ql and qh (192 bytes) to the quants, scales[16] and d to the scales
        int blockBytes = (int) GgmlType.Q6_K.byteSize(Q6_K_BLOCK);
        int blocks = srcRow / blockBytes;
        for (int b = 0; b < blocks; b++) {
          int blk = at + blockBytes * b;
          System.arraycopy(src, blk, quants, qAt + Q6_K_QUANTS * b, Q6_K_QUANTS);
          System.arraycopy(src, blk + Q6_K_QUANTS, scales, sAt + 16 * b, 16);
          scales[sAt + 16 * blocks + 2 * b] = src[blk + Q6_K_QUANTS + 16];
          scales[sAt + 16 * blocks + 2 * b + 1] = src[blk + Q6_K_QUANTS + 17];
        }
        return;
      }
      int blockBytes = q8 ? 34 : 18;
      for (int b = 0; b < scale.length; b++) {
        int blk = at + blockBytes * b;
        scales[sAt + 2 * scale[b]] = src[blk];
        scales[sAt + 2 * scale[b] + 1] = src[blk + 1];
      }
      if (q8) {
        for (int k = 0; k < group.length; k++) {
          int v = (int) INT.get(src, at + 34 * (k >> 3) + 2 + 4 * (k & 7));
          INT.set(quants, qAt + group[k], v);
        }
        return;
      }
      Arrays.fill(quants, qAt, qAt + quantRow, (byte) 0);
      for (int k = 0; k < group.length; k++) {
        // elements 4(k & 7).. of block k >> 3: the low nibbles of its bytes 4(k & 3).. in the
        // block's first half, their high nibbles in its second
        int v = (int) INT.get(src, at + 18 * (k >> 3) + 2 + 4 * (k & 3));
        int nibbles = (k & 4) == 0 ? v & 0x0f0f0f0f : (v >>> 4) & 0x0f0f0f0f;
        int g = group[k];
        int dst = qAt + (g < 0 ? ~g : g);
        INT.set(quants, dst, (int) INT.get(quants, dst) | (g < 0 ? nibbles << 4 : nibbles));
      }
    }
  }

  /**
   * Byte, within its row's quants, of Q8_0 element {@code col}: in each whole 512-element chunk,
   * element 128j + 4l + e at byte 16l + 4j + e; past them, in element order.
   */
  static int q8Byte(int cols, int col) {
    int full = cols / Q8_CHUNK * Q8_CHUNK;
    if (col >= full) {
      return col;
    }
    int within = col % Q8_CHUNK;
    return col - within + 16 * ((within >> 2) & 31) + 4 * (within >> 7) + (within & 3);
  }

  /**
   * Byte, within its row's nibbles, of Q4_0 element {@code col}: in each whole 1024-element chunk,
   * element 256w + 128h + 4l + e at byte 16l + 4w + e (nibble h); past them (T elements), element t
   * at byte t (low nibble) and T/2 + t at byte t (high).
   */
  static int q4Byte(int cols, int col) {
    int full = cols / Q4_CHUNK * Q4_CHUNK;
    if (col < full) {
      int within = col % Q4_CHUNK;
      return (col - within) / 2 + 16 * ((within >> 2) & 31) + 4 * (within >> 8) + (within & 3);
    }
    int t = col - full;
    int half = (cols - full) / 2;
    return full / 2 + (t >= half ? t - half : t);
  }

  /** Whether Q4_0 element {@code col} is a high nibble (see {@link #q4Byte}). */
  static boolean q4High(int cols, int col) {
    int full = cols / Q4_CHUNK * Q4_CHUNK;
    if (col < full) {
      return ((col % Q4_CHUNK) >> 7 & 1) == 1;
    }
    return col - full >= (cols - full) / 2;
  }

  /**
   * Position of block {@code b}'s scale within its row's scales: in each whole chunk of {@code
   * chunk / 32} blocks, block 4j + g at (chunk / 128)·g + j; past them, in block order.
   */
  static int scalePosition(int chunk, int cols, int b) {
    int per = chunk / 32;
    int full = cols / chunk * per;
    if (b >= full) {
      return b;
    }
    int within = b % per;
    return b - within + (per / 4) * (within & 3) + (within >> 2);
  }
}
