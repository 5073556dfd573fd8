package dev.longctx.api.v1alpha1;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import io.fabric8.generator.annotation.Default;
import io.fabric8.generator.annotation.Pattern;
import io.fabric8.generator.annotation.Required;

/**
 * Where the model's weights come from. {@code hf://}, {@code s3://} and {@code http(s)://} are
 * fetched by an init container into a volume (optionally a cache PVC shared by the replicas);
 * {@code pvc://claim/path} is mounted read-only; {@code file://} names a path baked into the image.
 */
public class ModelSource {

  /** The on-disk model format. */
  public enum Format {
    /** Detect the format from the file (magic bytes, or a directory's config.json). */
    @JsonProperty("auto")
    AUTO,
    /** GGUF v2/v3. */
    @JsonProperty("gguf")
    GGUF,
    /** llama2.c .bin checkpoint with its tokenizer beside it. */
    @JsonProperty("llama2c")
    LLAMA2C,
    /** Hugging Face directory: config.json, *.safetensors and tokenizer.json. */
    @JsonProperty("safetensors")
    SAFETENSORS
  }

  /** The URI schemes the operator understands. */
  public enum Scheme {
    HF,
    S3,
    HTTP,
    HTTPS,
    PVC,
    FILE;

    /** True when an init container must download the model before the worker starts. */
    public boolean downloads() {
      return this == HF || this == S3 || this == HTTP || this == HTTPS;
    }
  }

  @Required
  @Pattern("^(hf|s3|pvc|file|http|https)://.+$")
  @JsonPropertyDescription(
      "Model location: hf://org/repo[/file], s3://bucket/key, http(s)://host/path,"
          + " pvc://claim/path (mounted read-only) or file:///path (baked into the image).")
  private String uri = "";

  @Default("auto")
  @JsonPropertyDescription("Model format: auto, gguf, llama2c or safetensors.")
  private Format format = Format.AUTO;

  @Default("main")
  @JsonPropertyDescription("Revision (branch, tag or commit) for hf:// models; ignored otherwise.")
  private String revision = "main";

  @JsonPropertyDescription(
      "Name of a Secret whose keys become the download's environment (HF_TOKEN for hf://;"
          + " AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL for s3://;"
          + " HTTP_AUTHORIZATION for http(s)://). Empty: anonymous.")
  private String credentialsSecret = "";

  @JsonPropertyDescription(
      "A PersistentVolumeClaim the download goes to, shared by all replicas so they do not"
          + " download again; disabled: each pod downloads into an emptyDir.")
  private ModelCacheSpec cache = new ModelCacheSpec();

  /** The URI's scheme; the schema's pattern guarantees one of the known ones once admitted. */
  @JsonIgnore
  public Scheme scheme() {
    int i = uri.indexOf("://");
    if (i <= 0) {
      throw new IllegalArgumentException("model.uri has no scheme: '" + uri + "'");
    }
    String s = uri.substring(0, i);
    for (Scheme scheme : Scheme.values()) {
      if (scheme.name().equalsIgnoreCase(s)) {
        return scheme;
      }
    }
    throw new IllegalArgumentException(
        "model.uri scheme '" + s + "' is not one of hf, s3, http, https, pvc, file");
  }

  /** The part after {@code scheme://}. */
  @JsonIgnore
  public String path() {
    int i = uri.indexOf("://");
    return i < 0 ? uri : uri.substring(i + 3);
  }

  public String getUri() {
    return uri;
  }

  public void setUri(String uri) {
    this.uri = uri == null ? "" : uri;
  }

  public Format getFormat() {
    return format;
  }

  public void setFormat(Format format) {
    this.format = format == null ? Format.AUTO : format;
  }

  public String getRevision() {
    return revision;
  }

  public void setRevision(String revision) {
    this.revision = revision == null ? "main" : revision;
  }

  public String getCredentialsSecret() {
    return credentialsSecret;
  }

  public void setCredentialsSecret(String credentialsSecret) {
    this.credentialsSecret = credentialsSecret == null ? "" : credentialsSecret;
  }

  public ModelCacheSpec getCache() {
    return cache;
  }

  public void setCache(ModelCacheSpec cache) {
    this.cache = cache == null ? new ModelCacheSpec() : cache;
  }
}
