package dev.longctx.worker.shard;

import com.google.protobuf.ByteString;
import dev.longctx.proto.shard.v1.DType;
import dev.longctx.proto.shard.v1.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** float[] ↔ {@link Tensor} (little-endian F32). */
public final class Tensors {

  private Tensors() {}

  public static Tensor f32Slice(float[] data, int offset, int length, long... shape) {
    long n = 1;
    for (long s : shape) {
      n *= s;
    }
    if (n != length) {
      throw new IllegalArgumentException("shape holds " + n + " elements, data " + length);
    }
    ByteBuffer b = ByteBuffer.allocate(length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(data, offset, length);
    Tensor.Builder t =
        Tensor.newBuilder().setDtype(DType.DTYPE_F32).setData(ByteString.copyFrom(b));
    for (long s : shape) {
      t.addShape(s);
    }
    return t.build();
  }

  public static Tensor f32(float[] data, long... shape) {
    return f32Slice(data, 0, data.length, shape);
  }

  /** The elements of an F32 tensor; {@code expected} elements, or any count when negative. */
  public static float[] floats(Tensor t, long expected) {
    if (t.getDtype() != DType.DTYPE_F32) {
      throw new IllegalArgumentException("expected an F32 tensor, got " + t.getDtype());
    }
    long n = 1;
    for (long s : t.getShapeList()) {
      n *= s;
    }
    if (t.getData().size() != n * Float.BYTES) {
      throw new IllegalArgumentException(
          "tensor data has "
              + t.getData().size()
              + " bytes, shape "
              + t.getShapeList()
              + " needs "
              + n * Float.BYTES);
    }
    if (expected >= 0 && n != expected) {
      throw new IllegalArgumentException(
          "expected " + expected + " elements, got shape " + t.getShapeList());
    }
    float[] out = new float[(int) n];
    t.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
    return out;
  }
}
