package dev.longctx.worker.coordinator;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;
import dev.longctx.engine.attention.IndexerSource;
import dev.longctx.engine.attention.LightningIndexer;
import dev.longctx.engine.attention.SequenceAttention;
import dev.longctx.engine.attention.TopK;
import dev.longctx.engine.kernel.Partial;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.proto.shard.v1.AdvanceRequest;
import dev.longctx.proto.shard.v1.AdvanceResponse;
import dev.longctx.proto.shard.v1.AttendRequest;
import dev.longctx.proto.shard.v1.AttendResponse;
import dev.longctx.proto.shard.v1.CallTag;
import dev.longctx.proto.shard.v1.Candidates;
import dev.longctx.proto.shard.v1.ForwardRequest;
import dev.longctx.proto.shard.v1.LogitsRequest;
import dev.longctx.proto.shard.v1.LogitsResponse;
import dev.longctx.proto.shard.v1.OpenRequest;
import dev.longctx.proto.shard.v1.OpenResponse;
import dev.longctx.proto.shard.v1.ReleaseRequest;
import dev.longctx.proto.shard.v1.ScoreRequest;
import dev.longctx.proto.shard.v1.ScoreResponse;
import dev.longctx.worker.shard.Tensors;
import dev.longctx.worker.telemetry.Telemetry;
import io.grpc.StatusRuntimeException;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;
import org.jboss.logging.Logger;

/**
 * Runs sequences spread over shards by sequence range, dense attention (DESIGN.md §4): each step's
 * tokens are split into contiguous ranges over the request's shards; per layer every shard advances
 * its own tokens and returns their queries, every shard attends all the step's queries over its own
 * keys, and the coordinator merges the partials by log-sum-exp (ALGORITHMS.md §4.2) and sends each
 * token's attention output back to its owner with the next advance. The shard holding the last
 * token returns the logits.
 *
 * <p>Shards per request: ceil(prompt tokens / minTokensPerShard), at most maxShardsPerRequest and
 * the pool. Decode tokens go to the request's shards in turn, so KV stays balanced.
 */
public final class ShardedBackend implements ForwardBackend {

  private static final Logger LOG = Logger.getLogger(ShardedBackend.class);

  /** Deadline of the Describe that tells a live shard from a dead one during recovery. */
  static final long LIVENESS_TIMEOUT_MILLIS = 5000;

  /** Rebuilds one request may go through before its stream fails. */
  static final int MAX_RECOVERIES = 8;

  private final ShardDirectory directory;
  private final LlamaConfig config;
  private final int minTokensPerShard;
  private final int maxShardsPerRequest;
  private final AttentionPolicy policy;

  /**
   * Whether a model-file lightning indexer is selected here from every key (replicated index-K)
   * instead of scored by the shards (ALGORITHMS.md §4.5: the same selection, P× the indexer work
   * here, no candidate exchange); for tests comparing the two.
   */
  private volatile boolean replicatedIndexKeys;

  /**
   * Sampled scores per local list in the threshold exchange: the candidates sent beyond k are about
   * P·k / this many a query, the summaries P·this·4 bytes.
   */
  public static final int SUMMARY_POINTS = 32;

  private final Placement placement;
  private final ExecutorService calls = Executors.newVirtualThreadPerTaskExecutor();
  private int nextFirstShard;

  /** How a step's tokens are split over the request's shards (ALGORITHMS.md §4.3). */
  public enum Placement {
    /** Shard r owns the r-th contiguous range of every step. */
    CONTIGUOUS,
    /**
     * The step is cut into 2P chunks and shard r owns chunks r and 2P−1−r, so under the causal mask
     * every shard gets about the same attention work (§4.3 zig-zag).
     */
    ZIGZAG;

    public static Placement parse(String s) {
      return switch (s.toLowerCase(java.util.Locale.ROOT)) {
        case "contiguous" -> CONTIGUOUS;
        case "zigzag", "zig-zag" -> ZIGZAG;
        default ->
            throw new IllegalArgumentException(
                "unknown placement '" + s + "' (expected contiguous or zigzag)");
      };
    }
  }

  public ShardedBackend(
      List<ShardClient> shards,
      LlamaConfig config,
      int minTokensPerShard,
      int maxShardsPerRequest) {
    this(
        shards,
        config,
        minTokensPerShard,
        maxShardsPerRequest,
        AttentionPolicy.dense(),
        Placement.CONTIGUOUS);
  }

  /**
   * @param policy every request's attention: dense, SelfExtend, or a sparse method (indexer top-k,
   *     block top-k, with or without SelfExtend positions), whose keys the coordinator selects
   * @param placement how steps are split over a request's shards
   */
  public ShardedBackend(
      List<ShardClient> shards,
      LlamaConfig config,
      int minTokensPerShard,
      int maxShardsPerRequest,
      AttentionPolicy policy,
      Placement placement) {
    this(
        ShardDirectory.fixed(nonEmpty(shards)),
        config,
        minTokensPerShard,
        maxShardsPerRequest,
        policy,
        placement);
  }

