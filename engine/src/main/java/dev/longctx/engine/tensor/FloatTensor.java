package dev.longctx.engine.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix in its on-disk type over a {@link MemorySegment} (usually an mmap'd slice of the
 * model file, at any alignment): {@code rows} rows of {@code cols} elements, row-major, as GGUF
 * stores a tensor with dims {@code [cols, rows]}. A 1-D vector is one row.
 *
 * <p>One subclass per {@link GgmlType} states its block layout and supplies the per-type traits the
 * kernels need: {@link #getFloat}, a vectorized {@link #dequantize} of a span of a row (used by the
 * GEMM and for lookups) and a vectorized {@link #dot} (used by the decode matrix-vector product).
 * {@link #matmul} is shared: {@link Gemm}.
 */
public abstract class FloatTensor {

  protected final MemorySegment data;
  protected final int rows;
  protected final int cols;

  protected FloatTensor(MemorySegment data, int rows, int cols) {
    this.data = data;
    this.rows = rows;
    this.cols = cols;
  }

  /**
   * Wraps {@code data} as a tensor of {@code type}. Fails with an {@link IllegalArgumentException}
   * naming the type when the engine cannot compute with it, or when the segment's size does not
   * match the shape (block types need {@code cols} to be a multiple of the block size).
   */
  public static FloatTensor of(GgmlType type, MemorySegment data, int rows, int cols) {
    if (rows < 0 || cols < 0) {
      throw new IllegalArgumentException("negative shape " + rows + "x" + cols);
    }
    if (cols % type.blockSize() != 0) {
      throw new IllegalArgumentException(
          type + " rows need a multiple of " + type.blockSize() + " columns, got " + cols);
    }
    long expected = type.byteSize((long) rows * cols);
    if (data.byteSize() != expected) {
      throw new IllegalArgumentException(
          type
              + " tensor of "
              + rows
              + "x"
              + cols
              + " needs "
              + expected
              + " bytes, got "
              + data.byteSize());
    }
    return switch (type) {
      case F32 -> new F32Tensor(data, rows, cols);
      case F16 -> new F16Tensor(data, rows, cols);
      case BF16 -> new BF16Tensor(data, rows, cols);
      case Q8_0 -> new Q8_0Tensor(data, rows, cols);
      case Q4_0 -> new Q4_0Tensor(data, rows, cols);
      case Q4_K -> new Q4_KTensor(data, rows, cols);
      case Q6_K -> new Q6_KTensor(data, rows, cols);
      default -> throw new IllegalArgumentException("unsupported tensor type " + type);
    };
  }

  /** Wraps a heap float array (row-major rows × cols) as an F32 tensor. */
  public static FloatTensor ofFloats(float[] values, int rows, int cols) {
    return of(GgmlType.F32, MemorySegment.ofArray(values), rows, cols);
  }

  public abstract GgmlType type();

  public final int rows() {
    return rows;
  }

  public final int cols() {
    return cols;
  }

  public final MemorySegment data() {
    return data;
  }

  /** Bytes of one row in the file. */
  public final long rowBytes() {
    return (long) cols / type().blockSize() * type().bytesPerBlock();
  }

  /** Element {@code index = row * cols + col}, dequantized. Slow path, for tests and lookups. */
  public abstract float getFloat(long index);

  /** Writes row {@code row}, dequantized, to {@code out[outOffset .. outOffset + cols)}. */
  public void dequantizeRow(int row, float[] out, int outOffset) {
    dequantize(row, 0, cols, out, outOffset);
  }

  /**
   * Writes elements {@code [col, col + n)} of row {@code row}, dequantized, to {@code out[outOffset
   * ..)}; {@code col} and {@code n} are multiples of the type's block size (for block types) and
   * the span lies within the row.
   */
  public abstract void dequantize(int row, int col, int n, float[] out, int outOffset);

  /** {@code Σ_c W[row][c] · x[xOffset + c]}. */
  public abstract float dot(int row, float[] x, int xOffset);

  /**
   * {@code y[yOffset + i] = dot(row + i, x, xOffset)} for {@code i < n}, bit-identical to {@link
   * #dot}. Types override it to stream several rows at once (more memory-level parallelism, shared
   * activation loads); the decode matrix-vector product calls it per chunk of rows.
   */
  public void dotRows(int row, int n, float[] x, int xOffset, float[] y, int yOffset) {
    for (int i = 0; i < n; i++) {
      y[yOffset + i] = dot(row + i, x, xOffset);
    }
  }

  /**
   * {@code y[t * rows + r] = Σ_c W[r][c] · x[t * cols + c]} for every token {@code t < tokens} and
   * row {@code r < rows}; multithreaded through {@link Parallel}. With {@code tokens == 1} this is
   * the decode matrix-vector product (each row streamed once); with more it is the prefill GEMM,
   * tiled so that each weight tile is read once per block of tokens ({@link Gemm}).
   */
  public void matmul(float[] x, float[] y, int tokens) {
    if (tokens < 0 || x.length < (long) tokens * cols || y.length < (long) tokens * rows) {
      throw new IllegalArgumentException(
          "matmul of "
              + rows
              + "x"
              + cols
              + " with "
              + tokens
              + " tokens: x has "
              + x.length
              + ", y has "
              + y.length);
    }
    if (tokens == 1) {
      Gemm.matvec(this, x, y);
    } else if (tokens > 1) {
      Gemm.gemm(this, x, y, tokens);
    }
  }

  @Override
  public String toString() {
    return type() + "[" + rows + "x" + cols + "]";
  }
}
