package dev.longctx.worker.cli;

import dev.longctx.engine.tokenizer.Tokenizer;

/** Prompt text to token ids, the way every command does it. */
final class Prompts {

  private Prompts() {}

  static int[] encode(Tokenizer tok, String text, boolean bos, boolean special) {
    int[] body = special ? tok.encodeWithSpecialTokens(text) : tok.encode(text);
    if (!bos || tok.bosId() < 0 || !tok.addBos()) {
      return body;
    }
    int[] ids = new int[body.length + 1];
    ids[0] = tok.bosId();
    System.arraycopy(body, 0, ids, 1, body.length);
    return ids;
  }
}