  private static List<ShardClient> nonEmpty(List<ShardClient> shards) {
    if (shards.isEmpty()) {
      throw new IllegalArgumentException("a sharded backend needs at least one shard");
    }
    return shards;
  }

  /**
   * Requests placed on the shards {@code directory} holds at the time (it may grow and shrink with
   * the pool).
   */
  public ShardedBackend(
      ShardDirectory directory,
      LlamaConfig config,
      int minTokensPerShard,
      int maxShardsPerRequest,
      AttentionPolicy policy,
      Placement placement) {
    this.policy = policy;
    this.placement = placement;
    this.directory = directory;
    this.config = config;
    this.minTokensPerShard = Math.max(1, minTokensPerShard);
    this.maxShardsPerRequest = Math.max(1, maxShardsPerRequest);
  }

  /** The shards placement uses now. */
  public List<ShardClient> shards() {
    return directory.current();
  }

  public ShardDirectory directory() {
    return directory;
  }

  @Override
  public int shardCount() {
    return shards().size();
  }

  /** Selects model-file indexer keys here from every key, for requests opened from now on. */
  void replicateIndexKeys(boolean replicated) {
    this.replicatedIndexKeys = replicated;
  }

  /** Whether the coordinator selects keys for this backend's requests (a sparse method). */
  private boolean sparse() {
    return policy instanceof AttentionPolicy.IndexerTopK
        || policy instanceof AttentionPolicy.BlockTopK;
  }

  /** Shards a prompt of {@code promptTokens} is spread over. */
  public int shardsFor(int promptTokens) {
    int want = (promptTokens + minTokensPerShard - 1) / minTokensPerShard;
    return Math.max(1, Math.min(want, Math.min(maxShardsPerRequest, shards().size())));
  }

  @Override
  public SequenceRunner open(String requestId, int capacity, int promptTokens) {
    Span span = Telemetry.get().startSpan("longctx.placement");
    try (Scope ignored = span.makeCurrent()) {
      SequenceRunner runner = place(requestId, capacity, promptTokens);
      span.setAttribute("longctx.shards", runner.shardsUsed());
      return runner;
    } catch (RuntimeException e) {
      Telemetry.fail(span, e);
      throw e;
    } finally {
      span.end();
    }
  }

  private SequenceRunner place(String requestId, int capacity, int promptTokens) {
    Runner runner = new Runner(requestId, capacity);
    int p = shardsFor(promptTokens);
    List<ShardClient> pool = shards();
    if (pool.isEmpty()) {
      throw io.grpc.Status.UNAVAILABLE
          .withDescription("no shard is in the pool; cannot place request " + requestId)
          .asRuntimeException();
    }
    for (int attempt = 0; ; attempt++) {
      try {
        runner.place(choose(Math.min(p, pool.size()), pool));
        return runner;
      } catch (StatusRuntimeException e) {
        if (!recoverable(e) || attempt >= MAX_RECOVERIES) {
          throw e;
        }
        LOG.warnf(
            "request %s: placement failed (%s); placing on the shards answering",
            requestId, e.getStatus());
        pool = live();
        if (pool.isEmpty()) {
          throw io.grpc.Status.UNAVAILABLE
              .withDescription("no shard answers; cannot place request " + requestId)
              .asRuntimeException();
        }
      }
    }
  }

  /** The {@code p} shards of {@code pool} with the most free KV capacity. */
  private synchronized List<ShardClient> choose(int p, List<ShardClient> pool) {
    // Candidates in round-robin order from one further along each time (spreads ties), then the
    // ones with the most free KV first (capacity − reserved, from a fresh Describe; DESIGN.md §4).
    int first = nextFirstShard % pool.size();
    nextFirstShard = (nextFirstShard + 1) % Math.max(1, pool.size());
    List<ShardClient> order = new ArrayList<>(pool.size());
    java.util.Map<ShardClient, Long> free = new java.util.HashMap<>();
    for (int i = 0; i < pool.size(); i++) {
      ShardClient c = pool.get((first + i) % pool.size());
      try {
        var d = c.describe(LIVENESS_TIMEOUT_MILLIS);
        free.put(c, d.getCapacityTokens() - d.getReservedTokens());
        order.add(c);
      } catch (StatusRuntimeException e) {
        LOG.warnf("shard %s is not answering: %s; not placing on it", c.address(), e.getStatus());
      }
    }
    if (order.isEmpty()) {
      throw io.grpc.Status.UNAVAILABLE
          .withDescription("no shard of " + pool.size() + " answers")
          .asRuntimeException();
    }
    order.sort(java.util.Comparator.comparingLong((ShardClient c) -> free.get(c)).reversed());
    return new ArrayList<>(order.subList(0, Math.min(p, order.size())));
  }

