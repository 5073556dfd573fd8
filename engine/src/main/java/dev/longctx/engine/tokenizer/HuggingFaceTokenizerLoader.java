package dev.longctx.engine.tokenizer;

import dev.longctx.engine.ModelFormatException;
import dev.longctx.engine.json.Json;
import dev.longctx.engine.json.JsonParseException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Parses a Hugging Face tokenizer folder: {@code tokenizer.json} (required, model type BPE) and,
 * when present, {@code tokenizer_config.json}, {@code special_tokens_map.json} and {@code
 * generation_config.json} for BOS/EOS. Every stage type that could change ids and is not
 * implemented is rejected with the JSON key that names it, rather than silently encoding
 * differently from the reference library.
 *
 * <p>BOS: the post-processor's template decides (a {@code TemplateProcessing} whose single-sequence
 * template starts with a special token means the model expects that token first); without a
 * post-processor, {@code add_bos_token} of {@code tokenizer_config.json}.
 */
final class HuggingFaceTokenizerLoader {

  private static final Pattern BYTE_PIECE = Pattern.compile("<0x[0-9A-Fa-f]{2}>");

  private final Path file;
  private List<String> tokens;
  private Map<String, Integer> vocab;

  private HuggingFaceTokenizerLoader(Path file) {
    this.file = file;
  }

  static HuggingFaceTokenizer load(Path dirOrFile) {
    Path dir = Files.isDirectory(dirOrFile) ? dirOrFile : dirOrFile.getParent();
    Path file = Files.isDirectory(dirOrFile) ? dirOrFile.resolve("tokenizer.json") : dirOrFile;
    if (!Files.isRegularFile(file)) {
      throw ModelFormatException.of(file, "no tokenizer.json here");
    }
    return new HuggingFaceTokenizerLoader(file).build(dir);
  }

