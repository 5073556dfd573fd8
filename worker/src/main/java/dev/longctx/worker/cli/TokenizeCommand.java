package dev.longctx.worker.cli;

import dev.longctx.engine.model.LoadedModel;
import dev.longctx.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Prints the token ids of a text. */
@Command(
    name = "tokenize",
    mixinStandardHelpOptions = true,
    description = "Print the token ids of TEXT (with BOS when the vocabulary expects one).")
public class TokenizeCommand implements Callable<Integer> {

  @Mixin ModelOptions modelOptions;

  @Parameters(index = "0", paramLabel = "TEXT", description = "Text to tokenize.")
  String text;

  @Option(names = "--no-bos", description = "Do not prepend BOS.")
  boolean noBos;

  @Option(names = "--special", description = "Parse special-token strings such as <|im_start|>.")
  boolean special;

  @Option(names = "--json", description = "Print one JSON object: ids and pieces.")
  boolean json;

  @Override
  public Integer call() {
    try (LoadedModel model = modelOptions.load()) {
      Tokenizer tok = model.tokenizer();
      int[] ids = Prompts.encode(tok, text, !noBos, special);
      if (json) {
        List<String> pieces = new ArrayList<>();
        for (int id : ids) {
          pieces.add(tok.tokenText(id));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("ids", ids);
        out.put("pieces", pieces);
        System.out.println(JsonText.write(out));
      } else {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < ids.length; i++) {
          sb.append(i == 0 ? "" : ", ").append(ids[i]);
        }
        System.out.println(sb.append(']'));
      }
      return 0;
    }
  }
}
