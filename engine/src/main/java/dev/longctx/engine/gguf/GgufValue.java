package dev.longctx.engine.gguf;

import java.lang.reflect.Array;
import java.util.Arrays;
import java.util.Objects;

/**
 * One GGUF metadata value with its on-disk type kept visible, so that a caller can tell a UINT32
 * from an INT32 and the writer can reproduce the file exactly.
 *
 * <p>Java representation of {@link #value()} by {@link #type()}:
 *
 * <ul>
 *   <li>UINT8, INT8, UINT16, INT16, INT32: {@link Integer} (unsigned values widened, never
 *       negative);
 *   <li>UINT32: {@link Long} (0 to 2<sup>32</sup>-1);
 *   <li>INT64: {@link Long}; UINT64: {@link Long} holding the raw 64 bits, so values of
 *       2<sup>63</sup> and more read as negative ({@link Long#toUnsignedString(long)} prints them);
 *   <li>FLOAT32: {@link Float}; FLOAT64: {@link Double}; BOOL: {@link Boolean}; STRING: {@link
 *       String};
 *   <li>ARRAY: a Java array chosen by {@link #elementType()}, holding the raw bits: UINT8/INT8 →
 *       {@code byte[]}, UINT16/INT16 → {@code short[]}, UINT32/INT32 → {@code int[]}, UINT64/INT64
 *       → {@code long[]}, FLOAT32 → {@code float[]}, FLOAT64 → {@code double[]}, BOOL → {@code
 *       boolean[]}, STRING → {@code String[]}, ARRAY → {@code GgufValue[]} (each element itself an
 *       ARRAY value).
 * </ul>
 *
 * <p>Arrays are shared, not copied, by {@link #value()} (a 150k-token vocabulary is read once);
 * callers must not modify them. The {@code as...Array()} accessors return copies converted to the
 * asked type. The {@code as...} accessors throw {@link IllegalStateException} with a one-line
 * reason ("expected an int, found UINT64 18446744073709551615") when the value cannot be
 * represented; {@link GgufFile} turns that into a {@link dev.longctx.engine.ModelFormatException}
 * naming the key.
 *
 * @param type the value's type
 * @param elementType for an ARRAY, the type of its elements; null otherwise
 * @param value the value, represented as listed above
 */
public record GgufValue(GgufValueType type, GgufValueType elementType, Object value) {

  public GgufValue {
    Objects.requireNonNull(type, "type");
    Objects.requireNonNull(value, "value");
    if ((type == GgufValueType.ARRAY) != (elementType != null)) {
      throw new IllegalArgumentException("elementType is required for ARRAY and only for ARRAY");
    }
    Class<?> expected = javaType(type, elementType);
    if (!expected.isInstance(value)) {
      throw new IllegalArgumentException(
          describeType(type, elementType)
              + " needs a "
              + expected.getSimpleName()
              + ", got "
              + value.getClass().getSimpleName());
    }
    if (value instanceof GgufValue[] nested) {
      for (GgufValue v : nested) {
        if (v == null || v.type != GgufValueType.ARRAY) {
          throw new IllegalArgumentException("an ARRAY of ARRAY holds only ARRAY values");
        }
      }
    } else if (value instanceof String[] strings) {
      for (String s : strings) {
        Objects.requireNonNull(s, "array of STRING holds a null");
      }
    }
  }

  private static Class<?> javaType(GgufValueType type, GgufValueType elementType) {
    return switch (type) {
      case UINT8, INT8, UINT16, INT16, INT32 -> Integer.class;
      case UINT32, UINT64, INT64 -> Long.class;
      case FLOAT32 -> Float.class;
      case FLOAT64 -> Double.class;
      case BOOL -> Boolean.class;
      case STRING -> String.class;
      case ARRAY ->
          switch (elementType) {
            case UINT8, INT8 -> byte[].class;
            case UINT16, INT16 -> short[].class;
            case UINT32, INT32 -> int[].class;
            case UINT64, INT64 -> long[].class;
            case FLOAT32 -> float[].class;
            case FLOAT64 -> double[].class;
            case BOOL -> boolean[].class;
            case STRING -> String[].class;
            case ARRAY -> GgufValue[].class;
          };
    };
  }

  // ---- factories (range-checked; arrays are copied) ----

  public static GgufValue uint8(int v) {
    return new GgufValue(GgufValueType.UINT8, null, checkRange(v, 0, 0xFF, "UINT8"));
  }

  public static GgufValue int8(int v) {
    return new GgufValue(
        GgufValueType.INT8, null, checkRange(v, Byte.MIN_VALUE, Byte.MAX_VALUE, "INT8"));
  }

  public static GgufValue uint16(int v) {
    return new GgufValue(GgufValueType.UINT16, null, checkRange(v, 0, 0xFFFF, "UINT16"));
  }

  public static GgufValue int16(int v) {
    return new GgufValue(
        GgufValueType.INT16, null, checkRange(v, Short.MIN_VALUE, Short.MAX_VALUE, "INT16"));
  }