  /** Parses a JSON file, reporting syntax errors as the character offset in the file. */
  static Map<String, Object> readJsonObject(Path file) {
    Object root;
    try {
      root = Json.parse(file);
    } catch (JsonParseException e) {
      throw ModelFormatException.atOffset(
          file,
          e.offset(),
          "invalid JSON at line " + e.line() + ", column " + e.column() + ": " + e.reason());
    } catch (IOException e) {
      throw ModelFormatException.of(file, "cannot read: " + e.getMessage(), e);
    }
    if (!(root instanceof Map<?, ?>)) {
      throw ModelFormatException.atOffset(file, 0, "expected a JSON object at the top level");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> map = (Map<String, Object>) root;
    return map;
  }

  private HuggingFaceTokenizer build(Path dir) {
    Map<String, Object> root = readJsonObject(file);
    Map<String, Object> model = object(root.get("model"), "model");
    String type = (String) optional(model, "type", "model", String.class);
    if (type != null && !type.equals("BPE")) {
      throw ModelFormatException.atKey(
          file, "model.type", "model type '" + type + "' is not supported (only BPE)");
    }
    if (type == null && !model.containsKey("merges")) {
      throw ModelFormatException.atKey(file, "model.type", "missing, and no BPE merges present");
    }
    Object dropout = model.get("dropout");
    if (dropout instanceof Number d && d.doubleValue() != 0.0) {
      throw ModelFormatException.atKey(
          file, "model.dropout", "BPE dropout " + d + " is for training; inference needs none");
    }

    // Vocabulary: the model's vocab plus added tokens, by id.
    Map<String, Object> vocabJson = object(model.get("vocab"), "model.vocab");
    int size = 0;
    for (var e : vocabJson.entrySet()) {
      size = Math.max(size, id(e.getValue(), "model.vocab." + e.getKey()) + 1);
    }
    List<Object> added = list(root.getOrDefault("added_tokens", List.of()), "added_tokens");
    for (int i = 0; i < added.size(); i++) {
      Map<String, Object> t = object(added.get(i), "added_tokens[" + i + "]");
      size = Math.max(size, id(t.get("id"), "added_tokens[" + i + "].id") + 1);
    }
    String[] byId = new String[size];
    TokenType[] types = new TokenType[size];
    boolean byteFallback = bool(model, "byte_fallback", "model", false);
    vocab = new HashMap<>(size * 2);
    for (var e : vocabJson.entrySet()) {
      int id = id(e.getValue(), "model.vocab." + e.getKey());
      byId[id] = e.getKey();
      types[id] =
          byteFallback && BYTE_PIECE.matcher(e.getKey()).matches()
              ? TokenType.BYTE
              : TokenType.NORMAL;
      vocab.put(e.getKey(), id);
    }
    String unk = (String) optional(model, "unk_token", "model", String.class);
    int unkId = unk == null ? -1 : vocab.getOrDefault(unk, -1);
    if (unkId >= 0) {
      types[unkId] = TokenType.UNKNOWN;
    }
    for (int i = 0; i < added.size(); i++) {
      String key = "added_tokens[" + i + "]";
      Map<String, Object> t = object(added.get(i), key);
      int id = id(t.get("id"), key + ".id");
      String content = (String) required(t, "content", key, String.class);
      byId[id] = content;
      types[id] = bool(t, "special", key, false) ? TokenType.CONTROL : TokenType.USER_DEFINED;
      vocab.putIfAbsent(content, id);
    }
    for (int i = 0; i < size; i++) {
      if (byId[i] == null) {
        byId[i] = "";
        types[i] = TokenType.UNUSED;
      }
    }
    tokens = Arrays.asList(byId);

    MergeTable merges = merges(model);
    var bpe =
        new HuggingFaceTokenizer.BpeModel(
            merges,
            unkId,
            byteFallback,
            bool(model, "fuse_unk", "model", false),
            bool(model, "ignore_merges", "model", false),
            (String) optional(model, "continuing_subword_prefix", "model", String.class),
            (String) optional(model, "end_of_word_suffix", "model", String.class));

    UnaryOperator<String> normalizer = normalizer(root.get("normalizer"), "normalizer");
    HuggingFaceTokenizer.PreTokenizer pre =
        preTokenizer(root.get("pre_tokenizer"), "pre_tokenizer");
    HuggingFaceTokenizer.Decoder decoder = decoder(root.get("decoder"), "decoder");

    // Special ids: the post-processor's BOS, then the side files.
    int[] templateBos = {-1};
    boolean hasPostProcessor = root.get("post_processor") != null;
    postProcessor(root.get("post_processor"), "post_processor", templateBos);
    Map<String, Object> config = optionalJson(dir.resolve("tokenizer_config.json"));
    Map<String, Object> specialMap = optionalJson(dir.resolve("special_tokens_map.json"));
    Map<String, Object> generation = optionalJson(dir.resolve("generation_config.json"));
    int bos = specialId(config, specialMap, "bos_token");
    int eos = specialId(config, specialMap, "eos_token");
    if (bos < 0) {
      bos = templateBos[0];
    }
    boolean addBos =
        hasPostProcessor
            ? templateBos[0] >= 0
            : config.get("add_bos_token") instanceof Boolean b && b;
    if (templateBos[0] >= 0) {
      bos = templateBos[0];
    }
    int[] eot = generationEos(generation, size);
    if (eos < 0 && eot.length > 0) {
      eos = eot[0];
    }
    return new HuggingFaceTokenizer(
        tokens, types, bos, eos, eot, addBos, normalizer, pre, bpe, decoder);
  }

  private MergeTable merges(Map<String, Object> model) {
    List<Object> list = list(model.getOrDefault("merges", List.of()), "model.merges");
    MergeTable table = new MergeTable(list.size());
    for (int rank = 0; rank < list.size(); rank++) {
      String key = "model.merges[" + rank + "]";
      Object m = list.get(rank);
      String left;
      String right;
      if (m instanceof String s) {
        // The older form "left right": tokens cannot contain spaces, hence the newer pair form.
        int sp = s.indexOf(' ');
        if (sp <= 0 || sp != s.lastIndexOf(' ') || sp == s.length() - 1) {
          throw ModelFormatException.atKey(file, key, "merge '" + s + "' is not 'left right'");
        }
        left = s.substring(0, sp);
        right = s.substring(sp + 1);
      } else if (m instanceof List<?> pair
          && pair.size() == 2
          && pair.get(0) instanceof String a
          && pair.get(1) instanceof String b) {
        left = a;
        right = b;
      } else {
        throw ModelFormatException.atKey(file, key, "expected \"a b\" or [\"a\", \"b\"]");
      }
      try {
        ByteLevelBpeTokenizer.addMerge(table, rank, left, right, vocab::get, true);
      } catch (IllegalArgumentException e) {
        throw ModelFormatException.atKey(file, key, e.getMessage());
      }
    }
    return table;
  }

  // ---- normalizers -------------------------------------------------------------------------

  private UnaryOperator<String> normalizer(Object json, String key) {
    if (json == null) {
      return UnaryOperator.identity();
    }
    Map<String, Object> n = object(json, key);
    String type = (String) required(n, "type", key, String.class);
    return switch (type) {
      case "Sequence" -> {
        List<Object> parts = list(n.get("normalizers"), key + ".normalizers");
        List<UnaryOperator<String>> ops = new ArrayList<>();
        for (int i = 0; i < parts.size(); i++) {
          ops.add(normalizer(parts.get(i), key + ".normalizers[" + i + "]"));
        }
        yield s -> {
          for (UnaryOperator<String> op : ops) {
            s = op.apply(s);
          }
          return s;
        };
      }
      case "Prepend" -> {
        String p = (String) required(n, "prepend", key, String.class);
        yield s -> s.isEmpty() ? s : p + s;
      }
      case "Replace" -> {
        Pattern pattern = pattern(n.get("pattern"), key + ".pattern");
        String content =
            Matcher.quoteReplacement((String) required(n, "content", key, String.class));
        yield s -> pattern.matcher(s).replaceAll(content);
      }
      case "NFC" -> s -> Normalizer.normalize(s, Normalizer.Form.NFC);
      case "NFD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFD);
      case "NFKC" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKC);
      case "NFKD" -> s -> Normalizer.normalize(s, Normalizer.Form.NFKD);
      case "Lowercase" -> s -> s.toLowerCase(Locale.ROOT);
      case "Strip" -> {
        boolean left = bool(n, "strip_left", key, true);
        boolean right = bool(n, "strip_right", key, true);
        yield s ->
            left && right ? s.strip() : left ? s.stripLeading() : right ? s.stripTrailing() : s;
      }
      default ->
          throw ModelFormatException.atKey(
              file, key + ".type", "normalizer '" + type + "' is not supported");
    };
  }

