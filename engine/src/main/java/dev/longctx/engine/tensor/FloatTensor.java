package dev.longctx.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A weight matrix in its on-disk type over a {@link MemorySegment} (usually an mmap'd slice of the
 * model file): {@code rows} rows of {@code cols} elements, row-major, as GGUF stores a tensor with
 * dims {@code [cols, rows]}. A 1-D vector is one row.
 *
 * <p>Subclasses (one per {@link GgmlType}) state their block layout and override the hot paths
 * ({@link #dot}, {@link #matmul}) with Vector API code.
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
   * match the shape.
   */
  public static FloatTensor of(GgmlType type, MemorySegment data, int rows, int cols) {
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

  /** Element {@code index = row * cols + col}, dequantized. Slow path, for tests and lookups. */
  public abstract float getFloat(long index);

  /** Writes row {@code row}, dequantized, to {@code out[outOffset .. outOffset + cols)}. */
  public void dequantizeRow(int row, float[] out, int outOffset) {
    long base = (long) row * cols;
    for (int c = 0; c < cols; c++) {
      out[outOffset + c] = getFloat(base + c);
    }
  }

  /** {@code Σ_c W[row][c] · x[xOffset + c]}. */
  public abstract float dot(int row, float[] x, int xOffset);

  /**
   * {@code y[t * rows + r] = Σ_c W[r][c] · x[t * cols + c]} for every token {@code t < tokens} and
   * row {@code r < rows}; multithreaded through {@link Parallel}. With {@code tokens == 1} this is
   * the decode matrix-vector product; with more it is the prefill GEMM.
   */
  public void matmul(float[] x, float[] y, int tokens) {
    Parallel.forRange(
        rows,
        (r0, r1) -> {
          for (int t = 0; t < tokens; t++) {
            for (int r = r0; r < r1; r++) {
              y[t * rows + r] = dot(r, x, t * cols);
            }
          }
        });
  }

  /** Plain little-endian float32 elements. */
  static final class F32Tensor extends FloatTensor {
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    F32Tensor(MemorySegment data, int rows, int cols) {
      super(data, rows, cols);
    }

    @Override
    public GgmlType type() {
      return GgmlType.F32;
    }

    @Override
    public float getFloat(long index) {
      return data.getAtIndex(LE_FLOAT, index);
    }

    @Override
    public float dot(int row, float[] x, int xOffset) {
      long base = (long) row * cols;
      float sum = 0f;
      for (int c = 0; c < cols; c++) {
        sum += data.getAtIndex(LE_FLOAT, base + c) * x[xOffset + c];
      }
      return sum;
    }
  }
}
