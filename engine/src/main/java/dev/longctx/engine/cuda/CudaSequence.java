package dev.longctx.engine.cuda;

import dev.longctx.engine.attention.AttentionPolicy;
import dev.longctx.engine.attention.AttentionPolicy.SelfExtend;

/**
 * One sequence on the GPU: its paged KV cache, its device activation buffers and its attention
 * policy (dense, or SelfExtend with the position list its attention launches index, see {@link
 * CudaModel}).
 */
public final class CudaSequence implements AutoCloseable {

  private final CudaKvCache cache;
  private final AttentionPolicy policy;
  private final DeviceBuffer positionList;
  private CudaSelector selector;
  private CudaModel.Activations activations;
  private LaunchGraph launchGraph;

  CudaSequence(CudaKvCache cache) {
    this(cache, AttentionPolicy.dense(), null);
  }

  CudaSequence(CudaKvCache cache, AttentionPolicy policy, DeviceBuffer positionList) {
    this(cache, policy, positionList, null);
  }

  CudaSequence(
      CudaKvCache cache, AttentionPolicy policy, DeviceBuffer positionList, CudaSelector selector) {
    this.cache = cache;
    this.policy = policy;
    this.positionList = positionList;
    this.selector = selector;
  }

  /** The top-k policy's key selection on the device, or null (dense, SelfExtend, a shard range). */
  CudaSelector selector() {
    return selector;
  }

  /** Gives an empty sequence (a GPU shard's range, before its first step) its key selection. */
  void attachSelector(CudaSelector s) {
    if (length() > 0 || selector != null) {
      throw new IllegalStateException("a selector must be attached before the first token");
    }
    this.selector = s;
  }

  public CudaKvCache cache() {
    return cache;
  }

  /** The attention policy this sequence runs under. */
  public AttentionPolicy policy() {
    return policy;
  }

  /** SelfExtend's position mapping, or null for dense attention. */
  SelfExtend selfExtend() {
    return policy.positions();
  }

  /**
   * SelfExtend's key position list (w − 1 entries −1, then 0, 1, 2, …): the attention launches
   * select their keys as windows of it. Null for dense.
   */
  DeviceBuffer positionList() {
    return positionList;
  }

  /** Tokens fed so far. */
  public int length() {
    return cache.length();
  }

  /**
   * Device bytes of the KV cache (whole pages; with SelfExtend's grouped keys), SelfExtend's
   * position list and a top-k policy's selector state.
   */
  public long bytesAllocated() {
    return cache.bytesAllocated()
        + (positionList == null ? 0 : positionList.bytes())
        + (selector == null ? 0 : selector.bytesAllocated());
  }

  /** Device bytes of the top-k policy's selector state (0 without one). */
  public long selectorBytes() {
    return selector == null ? 0 : selector.bytesAllocated();
  }

  CudaModel.Activations activations(CudaModel model, int rows) {
    if (activations == null || activations.capacity < rows) {
      if (activations != null) {
        activations.close();
      }
      activations = model.newActivations(rows, selfExtend());
    }
    return activations;
  }

  /** This sequence's decode-step graph (CudaModel.setDecodeGraphs), made on first use. */
  LaunchGraph launchGraph(CudaContext cx) {
    if (launchGraph == null) {
      launchGraph = new LaunchGraph(cx);
    }
    return launchGraph;
  }

  /** How this sequence's decode steps ran as graphs (zeros before the first). */
  LaunchGraph.Stats graphStats() {
    return launchGraph == null ? new LaunchGraph.Stats(0, 0, 0, 0) : launchGraph.stats();
  }

  @Override
  public void close() {
    if (launchGraph != null) {
      launchGraph.close();
      launchGraph = null;
    }
    if (activations != null) {
      activations.close();
      activations = null;
    }
    if (positionList != null) {
      positionList.close();
    }
    if (selector != null) {
      selector.close();
    }
    cache.close();
  }
}