  /** A Hugging Face {@code {"String": ...}} or {@code {"Regex": ...}} pattern. */
  private Pattern pattern(Object json, String key) {
    Map<String, Object> p = object(json, key);
    if (p.get("String") instanceof String s) {
      return Pattern.compile(Pattern.quote(s));
    }
    if (p.get("Regex") instanceof String r) {
      try {
        return PreTokenizers.compile(r);
      } catch (PatternSyntaxException e) {
        throw ModelFormatException.atKey(file, key + ".Regex", "bad regex: " + e.getDescription());
      }
    }
    throw ModelFormatException.atKey(file, key, "expected {\"String\": ...} or {\"Regex\": ...}");
  }

  // ---- pre-tokenizers ----------------------------------------------------------------------

  private HuggingFaceTokenizer.PreTokenizer preTokenizer(Object json, String key) {
    if (json == null) {
      return (s, atStart) -> List.of(s);
    }
    Map<String, Object> p = object(json, key);
    String type = (String) required(p, "type", key, String.class);
    return switch (type) {
      case "Sequence" -> {
        List<Object> parts = list(p.get("pretokenizers"), key + ".pretokenizers");
        List<HuggingFaceTokenizer.PreTokenizer> steps = new ArrayList<>();
        for (int i = 0; i < parts.size(); i++) {
          steps.add(preTokenizer(parts.get(i), key + ".pretokenizers[" + i + "]"));
        }
        yield (s, atStart) -> {
          List<String> words = List.of(s);
          for (var step : steps) {
            List<String> next = new ArrayList<>();
            for (int i = 0; i < words.size(); i++) {
              // Only the first word of the text counts as "at start" for later steps.
              next.addAll(step.split(words.get(i), atStart && i == 0));
            }
            words = next;
          }
          return words;
        };
      }
      case "Metaspace" -> metaspace(p, key);
      case "ByteLevel" -> {
        boolean addPrefixSpace = bool(p, "add_prefix_space", key, true);
        boolean useRegex = bool(p, "use_regex", key, true);
        Pattern gpt2 = PreTokenizers.compile(PreTokenizers.GPT2);
        yield (s, atStart) -> {
          if (addPrefixSpace && !s.startsWith(" ")) {
            s = " " + s;
          }
          List<String> words = useRegex ? splitIsolated(gpt2, s) : List.of(s);
          List<String> mapped = new ArrayList<>(words.size());
          for (String w : words) {
            mapped.add(ByteUnicode.encode(w.getBytes(StandardCharsets.UTF_8)));
          }
          return mapped;
        };
      }
      case "Split" -> {
        Pattern pattern = pattern(p.get("pattern"), key + ".pattern");
        String behavior = (String) required(p, "behavior", key, String.class);
        if (bool(p, "invert", key, false)) {
          throw ModelFormatException.atKey(
              file, key + ".invert", "inverted Split is not supported");
        }
        yield switch (behavior) {
          case "Isolated" -> (s, atStart) -> splitIsolated(pattern, s);
          case "Removed" -> (s, atStart) -> splitRemoved(pattern, s);
          default ->
              throw ModelFormatException.atKey(
                  file, key + ".behavior", "Split behavior '" + behavior + "' is not supported");
        };
      }
      default ->
          throw ModelFormatException.atKey(
              file, key + ".type", "pre-tokenizer '" + type + "' is not supported");
    };
  }