  /** The shards that answer Describe now (with their current epochs). */
  private List<ShardClient> live() {
    List<ShardClient> out = new ArrayList<>();
    for (ShardClient c : shards()) {
      try {
        c.describe(LIVENESS_TIMEOUT_MILLIS);
        out.add(c);
      } catch (StatusRuntimeException e) {
        LOG.warnf("shard %s is not answering: %s", c.address(), e.getStatus());
      }
    }
    return out;
  }

  /** Failures after which the request's KV is rebuilt on the shards still answering. */
  static boolean recoverable(StatusRuntimeException e) {
    return switch (e.getStatus().getCode()) {
      case UNAVAILABLE, DEADLINE_EXCEEDED, FAILED_PRECONDITION, NOT_FOUND, ABORTED -> true;
      default -> false;
    };
  }

  @Override
  public void close() {
    calls.shutdownNow();
    directory.close();
  }

  /** One request's sequence over its shards. */
  final class Runner implements SequenceRunner {
    private final String requestId;
    private final int capacity;
    private List<ShardClient> mine = List.of();
    private long[] epochs = new long[0];
    private int length;
    private int decodeTurn;

    /**
     * Sparse methods: the selector state of the whole sequence, kept here (ALGORITHMS.md §4.5
     * "replicated index-K"): the shards send each step's keys, the coordinator selects every
     * query's keys with the engine's own selection and sends each shard the selected positions it
     * holds, so the selection is the single-process one.
     */
    private SequenceAttention selector;

    /**
     * A model-file lightning indexer spread over several shards: the shards keep the indexer keys
     * of their positions and score every query against them (Score); the coordinator merges their
     * local top-k lists (ALGORITHMS.md §4.5, exact) and keeps no keys.
     */
    private boolean shardsScore;

    /** Which of {@code mine} holds each position (for sending shards only their selections). */
    private int[] ownerOf = new int[64];

    private boolean closed;
    private int recoveries;

    /** Every token fed so far: what a rebuild feeds again. */
    private int[] fed = new int[16];

    private int fedCount;

    Runner(String requestId, int capacity) {
      this.requestId = requestId;
      this.capacity = capacity;
    }

    /** Opens the request on {@code shards} (closing nothing; the caller released the old ones). */
    void place(List<ShardClient> shards) {
      mine = List.copyOf(shards);
      epochs = new long[mine.size()];
      for (int r = 0; r < mine.size(); r++) {
        epochs[r] = mine.get(r).described().getEpoch();
      }
      int p = mine.size();
      // Every step is split evenly (sizes differ by at most one) and decode tokens go
      // round-robin, so a shard holds at most ceil(capacity / p) plus one per step split.
      int steps = (capacity + GenerationTask.PREFILL_STEP - 1) / GenerationTask.PREFILL_STEP;
      int perShard = Math.min(capacity, (capacity + p - 1) / p + 2 * steps + 1);
      selector = null;
      shardsScore = false;
      OpenRequest.Builder open = OpenRequest.newBuilder().setCapacity(perShard);
      open.setAttentionMethod(policy.name());
      switch (policy) {
        case AttentionPolicy.IndexerTopK t -> {
          open.setTopK(t.k()).setDenseBelow(t.denseBelowTokens()).setIndexer(t.indexer().name());
          if (t.indexer() instanceof IndexerSource.IndexerFile f) {
            open.setIndexerId(f.id()); // the shards must hold the same file
          }
        }
        case AttentionPolicy.BlockTopK b ->
            open.setBlockSize(b.blockSize())
                .setTopBlocks(b.topBlocks())
                .setBlockScore(b.score().name().toLowerCase(java.util.Locale.ROOT));
        default -> {}
      }
      if (policy.positions() instanceof SelfExtend se) {
        open.setGroupSize(se.groupSize())
            .setNeighborWindow(se.neighborWindow())
            .setSelfExtendMode(se.mode().name().toLowerCase(java.util.Locale.ROOT));
      }
      List<OpenResponse> opened;
      try {
        opened = parallel(r -> mine.get(r).stub().open(open.clone().setTag(tag(r, -1)).build()));
      } catch (RuntimeException e) {
        releaseAll();
        throw e;
      }
      // Sparse methods: one shard holding the request selects in Forward itself (on its device,
      // for a GPU shard); else a model-file indexer is scored by the shards (distributed top-k),
      // and the other selectors run here (replicated index-K, below).
      boolean shardSelects = p == 1 && opened.getFirst().getForwardSelects();
      if (sparse() && !shardSelects) {
        if (policy.lightningIndexer() != null && !replicatedIndexKeys) {
          shardsScore = true;
        } else {
          selector = new SequenceAttention(policy, config, capacity);
        }
      }
    }

