package dev.longctx.engine.tokenizer;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.gguf.GgufFile;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Reads a {@link Vocabulary} from GGUF {@code tokenizer.ggml.*} metadata. Defaults for absent keys
 * follow llama.cpp's loader: "llama" vocabularies add BOS and a space prefix; "gpt2" ones add BOS
 * only for the Llama-3 pre-tokenizer, which also skips merges for words already in the vocabulary.
 */
public final class GgufVocabulary {

  public static final String MODEL = "tokenizer.ggml.model";
  public static final String PRE = "tokenizer.ggml.pre";
  public static final String TOKENS = "tokenizer.ggml.tokens";
  public static final String SCORES = "tokenizer.ggml.scores";
  public static final String TOKEN_TYPE = "tokenizer.ggml.token_type";
  public static final String MERGES = "tokenizer.ggml.merges";
  public static final String BOS_ID = "tokenizer.ggml.bos_token_id";
  public static final String EOS_ID = "tokenizer.ggml.eos_token_id";
  public static final String UNK_ID = "tokenizer.ggml.unknown_token_id";
  public static final String EOT_ID = "tokenizer.ggml.eot_token_id";
  public static final String EOM_ID = "tokenizer.ggml.eom_token_id";
  public static final String ADD_BOS = "tokenizer.ggml.add_bos_token";
  public static final String ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix";
  public static final String CHAT_TEMPLATE = "tokenizer.chat_template";

  private GgufVocabulary() {}

  /**
   * The vocabulary of {@code gguf}.
   *
   * @throws ModelFormatException naming the key when one is missing, mistyped or inconsistent
   */
  public static Vocabulary read(GgufFile gguf) {
    String modelName = gguf.getString(MODEL);
    Vocabulary.Model model =
        switch (modelName) {
          case "llama" -> Vocabulary.Model.SENTENCEPIECE;
          case "gpt2" -> Vocabulary.Model.BYTE_LEVEL_BPE;
          default ->
              throw ModelFormatException.atKey(
                  gguf.path(),
                  MODEL,
                  "tokenizer model '" + modelName + "' is not supported (llama, gpt2)");
        };
    String[] tokens = gguf.getStringArray(TOKENS);
    int n = tokens.length;
    float[] scores = gguf.findFloatArray(SCORES).orElse(null);
    if (model == Vocabulary.Model.SENTENCEPIECE && scores == null) {
      throw ModelFormatException.atKey(gguf.path(), SCORES, "missing; SentencePiece needs scores");
    }
    checkLength(gguf, SCORES, scores == null ? n : scores.length, n);
    int[] types = gguf.findIntArray(TOKEN_TYPE).orElse(null);
    checkLength(gguf, TOKEN_TYPE, types == null ? n : types.length, n);
    List<String> merges =
        model == Vocabulary.Model.BYTE_LEVEL_BPE ? List.of(gguf.getStringArray(MERGES)) : null;
    String pre = gguf.getString(PRE, "default");
    boolean llama3 = List.of("llama3", "llama-v3", "llama-bpe").contains(pre);
    int bos = id(gguf, BOS_ID, n);
    int eos = id(gguf, EOS_ID, n);
    int unk = id(gguf, UNK_ID, n);
    if (unk < 0 && types != null && types[0] == TokenType.UNKNOWN.code()) {
      unk = 0; // llama.cpp's default for SentencePiece vocabularies, which put UNK first
    }
    int[] eot =
        IntStream.of(id(gguf, EOT_ID, n), id(gguf, EOM_ID, n)).filter(i -> i >= 0).toArray();
    boolean spm = model == Vocabulary.Model.SENTENCEPIECE;
    boolean addBos = gguf.getBoolean(ADD_BOS, spm || llama3);
    boolean addSpacePrefix = spm && gguf.getBoolean(ADD_SPACE_PREFIX, true);
    if (!spm) {
      try {
        PreTokenizers.forName(pre);
      } catch (IllegalArgumentException e) {
        throw ModelFormatException.atKey(gguf.path(), PRE, e.getMessage());
      }
    }
    try {
      return new Vocabulary(
          model,
          Arrays.asList(tokens),
          scores,
          types,
          merges,
          bos,
          eos,
          unk,
          eot,
          addBos,
          addSpacePrefix,
          spm,
          pre,
          !spm && llama3);
    } catch (IllegalArgumentException e) {
      throw ModelFormatException.of(gguf.path(), "bad tokenizer metadata: " + e.getMessage(), e);
    }
  }

  private static int id(GgufFile gguf, String key, int n) {
    int id = gguf.getInt(key, -1);
    if (id < -1 || id >= n) {
      throw ModelFormatException.atKey(
          gguf.path(), key, "token id " + id + " outside the vocabulary of " + n);
    }
    return id;
  }

  private static void checkLength(GgufFile gguf, String key, int length, int n) {
    if (length != n) {
      throw ModelFormatException.atKey(
          gguf.path(), key, length + " entries for " + n + " tokens in " + TOKENS);
    }
  }
}
