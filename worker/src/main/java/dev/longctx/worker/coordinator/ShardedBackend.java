package dev.longctx.worker.coordinator;

import dev.longctx.engine.kernel.Partial;
import dev.longctx.engine.model.LlamaConfig;
import dev.longctx.proto.shard.v1.AdvanceRequest;
import dev.longctx.proto.shard.v1.AttendRequest;
import dev.longctx.proto.shard.v1.AttendResponse;
import dev.longctx.proto.shard.v1.CallTag;
import dev.longctx.proto.shard.v1.ForwardRequest;
import dev.longctx.proto.shard.v1.LogitsRequest;
import dev.longctx.proto.shard.v1.OpenRequest;
import dev.longctx.proto.shard.v1.ReleaseRequest;
import dev.longctx.proto.shard.v1.Tensor;
import dev.longctx.worker.shard.Tensors;
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

  private final List<ShardClient> shards;
  private final LlamaConfig config;
  private final int minTokensPerShard;
  private final int maxShardsPerRequest;
  private final ExecutorService calls = Executors.newVirtualThreadPerTaskExecutor();
  private int nextFirstShard;

  public ShardedBackend(
      List<ShardClient> shards,
      LlamaConfig config,
      int minTokensPerShard,
      int maxShardsPerRequest) {
    if (shards.isEmpty()) {
      throw new IllegalArgumentException("a sharded backend needs at least one shard");
    }
    this.shards = List.copyOf(shards);
    this.config = config;
    this.minTokensPerShard = Math.max(1, minTokensPerShard);
    this.maxShardsPerRequest = Math.max(1, maxShardsPerRequest);
  }

  public List<ShardClient> shards() {
    return shards;
  }

  @Override
  public int shardCount() {
    return shards.size();
  }

  /** Shards a prompt of {@code promptTokens} is spread over. */
  public int shardsFor(int promptTokens) {
    int want = (promptTokens + minTokensPerShard - 1) / minTokensPerShard;
    return Math.max(1, Math.min(want, Math.min(maxShardsPerRequest, shards.size())));
  }

  @Override
  public synchronized SequenceRunner open(String requestId, int capacity, int promptTokens) {
    int p = shardsFor(promptTokens);
    List<ShardClient> mine = new ArrayList<>(p);
    for (int i = 0; i < p; i++) {
      mine.add(shards.get((nextFirstShard + i) % shards.size()));
    }
    nextFirstShard = (nextFirstShard + 1) % shards.size();
    Runner runner = new Runner(requestId, mine);
    // Every step is split evenly (sizes differ by at most one) and decode tokens go round-robin,
    // so a shard holds at most ceil(capacity / p) plus one per prefill chunk plus one.
    int chunks = (promptTokens + GenerationTask.PREFILL_STEP - 1) / GenerationTask.PREFILL_STEP;
    int perShard = Math.min(capacity, (capacity + p - 1) / p + chunks + 1);
    try {
      runner.parallel(
          r ->
              mine.get(r)
                  .stub()
                  .open(
                      OpenRequest.newBuilder()
                          .setTag(runner.tag(r, -1))
                          .setCapacity(perShard)
                          .setAttentionMethod("dense")
                          .build()));
    } catch (RuntimeException e) {
      runner.close();
      throw e;
    }
    return runner;
  }

  @Override
  public void close() {
    calls.shutdownNow();
    shards.forEach(ShardClient::close);
  }

  /** One request's sequence over its shards. */
  private final class Runner implements SequenceRunner {
    private final String requestId;
    private final List<ShardClient> mine;
    private final long[] epochs;
    private int length;
    private int decodeTurn;
    private boolean closed;

    Runner(String requestId, List<ShardClient> mine) {
      this.requestId = requestId;
      this.mine = mine;
      this.epochs = new long[mine.size()];
      for (int r = 0; r < mine.size(); r++) {
        epochs[r] = mine.get(r).described().getEpoch();
      }
    }

    CallTag tag(int r, int layer) {
      return CallTag.newBuilder()
          .setRequestId(requestId)
          .setLayer(layer)
          .setEpoch(epochs[r])
          .build();
    }

    <T> List<T> parallel(IntFunction<T> call) {
      int p = mine.size();
      if (p == 1) {
        return List.of(call.apply(0));
      }
      List<Future<T>> futures = new ArrayList<>(p);
      for (int r = 0; r < p; r++) {
        int shard = r;
        futures.add(calls.submit(() -> call.apply(shard)));
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
      int p = mine.size();
      int n = tokens.length;
      int[] from = new int[p + 1];
      for (int r = 0; r <= p; r++) {
        from[r] = (int) ((long) n * r / p);
      }
      return step(tokens, from);
    }

    @Override
    public float[] decode(int token) {
      int p = mine.size();
      int owner = decodeTurn++ % p;
      int[] from = new int[p + 1];
      for (int r = 0; r <= p; r++) {
        from[r] = r <= owner ? 0 : 1;
      }
      return step(new int[] {token}, from);
    }

    /** One forward step: shard r owns step tokens [from[r], from[r+1]). */
    private float[] step(int[] tokens, int[] from) {
      int p = mine.size();
      if (p == 1) {
        ForwardRequest.Builder fb = ForwardRequest.newBuilder().setTag(tag(0, -1));
        for (int i = 0; i < tokens.length; i++) {
          fb.addTokenIds(tokens[i]).addPositions(length + i);
        }
        float[] logits =
            Tensors.floats(mine.get(0).stub().forward(fb.build()).getLogits(), config.vocabSize());
        length += tokens.length;
        return logits;
      }
      int n = tokens.length;
      int qDim = config.queryDim();
      int heads = config.heads();
      int headDim = config.headDim();
      int start = length;
      int[] positions = new int[n];
      for (int i = 0; i < n; i++) {
        positions[i] = start + i;
      }
      float[][] attention = new float[p][];
      int lastOwner = -1;
      for (int r = 0; r < p; r++) {
        if (from[r + 1] > from[r]) {
          lastOwner = r;
        }
      }
      for (int layer = 0; layer < config.layers(); layer++) {
        int l = layer;
        // 1. Advance: owners finish layer l-1 and project layer l; collect the queries.
        List<Tensor> queries =
            parallel(
                r -> {
                  if (from[r + 1] == from[r]) {
                    return null;
                  }
                  AdvanceRequest.Builder b = AdvanceRequest.newBuilder().setTag(tag(r, l));
                  if (l == 0) {
                    for (int i = from[r]; i < from[r + 1]; i++) {
                      b.addTokenIds(tokens[i]).addPositions(positions[i]);
                    }
                  } else {
                    b.setAttentionOutput(Tensors.f32(attention[r], from[r + 1] - from[r], qDim));
                  }
                  return mine.get(r).stub().advance(b.build()).getQueries();
                });
        float[] q = new float[n * qDim];
        for (int r = 0; r < p; r++) {
          if (queries.get(r) != null) {
            float[] qr = Tensors.floats(queries.get(r), (long) (from[r + 1] - from[r]) * qDim);
            System.arraycopy(qr, 0, q, from[r] * qDim, qr.length);
          }
        }
        // 2. Attend: every shard, all queries, its own keys.
        Tensor qt = Tensors.f32(q, n, qDim);
        AttendRequest.Builder ab = AttendRequest.newBuilder().setQueries(qt);
        for (int pos : positions) {
          ab.addPositions(pos);
        }
        AttendRequest base = ab.build();
        List<AttendResponse> partials =
            parallel(r -> mine.get(r).stub().attend(base.toBuilder().setTag(tag(r, l)).build()));
        // 3. Merge by LSE, per query and head.
        float[][] outs = new float[p][];
        float[][] lses = new float[p][];
        for (int r = 0; r < p; r++) {
          outs[r] = Tensors.floats(partials.get(r).getOutput(), (long) n * qDim);
          lses[r] = Tensors.floats(partials.get(r).getLse(), (long) n * heads);
        }
        float[] merged = mergeQueries(outs, lses, n, heads, headDim);
        for (int r = 0; r < p; r++) {
          attention[r] = java.util.Arrays.copyOfRange(merged, from[r] * qDim, from[r + 1] * qDim);
        }
      }
      int owner = lastOwner;
      int row = from[owner + 1] - from[owner] - 1;
      float[] logits =
          Tensors.floats(
              mine.get(owner)
                  .stub()
                  .logits(
                      LogitsRequest.newBuilder()
                          .setTag(tag(owner, config.layers() - 1))
                          .setAttentionOutput(
                              Tensors.f32(attention[owner], from[owner + 1] - from[owner], qDim))
                          .addRows(row)
                          .build())
                  .getLogits(),
              config.vocabSize());
      length += n;
      return logits;
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
