package dev.longctx.engine.tokenizer;

import dev.longctx.engine.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads llama2.c's {@code tokenizer.bin} format: little-endian {@code int32 max_token_length}, then
 * per token {@code float32 score, int32 length, length bytes of UTF-8}. The file does not store the
 * vocabulary size (the model header does); without it, tokens are read to the end of the file.
 *
 * <p>Conventions of llama2.c's exporter: id 0 is UNK, 1 BOS, 2 EOS, pieces {@code <0x00>}..{@code
 * <0xFF>} are byte-fallback tokens, "▁" is already turned into " ", and every non-empty text gets a
 * dummy-prefix space.
 */
final class Llama2cTokenizerLoader {

  private Llama2cTokenizerLoader() {}

  static Vocabulary load(Path file, int vocabSize) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (IOException e) {
      throw ModelFormatException.of(file, "cannot read llama2.c tokenizer: " + e.getMessage(), e);
    }
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    if (buf.remaining() < 4) {
      throw ModelFormatException.atOffset(
          file, 0, "truncated: " + bytes.length + " bytes, no max_token_length header");
    }
    int maxTokenLength = buf.getInt();
    if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
      throw ModelFormatException.atOffset(
          file, 0, "implausible max_token_length " + maxTokenLength + "; not a llama2.c tokenizer");
    }
    List<String> tokens = new ArrayList<>(vocabSize > 0 ? vocabSize : 1024);
    List<Float> scoreList = new ArrayList<>();
    var utf8 =
        StandardCharsets.UTF_8
            .newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
    while (vocabSize > 0 ? tokens.size() < vocabSize : buf.hasRemaining()) {
      int offset = buf.position();
      int i = tokens.size();
      if (buf.remaining() < 8) {
        throw ModelFormatException.atOffset(
            file,
            offset,
            "truncated in token "
                + i
                + (vocabSize > 0 ? " of " + vocabSize : "")
                + ": "
                + buf.remaining()
                + " bytes left, a token entry needs at least 8");
      }
      float score = buf.getFloat();
      int len = buf.getInt();
      if (len < 0 || len > maxTokenLength) {
        throw ModelFormatException.atOffset(
            file,
            offset + 4,
            "token " + i + " has length " + len + " outside 0.." + maxTokenLength);
      }
      if (buf.remaining() < len) {
        throw ModelFormatException.atOffset(
            file,
            offset + 8,
            "truncated in token " + i + ": needs " + len + " bytes, " + buf.remaining() + " left");
      }
      ByteBuffer piece = buf.slice(buf.position(), len);
      buf.position(buf.position() + len);
      try {
        tokens.add(utf8.decode(piece).toString());
      } catch (CharacterCodingException e) {
        throw ModelFormatException.atOffset(file, offset + 8, "token " + i + " is not UTF-8");
      }
      scoreList.add(score);
    }
    if (tokens.size() < 3) {
      throw ModelFormatException.of(
          file, "only " + tokens.size() + " tokens; llama2.c needs at least UNK, BOS and EOS");
    }
    float[] scores = new float[tokens.size()];
    int[] types = new int[tokens.size()];
    for (int i = 0; i < scores.length; i++) {
      scores[i] = scoreList.get(i);
      types[i] =
          i == 0
              ? TokenType.UNKNOWN.code()
              : i <= 2
                  ? TokenType.CONTROL.code()
                  : SentencePieceTokenizer.byteOfPiece(tokens.get(i)) >= 0
                      ? TokenType.BYTE.code()
                      : TokenType.NORMAL.code();
    }
    return new Vocabulary(
        Vocabulary.Model.SENTENCEPIECE,
        tokens,
        scores,
        types,
        null,
        1,
        2,
        0,
        null,
        true,
        true,
        false,
        "default",
        false);
  }
}
