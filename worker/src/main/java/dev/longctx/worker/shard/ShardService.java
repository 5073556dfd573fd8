package dev.longctx.worker.shard;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.inference.KvRange;
import dev.longctx.proto.shard.v1.AdvanceRequest;
import dev.longctx.proto.shard.v1.AdvanceResponse;
import dev.longctx.proto.shard.v1.AttendRequest;
import dev.longctx.proto.shard.v1.AttendResponse;
import dev.longctx.proto.shard.v1.CallTag;
import dev.longctx.proto.shard.v1.Candidates;
import dev.longctx.proto.shard.v1.DescribeRequest;
import dev.longctx.proto.shard.v1.DescribeResponse;
import dev.longctx.proto.shard.v1.ForwardRequest;
import dev.longctx.proto.shard.v1.LogitsRequest;
import dev.longctx.proto.shard.v1.LogitsResponse;
import dev.longctx.proto.shard.v1.OpenRequest;
import dev.longctx.proto.shard.v1.OpenResponse;
import dev.longctx.proto.shard.v1.ReleaseRequest;
import dev.longctx.proto.shard.v1.ReleaseResponse;
import dev.longctx.proto.shard.v1.ScoreRequest;
import dev.longctx.proto.shard.v1.ScoreResponse;
import dev.longctx.proto.shard.v1.ShardGrpc;
import dev.longctx.worker.telemetry.Telemetry;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.context.Scope;
import java.util.function.Supplier;

/** The internal shard API (longctx.shard.v1.Shard) over a {@link ShardEngine}. */
public final class ShardService extends ShardGrpc.ShardImplBase {

  private final ShardEngine engine;

  public ShardService(ShardEngine engine) {
    this.engine = engine;
  }

  private void checkEpoch(CallTag tag) {
    if (tag.getEpoch() != engine.epoch()) {
      throw Status.FAILED_PRECONDITION
          .withDescription(
              "stale shard epoch "
                  + tag.getEpoch()
                  + " for request "
                  + tag.getRequestId()
                  + ": shard "
                  + engine.shardId()
                  + " is at epoch "
                  + engine.epoch())
          .asRuntimeException();
    }
  }

  private KvRange state(CallTag tag) {
    checkEpoch(tag);
    KvRange s = engine.get(tag.getRequestId());
    if (s == null) {
      throw Status.NOT_FOUND
          .withDescription(
              "request " + tag.getRequestId() + " is not open on shard " + engine.shardId())
          .asRuntimeException();
    }
    return s;
  }

  /**
   * Runs a call's body as the span {@code shard.<method>} (a child of the coordinator's span when
   * the call carried trace context) and answers with its value or the status its failure maps to.
   */
  private <T> void answer(
      StreamObserver<T> observer, String method, CallTag tag, Supplier<T> body) {
    Span span =
        Telemetry.get()
            .tracer()
            .spanBuilder("shard." + method)
            .setSpanKind(SpanKind.SERVER)
            .setAttribute("longctx.shard", engine.shardId())
            .startSpan();
    if (tag != null) {
      span.setAllAttributes(Telemetry.request(tag.getRequestId()));
      span.setAttribute("longctx.layer", tag.getLayer());
    }
    StatusRuntimeException failure;
    T value;
    try (Scope ignored = span.makeCurrent()) {
      value = body.get();
      failure = null;
    } catch (StatusRuntimeException e) {
      value = null;
      failure = e;
    } catch (IllegalArgumentException e) {
      value = null;
      failure = Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException();
    } catch (IllegalStateException e) {
      // A protocol slip (layer order, reserved positions): retrying elsewhere would not help.
      value = null;
      failure = Status.INTERNAL.withDescription(e.getMessage()).asRuntimeException();
    } catch (RuntimeException e) {
      value = null;
      failure = Status.INTERNAL.withDescription(e.toString()).withCause(e).asRuntimeException();
    }
    if (failure != null) {
      Telemetry.fail(span, failure);
      span.end();
      observer.onError(failure);
      return;
    }
    span.end();
    observer.onNext(value);
    observer.onCompleted();
  }

  @Override
  public void describe(DescribeRequest request, StreamObserver<DescribeResponse> observer) {
    answer(
        observer,
        "describe",
        null,
        () -> {
          var c = engine.config();
          return DescribeResponse.newBuilder()
              .setShardId(engine.shardId())
              .setEpoch(engine.epoch())
              .setModelFingerprint(engine.fingerprint())
              .setLayers(c.layers())
              .setDim(c.dim())
              .setHeads(c.heads())
              .setKvHeads(c.kvHeads())
              .setHeadDim(c.headDim())
              .setVocabSize(c.vocabSize())
              .setCapacityTokens(engine.capacityTokens())
              .setResidentTokens(engine.residentTokens())
              .setActiveRequests(engine.activeRequests())
              .setReservedTokens(engine.reservedTokens())
              .setBackend(engine.backend())
              .setReady(true)
              .build();
        });
  }