  private HuggingFaceTokenizer.PreTokenizer metaspace(Map<String, Object> p, String key) {
    String replacement = (String) required(p, "replacement", key, String.class);
    String scheme = (String) optional(p, "prepend_scheme", key, String.class);
    if (scheme == null) {
      // Files from before prepend_scheme existed say add_prefix_space instead.
      scheme = bool(p, "add_prefix_space", key, true) ? "always" : "never";
    }
    boolean split = bool(p, "split", key, true);
    String prepend = scheme;
    if (!List.of("always", "first", "never").contains(prepend)) {
      throw ModelFormatException.atKey(file, key + ".prepend_scheme", "unknown '" + prepend + "'");
    }
    return (s, atStart) -> {
      s = s.replace(" ", replacement);
      boolean add = prepend.equals("always") || (prepend.equals("first") && atStart);
      if (add && !s.startsWith(replacement)) {
        s = replacement + s;
      }
      if (!split) {
        return List.of(s);
      }
      // Each word keeps the marker in front of it (HF's MergedWithNext).
      List<String> words = new ArrayList<>();
      int from = 0;
      for (int i = s.indexOf(replacement, 1); i >= 0; i = s.indexOf(replacement, i + 1)) {
        if (i > from) {
          words.add(s.substring(from, i));
          from = i;
        }
      }
      words.add(s.substring(from));
      return words;
    };
  }

  /** Matches and the gaps between them, each a word (HF's "Isolated" behaviour). */
  static List<String> splitIsolated(Pattern pattern, String s) {
    List<String> out = new ArrayList<>();
    Matcher m = pattern.matcher(s);
    int last = 0;
    while (m.find()) {
      if (m.start() > last) {
        out.add(s.substring(last, m.start()));
      }
      if (m.end() > m.start()) {
        out.add(m.group());
      }
      last = m.end();
    }
    if (last < s.length()) {
      out.add(s.substring(last));
    }
    return out;
  }

  private static List<String> splitRemoved(Pattern pattern, String s) {
    List<String> out = new ArrayList<>();
    Matcher m = pattern.matcher(s);
    int last = 0;
    while (m.find()) {
      if (m.start() > last) {
        out.add(s.substring(last, m.start()));
      }
      last = m.end();
    }
    if (last < s.length()) {
      out.add(s.substring(last));
    }
    return out;
  }

  // ---- decoders ----------------------------------------------------------------------------

  /** One per-token decoding step on a token that is still a string. */
  private interface TokenStep {
    /** Returns the new string, or null after writing the token's final bytes to {@code out}. */
    String apply(String token, ByteArrayOutputStream out);
  }

