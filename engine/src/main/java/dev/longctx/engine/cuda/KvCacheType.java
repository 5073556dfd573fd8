package dev.longctx.engine.cuda;

import java.util.Locale;

/**
 * The element type of a GPU KV cache. {@link #F32} keeps keys and values as the model computes them
 * (results equal the CPU backend's); {@link #F16} rounds them to IEEE half on store, halving the
 * cache's bytes per token and the bytes every attention kernel reads (the tensor-core prefill
 * kernel then copies its FP16 tiles without converting), at a relative rounding error of 2⁻¹¹ per
 * element — what vLLM's and llama.cpp's default half-precision caches do.
 */
public enum KvCacheType {
  F32(Float.BYTES, ""),
  F16(2, "_f16");

  private final int bytes;
  private final String kernelSuffix;

  KvCacheType(int bytes, String kernelSuffix) {
    this.bytes = bytes;
    this.kernelSuffix = kernelSuffix;
  }

  /** Bytes of one element. */
  public int bytes() {
    return bytes;
  }

  /** The suffix of the kernels instantiated for this element type ("" or "_f16"). */
  String kernelSuffix() {
    return kernelSuffix;
  }

  /** "f32" or "f16", as the command line and engine.properties spell it. */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Parses "f32" or "f16" (any case); fails naming the accepted values. */
  public static KvCacheType parse(String value) {
    for (KvCacheType t : values()) {
      if (t.label().equalsIgnoreCase(value.strip())) {
        return t;
      }
    }
    throw new IllegalArgumentException("KV cache type must be f32 or f16, got '" + value + "'");
  }
}