  @Override
  public void open(OpenRequest request, StreamObserver<OpenResponse> observer) {
    answer(
        observer,
        "open",
        request.getTag(),
        () -> {
          checkEpoch(request.getTag());
          AttentionPolicy policy = policyOf(request, engine.indexerSource());
          if (request.getCapacity() < 1) {
            throw new IllegalArgumentException(
                "capacity must be >= 1, got " + request.getCapacity());
          }
          if (!engine.open(request.getTag().getRequestId(), request.getCapacity(), policy)) {
            throw Status.RESOURCE_EXHAUSTED
                .withDescription(
                    "shard "
                        + engine.shardId()
                        + " cannot reserve "
                        + request.getCapacity()
                        + " KV tokens: "
                        + engine.reservedTokens()
                        + " of "
                        + engine.capacityTokens()
                        + " reserved")
                .asRuntimeException();
          }
          return OpenResponse.newBuilder()
              .setResidentTokens(engine.residentTokens())
              .setCapacityTokens(engine.capacityTokens())
              .setForwardSelects(state(request.getTag()).selectsInForward())
              .build();
        });
  }

  /**
   * The request's attention from the Open call: the sparse method whole where its parameters came
   * (the shard may then select in Forward, and with indexer "model" or "file" indexes and scores
   * its keys with {@code trained}, the shard's model file's or indexer file's), else only its
   * positions (SelfExtend's mapping, or plain): the coordinator selects.
   */
  static AttentionPolicy policyOf(OpenRequest request, IndexerSource.Trained trained) {
    AttentionPolicy.SelfExtend se =
        request.getGroupSize() > 0
            ? new AttentionPolicy.SelfExtend(
                request.getGroupSize(),
                request.getNeighborWindow(),
                request.getSelfExtendMode().isEmpty()
                    ? AttentionPolicy.SelfExtendMode.EXACT
                    : AttentionPolicy.SelfExtendMode.parse(request.getSelfExtendMode()))
            : null;
    AttentionPolicy positions = se != null ? se : AttentionPolicy.dense();
    return switch (request.getAttentionMethod()) {
      case "", "dense" -> positions;
      case "indexer-topk" -> {
        if (request.getTopK() <= 0) {
          yield positions;
        }
        IndexerSource source =
            switch (request.getIndexer()) {
              case "own-heads" -> IndexerSource.ownHeads();
              case "model" -> {
                if (!(trained instanceof IndexerSource.ModelFile)) {
                  throw precondition(
                      "indexer \"model\" needs lightning-indexer tensors in the shard's model"
                          + " file; this shard's model has none");
                }
                yield trained;
              }
              case "file" -> {
                if (!(trained instanceof IndexerSource.IndexerFile file)) {
                  throw precondition(
                      "indexer \"file\" needs the shard started with the same indexer file"
                          + " (--attention indexer-topk --indexer FILE); this shard has none");
                }
                if (!request.getIndexerId().equals(file.id())) {
                  throw precondition(
                      "the request's indexer file is "
                          + request.getIndexerId()
                          + ", this shard's "
                          + file.path()
                          + " is "
                          + file.id()
                          + ": start every shard with the coordinator's indexer file");
                }
                yield trained;
              }
              default -> null;
            };
        yield source == null
            ? positions
            : new AttentionPolicy.IndexerTopK(
                request.getTopK(), request.getDenseBelow(), source, se);
      }
      case "block-topk" ->
          request.getBlockSize() > 0 && request.getTopBlocks() > 0
              ? new AttentionPolicy.BlockTopK(
                  request.getBlockSize(),
                  request.getTopBlocks(),
                  AttentionPolicy.BlockScore.parse(
                      request.getBlockScore().isEmpty() ? "quest" : request.getBlockScore()),
                  se)
              : positions;
      case "self-extend" -> {
        if (se == null) {
          throw new IllegalArgumentException("self-extend needs group_size >= 1");
        }
        yield se;
      }
      default ->
          throw new IllegalArgumentException(
              "attention method \""
                  + request.getAttentionMethod()
                  + "\" is unknown; available: dense, self-extend, indexer-topk, block-topk");
    };
  }