    /** Runs a step; if a shard fails, rebuilds the KV on the shards left and runs it again. */
    private float[] run(int[] tokens, boolean decode, boolean wantLogits) {
      Span span =
          Telemetry.get()
              .startSpan(decode ? "longctx.decode.step" : "longctx.prefill.step")
              .setAttribute("longctx.tokens", tokens.length)
              .setAttribute("longctx.position", length);
      try (Scope ignored = span.makeCurrent()) {
        return runStep(tokens, decode, wantLogits, span);
      } catch (RuntimeException e) {
        Telemetry.fail(span, e);
        throw e;
      } finally {
        span.end();
      }
    }

    private float[] runStep(int[] tokens, boolean decode, boolean wantLogits, Span span) {
      boolean rebuild = false;
      while (true) {
        try {
          if (rebuild) {
            rebuild();
            rebuild = false;
          }
          float[] logits = decode ? decodeStep(tokens[0]) : prefillStep(tokens, wantLogits);
          record(tokens);
          return logits;
        } catch (StatusRuntimeException e) {
          if (!recoverable(e) || ++recoveries > MAX_RECOVERIES) {
            throw e;
          }
          LOG.warnf(
              "request %s: shard failure (%s); rebuilding %d tokens of KV on the shards left",
              requestId, e.getStatus(), length);
          span.addEvent(
              "shard failure; rebuilding KV",
              io.opentelemetry.api.common.Attributes.of(
                  io.opentelemetry.api.common.AttributeKey.stringKey("grpc.status"),
                  e.getStatus().getCode().name()));
          rebuild = true;
        }
      }
    }

    private void record(int[] tokens) {
      if (fedCount + tokens.length > fed.length) {
        fed = java.util.Arrays.copyOf(fed, Math.max(fedCount + tokens.length, fed.length * 2));
      }
      System.arraycopy(tokens, 0, fed, fedCount, tokens.length);
      fedCount += tokens.length;
    }

    /** Releases what is left, places the request on the live shards, feeds its tokens again. */
    private void rebuild() {
      releaseAll();
      List<ShardClient> live = live();
      if (live.isEmpty()) {
        throw io.grpc.Status.UNAVAILABLE
            .withDescription("no shard is left to rebuild request " + requestId + " on")
            .asRuntimeException();
      }
      int[] tokens = java.util.Arrays.copyOf(fed, fedCount);
      int p = Math.min(mine.size(), live.size());
      place(choose(p, live));
      length = 0;
      decodeTurn = 0;
      for (int off = 0; off < tokens.length; off += GenerationTask.PREFILL_STEP) {
        int n = Math.min(GenerationTask.PREFILL_STEP, tokens.length - off);
        prefillStep(java.util.Arrays.copyOfRange(tokens, off, off + n), false);
      }
    }

    private void releaseAll() {
      for (int r = 0; r < mine.size(); r++) {
        try {
          mine.get(r).stub().release(ReleaseRequest.newBuilder().setTag(tag(r, -1)).build());
        } catch (RuntimeException e) {
          LOG.debugf(
              "release of %s on %s failed: %s", requestId, mine.get(r).address(), e.getMessage());
        }
      }
    }

    CallTag tag(int r, int layer) {
      return CallTag.newBuilder()
          .setRequestId(requestId)
          .setLayer(layer)
          .setEpoch(epochs[r])
          .build();
    }

    /** {@link #parallel(IntFunction)} as the span {@code phase} (null: no span of its own). */
    <T> List<T> parallel(Span phase, IntFunction<T> call) {
      if (phase == null) {
        return parallel(call);
      }
      try (Scope ignored = phase.makeCurrent()) {
        return parallel(call);
      } catch (RuntimeException e) {
        Telemetry.fail(phase, e);
        throw e;
      } finally {
        phase.end();
      }
    }

    /** Calls every shard of the request at once (each call in the caller's trace context). */
    <T> List<T> parallel(IntFunction<T> call) {
      int p = mine.size();
      if (p == 1) {
        return List.of(call.apply(0));
      }
      List<Future<T>> futures = new ArrayList<>(p);
      for (int r = 0; r < p; r++) {
        int shard = r;
        futures.add(calls.submit(Context.current().wrap(() -> call.apply(shard))));
      }
      List<T> out = new ArrayList<>(p);
      for (Future<T> f : futures) {
        try {
          out.add(f.get());
        } catch (ExecutionException e) {
          if (e.getCause() instanceof RuntimeException re) {
            throw re;
          }
          throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted", e);
        }
      }
      return out;
    }

    @Override
    public float[] prefill(int[] tokens) {
      return run(tokens, false, true);
    }

    @Override
    public float[] prefill(int[] tokens, boolean wantLogits) {
      return run(tokens, false, wantLogits);
    }

