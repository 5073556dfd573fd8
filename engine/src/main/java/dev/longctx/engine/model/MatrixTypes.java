package dev.longctx.engine.model;

import dev.longctx.engine.tensor.GgmlType;
import dev.longctx.engine.tensor.Quantizer;
import java.util.Locale;
import java.util.Objects;

/**
 * The types {@link GgufModelWriter} gives a model's matrices: one type for all of them, or a mix by
 * tensor name. {@link #Q4_K_M} is llama.cpp's Q4_K_M in its plain form: Q6_K for the matrices
 * quantization hurts most (the vocabulary projection, every {@code attn_v} and every {@code
 * ffn_down}), Q4_K for the rest. (llama.cpp gives Q6_K to only some layers' {@code attn_v} and
 * {@code ffn_down}: the first and last eighth and every third between; here all of them.) 1-D
 * tensors stay F32 whatever the choice. A matrix whose rows do not fit the chosen type's block
 * falls back ({@link GgufModelWriter#typeFor}).
 *
 * @param name what {@code --type} calls it ({@code Q8_0}, {@code Q4_K_M})
 * @param base the type of every matrix not named below
 * @param sensitive the type of the vocabulary projection ({@code output.weight}, or {@code
 *     token_embd.weight} when the embedding is tied and serves as the projection, as llama.cpp
 *     treats it), {@code blk.N.attn_v.weight} and {@code blk.N.ffn_down.weight}
 */
public record MatrixTypes(String name, GgmlType base, GgmlType sensitive) {

  /** Q6_K for the projection, attn_v and ffn_down; Q4_K for the other matrices. */
  public static final MatrixTypes Q4_K_M = new MatrixTypes("Q4_K_M", GgmlType.Q4_K, GgmlType.Q6_K);

  public MatrixTypes {
    Objects.requireNonNull(name, "name");
    for (GgmlType t : new GgmlType[] {base, sensitive}) {
      if (!Quantizer.canQuantize(t)) {
        throw new IllegalArgumentException("no quantizer for " + t);
      }
    }
  }

  /** Every matrix in {@code type}. */
  public static MatrixTypes of(GgmlType type) {
    return new MatrixTypes(type.toString(), type, type);
  }

  /** The names {@link #parse} accepts, for messages. */
  public static final String NAMES = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K or Q4_K_M";

  /** A single type by its ggml name ({@code q8_0}, any case) or {@code Q4_K_M}. */
  public static MatrixTypes parse(String name) {
    String upper = name.toUpperCase(Locale.ROOT);
    if (upper.equals(Q4_K_M.name())) {
      return Q4_K_M;
    }
    GgmlType t;
    try {
      t = GgmlType.valueOf(upper);
    } catch (IllegalArgumentException e) {
      t = null;
    }
    if (t == null || !Quantizer.canQuantize(t)) {
      throw new IllegalArgumentException(
          "--type " + name + " is not one the writer produces (" + NAMES + ")");
    }
    return of(t);
  }

  /**
   * The type meant for matrix {@code tensor} (a GGUF name such as {@code blk.3.ffn_down.weight}),
   * before any fallback; {@code projection}: it is the vocabulary projection.
   */
  public GgmlType target(String tensor, boolean projection) {
    boolean isSensitive =
        projection
            || tensor.equals("output.weight")
            || (tensor.startsWith("blk.")
                && (tensor.endsWith(".attn_v.weight") || tensor.endsWith(".ffn_down.weight")));
    return isSensitive ? sensitive : base;
  }

  @Override
  public String toString() {
    return name;
  }
}