  @Override
  public void advance(AdvanceRequest request, StreamObserver<AdvanceResponse> observer) {
    answer(
        observer,
        "advance",
        request.getTag(),
        () -> {
          KvRange s = state(request.getTag());
          if (request.getReturnIndexQueries()) {
            requireIndexer(s, request.getTag()); // before the step moves on
          }
          int layer = request.getTag().getLayer();
          if (layer < 0 || layer >= engine.config().layers()) {
            throw new IllegalArgumentException(
                "layer " + layer + " is outside [0, " + engine.config().layers() + ")");
          }
          int[] tokens = request.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
          int[] positions =
              request.getPositionsList().stream().mapToInt(Integer::intValue).toArray();
          float[] attention =
              request.hasAttentionOutput()
                  ? Tensors.floats(request.getAttentionOutput(), -1)
                  : null;
          KvRange.Queries q = s.advance(layer, tokens, positions, attention);
          int qDim = engine.config().queryDim();
          int rows = q.plain().length / qDim;
          AdvanceResponse.Builder b =
              AdvanceResponse.newBuilder().setQueries(Tensors.f32(q.plain(), rows, qDim));
          if (q.grouped() != null) {
            b.setGroupQueries(Tensors.f32(q.grouped(), rows, qDim));
          }
          if (request.getReturnKeys()) {
            int kvDim = engine.config().kvDim();
            b.setKeys(Tensors.f32(s.stepKeys(false), rows, kvDim));
            if (q.grouped() != null) {
              b.setGroupKeys(Tensors.f32(s.stepKeys(true), rows, kvDim));
            }
          }
          if (request.getReturnNormedInput()) {
            b.setNormedInput(Tensors.f32(s.stepNormedInput(), rows, engine.config().dim()));
          }
          if (request.getReturnIndexQueries()) {
            KvRange.IndexQueries iq = s.indexStep();
            int heads = engine.indexer().heads();
            b.setIndexQueries(Tensors.f32(iq.queries(), rows, heads * engine.indexer().headDim()))
                .setIndexWeights(Tensors.f32(iq.weights(), rows, heads));
          }
          return b.build();
        });
  }

  @Override
  public void attend(AttendRequest request, StreamObserver<AttendResponse> observer) {
    answer(
        observer,
        "attend",
        request.getTag(),
        () -> {
          KvRange s = state(request.getTag());
          var c = engine.config();
          int layer = layerWithKeys(s, request.getTag());
          int[] positions =
              request.getPositionsList().stream().mapToInt(Integer::intValue).toArray();
          int m = positions.length;
          float[] q = Tensors.floats(request.getQueries(), (long) m * c.queryDim());
          float[] qg =
              request.hasGroupQueries()
                  ? Tensors.floats(request.getGroupQueries(), (long) m * c.queryDim())
                  : null;
          float[] out = new float[m * c.queryDim()];
          float[] lse = new float[m * c.heads()];
          int[][] selected = null;
          if (request.getSelectedCount() > 0) {
            selected = new int[request.getSelectedCount()][];
            for (int i = 0; i < selected.length; i++) {
              var cand = request.getSelected(i);
              selected[i] =
                  cand.getAll()
                      ? null
                      : cand.getPositionsList().stream().mapToInt(Integer::intValue).toArray();
            }
          }
          s.attend(layer, q, qg, positions, selected, out, lse);
          return AttendResponse.newBuilder()
              .setOutput(Tensors.f32(out, m, c.queryDim()))
              .setLse(Tensors.f32(lse, m, c.heads()))
              .build();
        });
  }

  @Override
  public void logits(LogitsRequest request, StreamObserver<LogitsResponse> observer) {
    answer(
        observer,
        "logits",
        request.getTag(),
        () -> {
          KvRange s = state(request.getTag());
          int[] rows = request.getRowsList().stream().mapToInt(Integer::intValue).toArray();
          float[] logits = s.logits(Tensors.floats(request.getAttentionOutput(), -1), rows);
          return LogitsResponse.newBuilder()
              .setLogits(Tensors.f32(logits, rows.length, engine.config().vocabSize()))
              .build();
        });
  }