  private HuggingFaceTokenizer.Decoder decoder(Object json, String key) {
    List<TokenStep> perToken = new ArrayList<>();
    List<UnaryOperator<String>> sequence = new ArrayList<>();
    if (json != null) {
      Map<String, Object> d = object(json, key);
      String type = (String) required(d, "type", key, String.class);
      if (type.equals("Sequence")) {
        List<Object> parts = list(d.get("decoders"), key + ".decoders");
        boolean fused = false;
        for (int i = 0; i < parts.size(); i++) {
          String k = key + ".decoders[" + i + "]";
          Map<String, Object> part = object(parts.get(i), k);
          if ("Fuse".equals(part.get("type"))) {
            fused = true;
          } else {
            decoderStep(part, k, fused, perToken, sequence);
          }
        }
      } else {
        decoderStep(d, key, false, perToken, sequence);
      }
    }
    return new HuggingFaceTokenizer.Decoder() {
      @Override
      public byte[] tokenBytes(String token) {
        var out = new ByteArrayOutputStream(token.length() + 4);
        String t = token;
        for (TokenStep step : perToken) {
          t = step.apply(t, out);
          if (t == null) {
            return out.toByteArray();
          }
        }
        return t.getBytes(StandardCharsets.UTF_8);
      }

      @Override
      public String finish(String text) {
        for (UnaryOperator<String> op : sequence) {
          text = op.apply(text);
        }
        return text;
      }
    };
  }

  private void decoderStep(
      Map<String, Object> d,
      String key,
      boolean afterFuse,
      List<TokenStep> perToken,
      List<UnaryOperator<String>> sequence) {
    String type = (String) required(d, "type", key, String.class);
    switch (type) {
      case "Replace" -> {
        Pattern pattern = pattern(d.get("pattern"), key + ".pattern");
        String content =
            Matcher.quoteReplacement((String) required(d, "content", key, String.class));
        if (afterFuse) {
          sequence.add(s -> pattern.matcher(s).replaceAll(content));
        } else {
          perToken.add((t, out) -> pattern.matcher(t).replaceAll(content));
        }
      }
      case "ByteFallback" ->
          perToken.add(
              (t, out) -> {
                int b = SentencePieceTokenizer.byteOfPiece(t);
                if (b < 0) {
                  return t;
                }
                out.write(b);
                return null;
              });
      case "ByteLevel" ->
          perToken.add(
              (t, out) -> {
                byte[] bytes = ByteUnicode.decode(t);
                if (bytes == null) {
                  return t;
                }
                out.writeBytes(bytes);
                return null;
              });
      case "Metaspace" -> {
        String replacement = (String) required(d, "replacement", key, String.class);
        String scheme = (String) optional(d, "prepend_scheme", key, String.class);
        boolean prefix =
            scheme == null ? bool(d, "add_prefix_space", key, true) : !scheme.equals("never");
        perToken.add((t, out) -> t.replace(replacement, " "));
        if (prefix) {
          sequence.add(s -> s.startsWith(" ") ? s.substring(1) : s);
        }
      }
      case "Strip" -> {
        String content = (String) required(d, "content", key, String.class);
        int start = (int) number(d, "start", key, 0);
        int stop = (int) number(d, "stop", key, 0);
        UnaryOperator<String> strip = s -> strip(s, content, start, stop);
        if (afterFuse) {
          sequence.add(strip);
        } else {
          perToken.add((t, out) -> strip(t, content, start, stop));
        }
      }
      default ->
          throw ModelFormatException.atKey(
              file, key + ".type", "decoder '" + type + "' is not supported");
    }
  }

  /** HF's Strip decoder: removes up to {@code start}/{@code stop} copies of {@code content}. */
  private static String strip(String s, String content, int start, int stop) {
    int from = 0;
    for (int i = 0; i < start && s.startsWith(content, from); i++) {
      from += content.length();
    }
    int to = s.length();
    for (int i = 0;
        i < stop && to - content.length() >= from && s.startsWith(content, to - content.length());
        i++) {
      to -= content.length();
    }
    return s.substring(from, to);
  }

  // ---- post-processor and special ids ------------------------------------------------------

  /** Finds the BOS a post-processor puts in front of a single sequence. */
  private void postProcessor(Object json, String key, int[] bos) {
    if (json == null) {
      return;
    }
    Map<String, Object> p = object(json, key);
    String type = (String) required(p, "type", key, String.class);
    switch (type) {
      case "Sequence" -> {
        List<Object> parts = list(p.get("processors"), key + ".processors");
        for (int i = 0; i < parts.size(); i++) {
          postProcessor(parts.get(i), key + ".processors[" + i + "]", bos);
        }
      }
      case "ByteLevel" -> {} // offsets only
      case "TemplateProcessing" -> {
        List<Object> single = list(p.get("single"), key + ".single");
        if (single.isEmpty()) {
          return;
        }
        Map<String, Object> first = object(single.get(0), key + ".single[0]");
        if (first.get("SpecialToken") instanceof Map<?, ?> st
            && st.get("id") instanceof String name) {
          bos[0] = templateTokenId(p, name, key);
        }
      }
      case "BertProcessing", "RobertaProcessing" -> {
        List<Object> cls = list(p.get("cls"), key + ".cls");
        if (cls.size() == 2) {
          bos[0] = id(cls.get(1), key + ".cls[1]");
        }
      }
      default ->
          throw ModelFormatException.atKey(
              file, key + ".type", "post-processor '" + type + "' is not supported");
    }
  }

