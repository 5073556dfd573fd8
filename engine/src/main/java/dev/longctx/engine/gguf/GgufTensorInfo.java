package dev.longctx.engine.gguf;

import dev.longctx.engine.tensor.GgmlType;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor info of a GGUF file.
 *
 * @param name the tensor name, verbatim ({@code blk.0.attn_q.weight})
 * @param dims ggml's {@code ne}: {@code dims[0]} is the innermost, contiguous dimension, so a
 *     weight matrix of {@code rows × cols} is stored as {@code [cols, rows]}
 * @param type the on-disk element type
 * @param offset byte offset of the data relative to the start of the file's data section
 * @param byteSize bytes of data, {@code type.byteSize(elementCount())}
 */
public record GgufTensorInfo(String name, long[] dims, GgmlType type, long offset, long byteSize) {

  public GgufTensorInfo {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(type, "type");
    dims = dims.clone();
  }

  /** A copy of the dims. */
  @Override
  public long[] dims() {
    return dims.clone();
  }

  /** Number of dimensions. */
  public int rank() {
    return dims.length;
  }

  /** {@code dims[i]}. */
  public long dim(int i) {
    return dims[i];
  }

  /** Product of the dims. */
  public long elementCount() {
    long n = 1;
    for (long d : dims) {
      n *= d;
    }
    return n;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof GgufTensorInfo t
        && name.equals(t.name)
        && Arrays.equals(dims, t.dims)
        && type == t.type
        && offset == t.offset
        && byteSize == t.byteSize;
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, Arrays.hashCode(dims), type, offset, byteSize);
  }

  @Override
  public String toString() {
    return name
        + " "
        + type
        + " "
        + Arrays.toString(dims)
        + " @"
        + offset
        + " ("
        + byteSize
        + " B)";
  }
}
