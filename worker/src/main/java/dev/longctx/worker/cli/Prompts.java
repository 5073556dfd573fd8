package dev.longctx.worker.cli;

import dev.longctx.engine.tokenizer.Tokenizer;

/** Prompt text to token ids, the way every command does it. */
final class Prompts {

  private Prompts() {}

  static int[] encode(Tokenizer tok, String text, boolean bos, boolean special) {
    int[] body = special ? tok.encodeWithSpecialTokens(text) : tok.encode(text);
    return bos ? tok.withBos(body) : body;
  }
}