  private int templateTokenId(Map<String, Object> p, String name, String key) {
    Map<String, Object> specials =
        object(p.getOrDefault("special_tokens", Map.of()), key + ".special_tokens");
    if (specials.get(name) instanceof Map<?, ?> entry
        && entry.get("ids") instanceof List<?> ids
        && !ids.isEmpty()) {
      return id(ids.get(0), key + ".special_tokens." + name + ".ids[0]");
    }
    Integer id = vocab.get(name);
    if (id == null) {
      throw ModelFormatException.atKey(
          file, key + ".single", "template token '" + name + "' is not in the vocabulary");
    }
    return id;
  }

  /** {@code bos_token}/{@code eos_token} from tokenizer_config.json or special_tokens_map.json. */
  private int specialId(Map<String, Object> config, Map<String, Object> map, String name) {
    for (Map<String, Object> m : List.of(config, map)) {
      Object v = m.get(name);
      String text =
          v instanceof String s
              ? s
              : v instanceof Map<?, ?> o && o.get("content") instanceof String c ? c : null;
      if (text != null && vocab.containsKey(text)) {
        return vocab.get(text);
      }
    }
    return -1;
  }

  /** generation_config.json's eos_token_id: one id or a list (Llama-3 instruct lists eot too). */
  private static int[] generationEos(Map<String, Object> generation, int size) {
    Object v = generation.get("eos_token_id");
    List<?> list = v instanceof List<?> l ? l : v == null ? List.of() : List.of(v);
    return list.stream()
        .filter(x -> x instanceof Long l && l >= 0 && l < size)
        .mapToInt(x -> ((Long) x).intValue())
        .toArray();
  }

  private static Map<String, Object> optionalJson(Path f) {
    return Files.isRegularFile(f) ? readJsonObject(f) : Map.of();
  }

  // ---- typed access with key paths in errors -----------------------------------------------

  private Map<String, Object> object(Object v, String key) {
    if (v instanceof Map<?, ?> m) {
      @SuppressWarnings("unchecked")
      Map<String, Object> map = (Map<String, Object>) m;
      return map;
    }
    throw ModelFormatException.atKey(file, key, "expected an object, found " + kind(v));
  }

  private List<Object> list(Object v, String key) {
    if (v instanceof List<?> l) {
      @SuppressWarnings("unchecked")
      List<Object> list = (List<Object>) l;
      return list;
    }
    throw ModelFormatException.atKey(file, key, "expected an array, found " + kind(v));
  }

  private int id(Object v, String key) {
    if (v instanceof Long l && l >= 0 && l < Integer.MAX_VALUE) {
      return (int) (long) l;
    }
    throw ModelFormatException.atKey(file, key, "expected a token id, found " + kind(v));
  }

  private Object required(Map<String, Object> m, String field, String key, Class<?> type) {
    Object v = m.get(field);
    if (!type.isInstance(v)) {
      throw ModelFormatException.atKey(
          file, key + "." + field, "expected " + type.getSimpleName() + ", found " + kind(v));
    }
    return v;
  }

  private Object optional(Map<String, Object> m, String field, String key, Class<?> type) {
    Object v = m.get(field);
    return v == null ? null : required(m, field, key, type);
  }

  private boolean bool(Map<String, Object> m, String field, String key, boolean dflt) {
    Object v = optional(m, field, key, Boolean.class);
    return v == null ? dflt : (Boolean) v;
  }

  private long number(Map<String, Object> m, String field, String key, long dflt) {
    Object v = optional(m, field, key, Long.class);
    return v == null ? dflt : (Long) v;
  }

  private static String kind(Object v) {
    return switch (v) {
      case null -> "null";
      case String s -> "string";
      case Boolean b -> "boolean";
      case Number n -> "number " + n;
      case List<?> l -> "array";
      case Map<?, ?> m -> "object";
      default -> v.getClass().getSimpleName();
    };
  }
}