    @Override
    public float[] decode(int token) {
      return run(new int[] {token}, true, true);
    }

    /** A prompt chunk; the logits of its last row when {@code wantLogits}, else none (empty). */
    private float[] prefillStep(int[] tokens, boolean wantLogits) {
      int n = tokens.length;
      return step(
          tokens, split(n, mine.size(), placement), wantLogits ? new int[] {n - 1} : new int[0]);
    }

    /** Feeds a prompt chunk and returns the logits after every one of its tokens, [n, vocab]. */
    float[] prefillAllLogits(int[] tokens) {
      int n = tokens.length;
      int[] rows = new int[n];
      for (int i = 0; i < n; i++) {
        rows[i] = i;
      }
      float[] logits = step(tokens, split(n, mine.size(), placement), rows);
      record(tokens);
      return logits;
    }

    private float[] decodeStep(int token) {
      int p = mine.size();
      int owner = decodeTurn++ % p;
      int[][] owned = new int[p][0];
      owned[owner] = new int[] {0};
      return step(new int[] {token}, owned, new int[] {0});
    }

    /**
     * One forward step: shard r owns the step rows {@code owned[r]} (ascending). Returns the logits
     * after the step rows {@code want} (ascending), [want.length, vocab].
     */
    private float[] step(int[] tokens, int[][] owned, int[] want) {
      int p = mine.size();
      int n = tokens.length;
      int vocab = config.vocabSize();
      if (p == 1 && selector == null && !shardsScore) {
        // One shard holds the request (and selects its keys, for a sparse method): a whole step
        // in one call.
        ForwardRequest.Builder fb =
            ForwardRequest.newBuilder().setTag(tag(0, -1)).setSkipLogits(want.length == 0);
        if (!(want.length == 1 && want[0] == n - 1)) {
          for (int row : want) {
            fb.addLogitRows(row);
          }
        }
        for (int i = 0; i < n; i++) {
          fb.addTokenIds(tokens[i]).addPositions(length + i);
        }
        LogitsResponse response = mine.get(0).stub().forward(fb.build());
        float[] logits =
            want.length == 0
                ? new float[0]
                : Tensors.floats(response.getLogits(), (long) want.length * vocab);
        length += n;
        return logits;
      }
      int qDim = config.queryDim();
      int heads = config.heads();
      int headDim = config.headDim();
      boolean grouped = policy.positions() != null;
      boolean input = selector != null && selector.needsLayerInput();
      int kvDim = config.kvDim();
      int start = length;
      int[] positions = new int[n];
      for (int i = 0; i < n; i++) {
        positions[i] = start + i;
      }
      if (selector != null) {
        selector.reserve(start + n);
      }
      if (selector != null || shardsScore) {
        if (ownerOf.length < start + n) {
          ownerOf = java.util.Arrays.copyOf(ownerOf, Math.max(start + n, 2 * ownerOf.length));
        }
        for (int r = 0; r < p; r++) {
          for (int i : owned[r]) {
            ownerOf[start + i] = r;
          }
        }
      }
      float[][] attention = new float[p][];
      boolean traceLayers = n > 1; // per-layer spans for prefill steps, not for every decode token
      for (int layer = 0; layer < config.layers(); layer++) {
        int l = layer;
        // 1. Advance: owners finish layer l-1 and project layer l; collect the queries.
        List<AdvanceResponse> advanced =
            parallel(
                traceLayers ? layerSpan("longctx.prefill.advance", l) : null,
                r -> {
                  if (owned[r].length == 0) {
                    return null;
                  }
                  AdvanceRequest.Builder b =
                      AdvanceRequest.newBuilder()
                          .setTag(tag(r, l))
                          .setReturnKeys(selector != null)
                          .setReturnIndexQueries(shardsScore)
                          .setReturnNormedInput(input);
                  if (l == 0) {
                    for (int i : owned[r]) {
                      b.addTokenIds(tokens[i]).addPositions(positions[i]);
                    }
                  } else {
                    b.setAttentionOutput(Tensors.f32(attention[r], owned[r].length, qDim));
                  }
                  return mine.get(r).stub().advance(b.build());
                });
        float[] q = new float[n * qDim];
        float[] qg = grouped ? new float[n * qDim] : null;
        for (int r = 0; r < p; r++) {
          if (advanced.get(r) != null) {
            long size = (long) owned[r].length * qDim;
            scatterRows(Tensors.floats(advanced.get(r).getQueries(), size), owned[r], qDim, q);
            if (grouped) {
              scatterRows(
                  Tensors.floats(advanced.get(r).getGroupQueries(), size), owned[r], qDim, qg);
            }
          }
        }
        // Sparse: index the step's keys and select every query's keys (ALGORITHMS.md §4.5).
        int[][] selection = null;
        if (selector != null) {
          float[] keys = new float[n * kvDim];
          float[] groupKeys = grouped ? new float[n * kvDim] : null;
          float[] x = input ? new float[n * config.dim()] : null;
          for (int r = 0; r < p; r++) {
            AdvanceResponse a = advanced.get(r);
            if (a == null) {
              continue;
            }
            long rows = owned[r].length;
            scatterRows(Tensors.floats(a.getKeys(), rows * kvDim), owned[r], kvDim, keys);
            if (grouped) {
              scatterRows(
                  Tensors.floats(a.getGroupKeys(), rows * kvDim), owned[r], kvDim, groupKeys);
            }
            if (input) {
              scatterRows(
                  Tensors.floats(a.getNormedInput(), rows * config.dim()),
                  owned[r],
                  config.dim(),
                  x);
            }
          }
          selector.append(l, start, n, keys, groupKeys, x);
          selection = selector.select(l, start, n, q, qg, x);
        } else if (shardsScore) {
          selection = scoreOnShards(l, advanced, owned, positions, traceLayers);
        }
        // 2. Attend: every shard, all queries, its own keys (or the selected ones it holds).
        AttendRequest.Builder ab = AttendRequest.newBuilder().setQueries(Tensors.f32(q, n, qDim));
        if (grouped) {
          ab.setGroupQueries(Tensors.f32(qg, n, qDim));
        }
        for (int pos : positions) {
          ab.addPositions(pos);
        }
        AttendRequest base = ab.build();
        int[][] chosen = selection;
        List<AttendResponse> partials =
            parallel(
                traceLayers ? layerSpan("longctx.prefill.attend", l) : null,
                r -> {
                  AttendRequest.Builder req = base.toBuilder().setTag(tag(r, l));
                  if (chosen != null) {
                    addSelection(req, chosen, n, r);
                  }
                  return mine.get(r).stub().attend(req.build());
                });
        // 3. Merge by LSE, per query and head.
        float[][] outs = new float[p][];
        float[][] lses = new float[p][];
        for (int r = 0; r < p; r++) {
          outs[r] = Tensors.floats(partials.get(r).getOutput(), (long) n * qDim);
          lses[r] = Tensors.floats(partials.get(r).getLse(), (long) n * heads);
        }
        float[] merged = mergeQueries(outs, lses, n, heads, headDim);
        for (int r = 0; r < p; r++) {
          attention[r] = gatherRows(merged, owned[r], qDim);
        }
      }
      // 4. Logits: each owner of a wanted row finishes the last layer and returns those rows.
      int[] wantIndex = new int[n];
      java.util.Arrays.fill(wantIndex, -1);
      for (int i = 0; i < want.length; i++) {
        wantIndex[want[i]] = i;
      }
      int[][] rowsOf = new int[p][];
      for (int r = 0; r < p; r++) {
        int[] mineRows = owned[r];
        rowsOf[r] =
            java.util.stream.IntStream.range(0, mineRows.length)
                .filter(k -> wantIndex[mineRows[k]] >= 0)
                .toArray();
      }
      List<float[]> shardLogits =
          parallel(
              r -> {
                if (rowsOf[r].length == 0) {
                  return null;
                }
                LogitsRequest.Builder lb =
                    LogitsRequest.newBuilder()
                        .setTag(tag(r, config.layers() - 1))
                        .setAttentionOutput(Tensors.f32(attention[r], owned[r].length, qDim));
                for (int k : rowsOf[r]) {
                  lb.addRows(k);
                }
                return Tensors.floats(
                    mine.get(r).stub().logits(lb.build()).getLogits(),
                    (long) rowsOf[r].length * vocab);
              });
      float[] logits = new float[want.length * vocab];
      for (int r = 0; r < p; r++) {
        for (int k = 0; k < rowsOf[r].length; k++) {
          int w = wantIndex[owned[r][rowsOf[r][k]]];
          System.arraycopy(shardLogits.get(r), k * vocab, logits, w * vocab, vocab);
        }
      }
      length += n;
      return logits;
    }