  public static GgufValue uint32(long v) {
    return new GgufValue(GgufValueType.UINT32, null, checkRange(v, 0, 0xFFFF_FFFFL, "UINT32"));
  }

  public static GgufValue int32(int v) {
    return new GgufValue(GgufValueType.INT32, null, v);
  }

  /** A UINT64 from its raw 64 bits (pass {@code -1L} for 2<sup>64</sup>-1). */
  public static GgufValue uint64(long bits) {
    return new GgufValue(GgufValueType.UINT64, null, bits);
  }

  public static GgufValue int64(long v) {
    return new GgufValue(GgufValueType.INT64, null, v);
  }

  public static GgufValue float32(float v) {
    return new GgufValue(GgufValueType.FLOAT32, null, v);
  }

  public static GgufValue float64(double v) {
    return new GgufValue(GgufValueType.FLOAT64, null, v);
  }

  public static GgufValue bool(boolean v) {
    return new GgufValue(GgufValueType.BOOL, null, v);
  }

  public static GgufValue string(String v) {
    return new GgufValue(GgufValueType.STRING, null, v);
  }

  /** An ARRAY of UINT8; each byte is read as unsigned. */
  public static GgufValue uint8Array(byte[] v) {
    return array(GgufValueType.UINT8, v.clone());
  }

  public static GgufValue int8Array(byte[] v) {
    return array(GgufValueType.INT8, v.clone());
  }

  /** An ARRAY of UINT16; each short is read as unsigned. */
  public static GgufValue uint16Array(short[] v) {
    return array(GgufValueType.UINT16, v.clone());
  }

  public static GgufValue int16Array(short[] v) {
    return array(GgufValueType.INT16, v.clone());
  }

  /** An ARRAY of UINT32; each int is read as unsigned. */
  public static GgufValue uint32Array(int[] v) {
    return array(GgufValueType.UINT32, v.clone());
  }

  public static GgufValue int32Array(int[] v) {
    return array(GgufValueType.INT32, v.clone());
  }

  /** An ARRAY of UINT64; each long is read as unsigned. */
  public static GgufValue uint64Array(long[] v) {
    return array(GgufValueType.UINT64, v.clone());
  }

  public static GgufValue int64Array(long[] v) {
    return array(GgufValueType.INT64, v.clone());
  }

  public static GgufValue float32Array(float[] v) {
    return array(GgufValueType.FLOAT32, v.clone());
  }

  public static GgufValue float64Array(double[] v) {
    return array(GgufValueType.FLOAT64, v.clone());
  }

  public static GgufValue boolArray(boolean[] v) {
    return array(GgufValueType.BOOL, v.clone());
  }

  public static GgufValue stringArray(String... v) {
    return array(GgufValueType.STRING, v.clone());
  }

  /** An ARRAY whose elements are themselves ARRAY values (each with its own element type). */
  public static GgufValue arrayOfArrays(GgufValue... v) {
    return array(GgufValueType.ARRAY, v.clone());
  }

  /** An ARRAY of {@code elementType} over {@code javaArray}, taken as is (not copied). */
  static GgufValue array(GgufValueType elementType, Object javaArray) {
    return new GgufValue(GgufValueType.ARRAY, elementType, javaArray);
  }

  private static int checkRange(int v, int min, int max, String type) {
    if (v < min || v > max) {
      throw new IllegalArgumentException(v + " is out of range for " + type);
    }
    return v;
  }

  private static long checkRange(long v, long min, long max, String type) {
    if (v < min || v > max) {
      throw new IllegalArgumentException(v + " is out of range for " + type);
    }
    return v;
  }

  // ---- typed accessors ----

  /** Whether this is an ARRAY. */
  public boolean isArray() {
    return type == GgufValueType.ARRAY;
  }

  /** Number of elements of an ARRAY. */
  public int arrayLength() {
    requireArray("an array");
    return Array.getLength(value);
  }

  /** Any integer type whose value fits an int. */
  public int asInt() {
    long v = integerValue("an int");
    if (v != (int) v) {
      throw mismatch("an int");
    }
    return (int) v;
  }

  /** Any integer type whose value fits a signed long (UINT64 below 2<sup>63</sup>). */
  public long asLong() {
    return integerValue("a long");
  }

  /** FLOAT32, or FLOAT64 narrowed to float. */
  public float asFloat() {
    return switch (value) {
      case Float f -> f;
      case Double d -> d.floatValue();
      default -> throw mismatch("a float");
    };
  }

  /** FLOAT64 or FLOAT32. */
  public double asDouble() {
    return switch (value) {
      case Float f -> f;
      case Double d -> d;
      default -> throw mismatch("a double");
    };
  }

  public boolean asBoolean() {
    if (value instanceof Boolean b) {
      return b;
    }
    throw mismatch("a BOOL");
  }

  public String asString() {
    if (value instanceof String s) {
      return s;
    }
    throw mismatch("a STRING");
  }