  @Override
  public void forward(ForwardRequest request, StreamObserver<LogitsResponse> observer) {
    answer(
        observer,
        "forward",
        request.getTag(),
        () -> {
          KvRange s = state(request.getTag());
          int[] tokens = request.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
          int[] positions =
              request.getPositionsList().stream().mapToInt(Integer::intValue).toArray();
          if (tokens.length == 0) {
            throw new IllegalArgumentException("a forward step needs at least one token");
          }
          int[] rows =
              request.getSkipLogits()
                  ? new int[0]
                  : request.getLogitRowsCount() > 0
                      ? request.getLogitRowsList().stream().mapToInt(Integer::intValue).toArray()
                      : new int[] {tokens.length - 1};
          for (int i = 0; i < rows.length; i++) {
            if (rows[i] < 0 || rows[i] >= tokens.length || (i > 0 && rows[i] <= rows[i - 1])) {
              throw new IllegalArgumentException(
                  "logit rows must ascend within the step's "
                      + tokens.length
                      + " tokens, got "
                      + request.getLogitRowsList());
            }
          }
          float[] logits = s.forwardLocal(tokens, positions, rows);
          if (rows.length == 0) {
            return LogitsResponse.getDefaultInstance();
          }
          return LogitsResponse.newBuilder()
              .setLogits(Tensors.f32(logits, rows.length, engine.config().vocabSize()))
              .build();
        });
  }

  /** The call's layer, which must have keys here (advanced at least that far). */
  private static int layerWithKeys(KvRange s, CallTag tag) {
    int layer = tag.getLayer();
    if (layer < 0 || layer > s.layer()) {
      throw new IllegalArgumentException(
          "layer " + layer + " has no keys here yet (advanced to " + s.layer() + ")");
    }
    return layer;
  }

  private static StatusRuntimeException precondition(String message) {
    return Status.FAILED_PRECONDITION.withDescription(message).asRuntimeException();
  }

  /** Indexing and scoring need the request opened with a trained indexer (its indexer here). */
  private static void requireIndexer(KvRange s, CallTag tag) {
    if (!s.indexes()) {
      throw Status.FAILED_PRECONDITION
          .withDescription(
              "request "
                  + tag.getRequestId()
                  + " was not opened with a trained indexer (\"model\" or \"file\"): its shards"
                  + " hold no indexer keys to score")
          .asRuntimeException();
    }
  }

  @Override
  public void score(ScoreRequest request, StreamObserver<ScoreResponse> observer) {
    answer(
        observer,
        "score",
        request.getTag(),
        () -> {
          KvRange s = state(request.getTag());
          requireIndexer(s, request.getTag());
          int layer = layerWithKeys(s, request.getTag());
          ScoreResponse.Builder b = ScoreResponse.newBuilder();
          if (request.getThresholdsCount() > 0) {
            // round 2 of the threshold exchange: the kept lists' entries at or above τ
            float[] thresholds = new float[request.getThresholdsCount()];
            for (int i = 0; i < thresholds.length; i++) {
              thresholds[i] = request.getThresholds(i);
            }
            for (TopK.Candidates c : s.keptAbove(layer, thresholds)) {
              b.addCandidates(candidates(c));
            }
            return b.build();
          }
          int points = request.getSummaryPoints();
          if (points < 0) {
            throw new IllegalArgumentException("summary_points must be >= 0, got " + points);
          }
          int[] positions =
              request.getPositionsList().stream().mapToInt(Integer::intValue).toArray();
          TopK.Candidates[] local =
              s.score(
                  layer,
                  Tensors.floats(request.getIndexQueries(), -1),
                  Tensors.floats(request.getIndexWeights(), -1),
                  positions,
                  request.getTopK());
          if (points == 0) {
            for (TopK.Candidates c : local) {
              b.addCandidates(candidates(c));
            }
            return b.build();
          }
          // round 1: each list's size and sampled scores; the lists wait for the thresholds
          s.keep(layer, local);
          for (TopK.Candidates c : local) {
            Candidates.Builder cb = Candidates.newBuilder().setCount(c.size());
            for (float x : TopK.summary(c, points)) {
              cb.addScores(x);
            }
            b.addCandidates(cb);
          }
          return b.build();
        });
  }

  private static Candidates.Builder candidates(TopK.Candidates c) {
    Candidates.Builder cb = Candidates.newBuilder();
    for (int i = 0; i < c.size(); i++) {
      cb.addScores(c.scores()[i]).addPositions(c.positions()[i]);
    }
    return cb;
  }

  @Override
  public void release(ReleaseRequest request, StreamObserver<ReleaseResponse> observer) {
    answer(
        observer,
        "release",
        request.getTag(),
        () -> {
          checkEpoch(request.getTag());
          return ReleaseResponse.newBuilder()
              .setFreedTokens(engine.release(request.getTag().getRequestId()))
              .build();
        });
  }
}