    /**
     * Indexer top-k scored by the shards (ALGORITHMS.md §4.5): the step's queries past the dense
     * bound go to every shard with their indexer queries and weights (from their owners' Advance);
     * each shard returns its local top-k over the indexer keys it holds (for several queries, only
     * the part of it that can matter: {@link #scoreByThreshold}), and the exact P-way merge of the
     * lists is the query's global top-k, one set for all its heads. Entries as {@link
     * SequenceAttention#select}'s: null where the query attends every causal key (at most k of
     * them, or below the dense bound), as the engine's own selection decides.
     */
    private int[][] scoreOnShards(
        int l, List<AdvanceResponse> advanced, int[][] owned, int[] positions, boolean trace) {
      var t = (AttentionPolicy.IndexerTopK) policy;
      LightningIndexer ix = policy.lightningIndexer();
      int n = positions.length;
      int kvHeads = config.kvHeads();
      int width = ix.heads() * ix.headDim();
      int[][] selection = new int[n * kvHeads][];
      int[] sparse =
          java.util.stream.IntStream.range(0, n)
              .filter(i -> positions[i] + 1 > t.k() && positions[i] >= t.denseBelowTokens())
              .toArray();
      if (sparse.length == 0) {
        return selection;
      }
      float[] iq = new float[n * width];
      float[] iw = new float[n * ix.heads()];
      for (int r = 0; r < mine.size(); r++) {
        AdvanceResponse a = advanced.get(r);
        if (a != null) {
          long rows = owned[r].length;
          scatterRows(Tensors.floats(a.getIndexQueries(), rows * width), owned[r], width, iq);
          scatterRows(
              Tensors.floats(a.getIndexWeights(), rows * ix.heads()), owned[r], ix.heads(), iw);
        }
      }
      int m = sparse.length;
      ScoreRequest.Builder sb =
          ScoreRequest.newBuilder()
              .setTopK(t.k())
              .setIndexQueries(Tensors.f32(gatherRows(iq, sparse, width), m, width))
              .setIndexWeights(Tensors.f32(gatherRows(iw, sparse, ix.heads()), m, ix.heads()));
      for (int i : sparse) {
        sb.addPositions(positions[i]);
      }
      List<ScoreResponse> answers;
      if (m == 1) {
        ScoreRequest base = sb.build();
        answers =
            parallel(
                trace ? layerSpan("longctx.prefill.score", l) : null,
                r -> mine.get(r).stub().score(base.toBuilder().setTag(tag(r, l)).build()));
        checkAnswers(answers, m);
      } else {
        answers = scoreByThreshold(l, sb.setSummaryPoints(SUMMARY_POINTS).build(), m, trace);
      }
      List<TopK.Candidates> lists = new ArrayList<>(answers.size());
      for (int j = 0; j < m; j++) {
        lists.clear();
        for (ScoreResponse answer : answers) {
          Candidates c = answer.getCandidates(j);
          lists.add(
              new TopK.Candidates(
                  floats(c), c.getPositionsList().stream().mapToInt(Integer::intValue).toArray()));
        }
        int[] chosen = TopK.merge(lists, t.k()).positions();
        java.util.Arrays.sort(chosen);
        for (int g = 0; g < kvHeads; g++) {
          selection[sparse[j] * kvHeads + g] = chosen;
        }
      }
      return selection;
    }