  /** A copy of an ARRAY of STRING. */
  public String[] asStringArray() {
    if (value instanceof String[] s) {
      return s.clone();
    }
    throw mismatch("an array of STRING");
  }

  /** An ARRAY of any integer type, every element fitting an int (unsigned types widened). */
  public int[] asIntArray() {
    requireIntegerArray("an array of int");
    int n = Array.getLength(value);
    int[] out = new int[n];
    for (int i = 0; i < n; i++) {
      long v = integerElement(i);
      if (v != (int) v) {
        throw new IllegalStateException(
            "expected an array of int, found "
                + describeType(type, elementType)
                + " with element "
                + i
                + " = "
                + unsignedAware(v));
      }
      out[i] = (int) v;
    }
    return out;
  }

  /** An ARRAY of any integer type, every element fitting a signed long. */
  public long[] asLongArray() {
    requireIntegerArray("an array of long");
    int n = Array.getLength(value);
    long[] out = new long[n];
    for (int i = 0; i < n; i++) {
      long v = integerElement(i);
      if (elementType == GgufValueType.UINT64 && v < 0) {
        throw new IllegalStateException(
            "expected an array of long, found ARRAY[UINT64] with element "
                + i
                + " = "
                + Long.toUnsignedString(v));
      }
      out[i] = v;
    }
    return out;
  }

  /** A copy of an ARRAY of FLOAT32, or of FLOAT64 narrowed to float. */
  public float[] asFloatArray() {
    return switch (value) {
      case float[] f -> f.clone();
      case double[] d -> {
        float[] out = new float[d.length];
        for (int i = 0; i < d.length; i++) {
          out[i] = (float) d[i];
        }
        yield out;
      }
      default -> throw mismatch("an array of FLOAT32");
    };
  }

  /** The elements of an ARRAY of ARRAY. */
  public GgufValue[] asArrayOfArrays() {
    if (value instanceof GgufValue[] v) {
      return v.clone();
    }
    throw mismatch("an array of ARRAY");
  }

  private long integerValue(String expected) {
    if (!type.isInteger()) {
      throw mismatch(expected);
    }
    long v =
        switch (value) {
          case Integer i -> i;
          case Long l -> l;
          default -> throw new AssertionError(value);
        };
    if (type == GgufValueType.UINT64 && v < 0) {
      throw mismatch(expected);
    }
    return v;
  }

  private long integerElement(int i) {
    return switch (value) {
      case byte[] b -> elementType == GgufValueType.UINT8 ? b[i] & 0xFF : b[i];
      case short[] s -> elementType == GgufValueType.UINT16 ? s[i] & 0xFFFF : s[i];
      case int[] a -> elementType == GgufValueType.UINT32 ? a[i] & 0xFFFF_FFFFL : a[i];
      case long[] l -> l[i];
      default -> throw new AssertionError(value);
    };
  }

  private void requireArray(String expected) {
    if (type != GgufValueType.ARRAY) {
      throw mismatch(expected);
    }
  }

  private void requireIntegerArray(String expected) {
    if (type != GgufValueType.ARRAY || !elementType.isInteger()) {
      throw mismatch(expected);
    }
  }

  private String unsignedAware(long v) {
    return elementType == GgufValueType.UINT64 || type == GgufValueType.UINT64
        ? Long.toUnsignedString(v)
        : Long.toString(v);
  }

  private IllegalStateException mismatch(String expected) {
    return new IllegalStateException("expected " + expected + ", found " + describe());
  }

  /** Short description for messages: "UINT32 4096", "STRING", "ARRAY[STRING] of 32000". */
  public String describe() {
    return switch (type) {
      case ARRAY -> describeType(type, elementType) + " of " + Array.getLength(value);
      case STRING -> "STRING";
      case UINT64 -> "UINT64 " + Long.toUnsignedString((Long) value);
      default -> type + " " + value;
    };
  }

  private static String describeType(GgufValueType type, GgufValueType elementType) {
    return type == GgufValueType.ARRAY ? "ARRAY[" + elementType + "]" : type.toString();
  }

  // Records compare arrays by identity; values compare by content so round trips can be asserted.
  @Override
  public boolean equals(Object o) {
    return o instanceof GgufValue other
        && type == other.type
        && elementType == other.elementType
        && Arrays.deepEquals(new Object[] {value}, new Object[] {other.value});
  }

  @Override
  public int hashCode() {
    return Objects.hash(type, elementType, Arrays.deepHashCode(new Object[] {value}));
  }

  @Override
  public String toString() {
    if (type != GgufValueType.ARRAY) {
      return type == GgufValueType.STRING ? "STRING \"" + value + "\"" : describe();
    }
    int n = Array.getLength(value);
    StringBuilder sb = new StringBuilder(describe()).append(" [");
    for (int i = 0; i < Math.min(n, 8); i++) {
      sb.append(i == 0 ? "" : ", ").append(Array.get(value, i));
    }
    return sb.append(n > 8 ? ", ...]" : "]").toString();
  }
}
