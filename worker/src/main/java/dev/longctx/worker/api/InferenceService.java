package dev.longctx.worker.api;

import dev.longctx.engine.inference.Generator.FinishReason;
import dev.longctx.engine.tokenizer.Tokenizer;
import dev.longctx.proto.v1.GenerateFinal;
import dev.longctx.proto.v1.GenerateRequest;
import dev.longctx.proto.v1.GenerateResponse;
import dev.longctx.proto.v1.GetModelInfoRequest;
import dev.longctx.proto.v1.InferenceGrpc;
import dev.longctx.proto.v1.ModelInfo;
import dev.longctx.proto.v1.PrefillProgress;
import dev.longctx.proto.v1.TokenChunk;
import dev.longctx.proto.v1.TokenizeRequest;
import dev.longctx.proto.v1.TokenizeResponse;
import dev.longctx.worker.coordinator.EngineLoop;
import dev.longctx.worker.coordinator.GenerationSink;
import dev.longctx.worker.coordinator.GenerationTask;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import org.jboss.logging.Logger;

/** {@code longctx.v1.Inference}: validates at the edge, queues on the engine loop, streams. */
public final class InferenceService extends InferenceGrpc.InferenceImplBase {

  private static final Logger LOG = Logger.getLogger(InferenceService.class);

  private final ServedModel model;
  private final RequestValidator validator;
  private final EngineLoop engine;

  public InferenceService(ServedModel model, EngineLoop engine) {
    this.model = model;
    this.validator = new RequestValidator(model);
    this.engine = engine;
  }

  @Override
  public void generate(GenerateRequest request, StreamObserver<GenerateResponse> observer) {
    GenerationTask.Spec spec;
    try {
      spec = validator.validate(request);
    } catch (StatusRuntimeException e) {
      observer.onError(e);
      return;
    }
    ServerCallStreamObserver<GenerateResponse> call =
        (ServerCallStreamObserver<GenerateResponse>) observer;
    GenerationTask task = new GenerationTask(spec, model.tokenizer(), new Sink(spec, call));
    call.setOnCancelHandler(
        () -> {
          task.cancel();
          engine.poke();
        });
    engine.submit(task);
  }

  /** Writes one request's events to its gRPC stream (from the engine thread). */
  private static final class Sink implements GenerationSink {
    private final GenerationTask.Spec spec;
    private final ServerCallStreamObserver<GenerateResponse> call;

    Sink(GenerationTask.Spec spec, ServerCallStreamObserver<GenerateResponse> call) {
      this.spec = spec;
      this.call = call;
    }

    private GenerateResponse.Builder response() {
      return GenerateResponse.newBuilder().setRequestId(spec.requestId());
    }

    @Override
    public void onPrefillProgress(int done, int total) {
      if (!call.isCancelled()) {
        call.onNext(
            response()
                .setPrefill(PrefillProgress.newBuilder().setTokensDone(done).setTokensTotal(total))
                .build());
      }
    }

    @Override
    public void onTokens(int[] tokenIds, String text) {
      if (call.isCancelled()) {
        return;
      }
      TokenChunk.Builder chunk = TokenChunk.newBuilder().setText(text);
      for (int id : tokenIds) {
        chunk.addTokenIds(id);
      }
      call.onNext(response().setTokens(chunk).build());
    }

    @Override
    public void onFinish(FinishReason reason, GenerationSink.Usage u) {
      if (call.isCancelled()) {
        return;
      }
      call.onNext(
          response()
              .setFinal(
                  GenerateFinal.newBuilder()
                      .setFinishReason(finishReason(reason))
                      .setUsage(
                          dev.longctx.proto.v1.Usage.newBuilder()
                              .setPromptTokens(u.promptTokens())
                              .setCompletionTokens(u.completionTokens())
                              .setShardsUsed(u.shardsUsed())
                              .setTimeToFirstTokenSeconds(u.timeToFirstTokenSeconds())
                              .setTokensPerSecond(u.tokensPerSecond())
                              .setPrefillTokensPerSecond(u.prefillTokensPerSecond())))
              .build());
      call.onCompleted();
    }

    @Override
    public void onError(Throwable error) {
      if (call.isCancelled()) {
        return;
      }
      Status status = Status.fromThrowable(error);
      if (status.getCode() == Status.Code.UNKNOWN) {
        LOG.errorf(error, "request %s failed", spec.requestId());
        status = Status.INTERNAL.withDescription(error.toString()).withCause(error);
      }
      call.onError(status.asRuntimeException());
    }
  }

  static dev.longctx.proto.v1.FinishReason finishReason(FinishReason r) {
    return switch (r) {
      case STOP -> dev.longctx.proto.v1.FinishReason.FINISH_REASON_STOP;
      case END_OF_TEXT -> dev.longctx.proto.v1.FinishReason.FINISH_REASON_END_OF_TEXT;
      case LENGTH -> dev.longctx.proto.v1.FinishReason.FINISH_REASON_LENGTH;
      case CONTEXT -> dev.longctx.proto.v1.FinishReason.FINISH_REASON_CONTEXT;
    };
  }

  @Override
  public void tokenize(TokenizeRequest request, StreamObserver<TokenizeResponse> observer) {
    Tokenizer tok = model.tokenizer();
    int[] ids;
    try {
      ids =
          switch (request.getInputCase()) {
            case TEXT ->
                request.getNoBos()
                    ? tok.encode(request.getText())
                    : tok.encodePrompt(request.getText());
            case CHAT -> RequestValidator.chatTokens(tok, request.getChat());
            case INPUT_NOT_SET -> new int[0];
          };
    } catch (StatusRuntimeException e) {
      observer.onError(e);
      return;
    }
    TokenizeResponse.Builder b = TokenizeResponse.newBuilder();
    for (int id : ids) {
      b.addTokenIds(id).addPieces(tok.tokenText(id));
    }
    observer.onNext(b.build());
    observer.onCompleted();
  }

  @Override
  public void getModelInfo(GetModelInfoRequest request, StreamObserver<ModelInfo> observer) {
    var c = model.config();
    observer.onNext(
        ModelInfo.newBuilder()
            .setName(model.name())
            .setArchitecture(c.architecture())
            .setTrainedContext(c.contextLength())
            .setExtendedContext(model.contextLimit())
            .setVocabSize(c.vocabSize())
            .setLayers(c.layers())
            .setDim(c.dim())
            .setHeads(c.heads())
            .setKvHeads(c.kvHeads())
            .setHeadDim(c.headDim())
            .addAllAttentionMethods(model.attentionMethods())
            .setDefaultAttentionMethod(model.attentionMethods().getFirst())
            .build());
    observer.onCompleted();
  }
}