    /**
     * The threshold exchange (ALGORITHMS.md §4.5 "optional bandwidth reduction") for a step's m > 1
     * sparse queries: every shard sends its local lists' sizes and sampled scores ({@code summary},
     * round 1, keeping the lists); per query, {@link TopK#threshold} finds a score τ whose entries
     * at or above it hold the global top-k; round 2 sends the τs and every shard answers its lists'
     * entries ≥ τ — about k + P·k/{@value #SUMMARY_POINTS} candidates a query instead of P·k, for
     * one more round trip. The merge of the answers is the same top-k as the full lists'.
     */
    private List<ScoreResponse> scoreByThreshold(
        int l, ScoreRequest summary, int m, boolean trace) {
      List<ScoreResponse> sampled =
          parallel(
              trace ? layerSpan("longctx.prefill.score", l) : null,
              r -> mine.get(r).stub().score(summary.toBuilder().setTag(tag(r, l)).build()));
      checkAnswers(sampled, m);
      int p = mine.size();
      ScoreRequest.Builder thresholds = ScoreRequest.newBuilder();
      List<float[]> summaries = new ArrayList<>(p);
      int[] sizes = new int[p];
      for (int j = 0; j < m; j++) {
        summaries.clear();
        for (int r = 0; r < p; r++) {
          Candidates c = sampled.get(r).getCandidates(j);
          sizes[r] = c.getCount();
          summaries.add(floats(c));
        }
        thresholds.addThresholds(
            TopK.threshold(summaries, sizes, summary.getSummaryPoints(), summary.getTopK()));
      }
      ScoreRequest second = thresholds.build();
      List<ScoreResponse> answers =
          parallel(
              trace ? layerSpan("longctx.prefill.score.above", l) : null,
              r -> mine.get(r).stub().score(second.toBuilder().setTag(tag(r, l)).build()));
      checkAnswers(answers, m);
      return answers;
    }

    /** Every shard answered all m queries. */
    private void checkAnswers(List<ScoreResponse> answers, int m) {
      for (int r = 0; r < answers.size(); r++) {
        if (answers.get(r).getCandidatesCount() != m) {
          throw new IllegalStateException(
              "shard "
                  + mine.get(r).address()
                  + " scored "
                  + answers.get(r).getCandidatesCount()
                  + " of "
                  + m
                  + " queries");
        }
      }
    }

    private static float[] floats(Candidates c) {
      float[] out = new float[c.getScoresCount()];
      for (int i = 0; i < out.length; i++) {
        out[i] = c.getScores(i);
      }
      return out;
    }

    /**
     * Adds the selection for shard {@code r}: per query (one list serves all its heads when the
     * method shares it, as indexer top-k does) or per query and KV head, only the positions {@code
     * r} holds; a null entry (the query attends every causal key) travels as {@code all}.
     */
    private void addSelection(AttendRequest.Builder req, int[][] selection, int n, int r) {
      int kvHeads = config.kvHeads();
      boolean shared = true;
      for (int t = 0; t < n && shared; t++) {
        for (int g = 1; g < kvHeads; g++) {
          if (selection[t * kvHeads + g] != selection[t * kvHeads]) {
            shared = false;
            break;
          }
        }
      }
      int stride = shared ? kvHeads : 1;
      for (int u = 0; u < selection.length; u += stride) {
        int[] list = selection[u];
        Candidates.Builder c = Candidates.newBuilder();
        if (list == null) {
          c.setAll(true);
        } else {
          for (int pos : list) {
            if (ownerOf[pos] == r) {
              c.addPositions(pos);
            }
          }
        }
        req.addSelected(c);
      }
    }

    /** A span of one layer phase of a prefill step (its shard calls become its children). */
    private Span layerSpan(String name, int layer) {
      return Telemetry.get().startSpan(name).setAttribute("longctx.layer", layer);
    }

    @Override
    public int length() {
      return closed ? 0 : length;
    }

    @Override
    public int shardsUsed() {
      return mine.size();
    }

    @Override
    public void close() {
      if (closed) {
        return;
      }
      closed = true;
      for (int r = 0; r < mine.size(); r++) {
        try {
          mine.get(r).stub().release(ReleaseRequest.newBuilder().setTag(tag(r, -1)).build());
        } catch (RuntimeException e) {
          LOG.warnf(
              "release of %s on %s failed: %s", requestId, mine.get(r).address(), e.getMessage());
        }
      }
    }
  }

  /**
   * The step rows each of {@code p} shards owns for a step of {@code n} tokens: contiguous ranges
   * of sizes differing by at most one, or zig-zag chunks r and 2p−1−r (ALGORITHMS.md §4.3).
   */
  static int[][] split(int n, int p, Placement placement) {
    int[][] owned = new int[p][];
    if (placement == Placement.CONTIGUOUS || p == 1) {
      for (int r = 0; r < p; r++) {
        int from = (int) ((long) n * r / p);
        int to = (int) ((long) n * (r + 1) / p);
        owned[r] = java.util.stream.IntStream.range(from, to).toArray();
      }
      return owned;
    }
    int chunks = 2 * p;
    for (int r = 0; r < p; r++) {
      int a0 = (int) ((long) n * r / chunks);
      int a1 = (int) ((long) n * (r + 1) / chunks);
      int b0 = (int) ((long) n * (chunks - 1 - r) / chunks);
      int b1 = (int) ((long) n * (chunks - r) / chunks);
      owned[r] =
          java.util.stream.IntStream.concat(
                  java.util.stream.IntStream.range(a0, a1),
                  java.util.stream.IntStream.range(b0, b1))
              .toArray();
    }
    return owned;
  }

  private static void scatterRows(float[] src, int[] rows, int width, float[] dst) {
    for (int k = 0; k < rows.length; k++) {
      System.arraycopy(src, k * width, dst, rows[k] * width, width);
    }
  }

  private static float[] gatherRows(float[] src, int[] rows, int width) {
    float[] out = new float[rows.length * width];
    for (int k = 0; k < rows.length; k++) {
      System.arraycopy(src, rows[k] * width, out, k * width, width);
    }
    return out;
  }

  /** Merges P partials of n queries × heads (ALGORITHMS.md §4.2) with the engine's exact merge. */
  static float[] mergeQueries(float[][] outs, float[][] lses, int n, int heads, int headDim) {
    int p = outs.length;
    int qDim = heads * headDim;
    float[] merged = new float[n * qDim];
    if (p == 1) {
      System.arraycopy(outs[0], 0, merged, 0, merged.length);
      return merged;
    }
    float[][] o = new float[p][qDim];
    float[][] s = new float[p][heads];
    float[] out = new float[qDim];
    float[] lse = new float[heads];
    for (int i = 0; i < n; i++) {
      for (int r = 0; r < p; r++) {
        System.arraycopy(outs[r], i * qDim, o[r], 0, qDim);
        System.arraycopy(lses[r], i * heads, s[r], 0, heads);
      }
      Partial.mergeHeads(o, s, heads, headDim, out, lse);
      System.arraycopy(out, 0, merged, i * qDim, qDim);
    }
    return merged;
  }
}
