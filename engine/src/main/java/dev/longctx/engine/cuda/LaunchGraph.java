package dev.longctx.engine.cuda;

import static dev.longctx.engine.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.cuGraphAddKernelNode;
import static org.bytedeco.cuda.global.cudart.cuGraphCreate;
import static org.bytedeco.cuda.global.cudart.cuGraphDestroy;
import static org.bytedeco.cuda.global.cudart.cuGraphExecDestroy;
import static org.bytedeco.cuda.global.cudart.cuGraphExecKernelNodeSetParams;
import static org.bytedeco.cuda.global.cudart.cuGraphInstantiate;
import static org.bytedeco.cuda.global.cudart.cuGraphLaunch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.cuda.cudart.CUDA_KERNEL_NODE_PARAMS_v2;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraphNode_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.PointerPointer;

/**
 * A step of kernel launches replayed as one CUDA graph: the decode step's few hundred small
 * launches (norms, RoPE, KV stores, attention, residual adds between the matrix-vector products)
 * each cost the device a launch gap and the host a driver call; a graph launch pays once. What
 * llama.cpp and vLLM do for decode.
 *
 * <p>{@link #run} records the step's launches instead of making them ({@link CudaContext#launch}
 * hands them here). The first step builds a graph of them, a chain in issue order, and instantiates
 * it; a later step with the same kernels in the same order only updates the nodes whose grid or
 * arguments changed (the attention's key count and splits, the KV slot: a few nodes a layer) and
 * launches the instantiated graph; a step whose kernels differ (another kernel, or another number
 * of launches) rebuilds it. The graph runs on the legacy default stream, so it is ordered with the
 * copies before and after it like the launches it replaces. A step that does anything but launch
 * kernels (a copy, a fill, a free, cuBLAS) cannot be recorded: it is run again directly, which is
 * safe because nothing of it ran yet.
 */
final class LaunchGraph implements AutoCloseable {

  /** Thrown inside a recorded step by an operation a graph of kernel launches cannot hold. */
  static final class NotRecordable extends RuntimeException {
    NotRecordable(String call) {
      super(call + " inside a recorded step", null, false, false);
    }
  }

  /** How steps ran: graph launches, nodes updated in place, graphs (re)built, direct runs. */
  record Stats(long replays, long updates, long builds, long fallbacks) {}

  private record Node(
      String kernel, CUfunc_st function, int gridX, int gridY, int block, long[] args) {

    boolean sameKernel(Node o) {
      return function == o.function && args.length == o.args.length;
    }

    boolean sameLaunch(Node o) {
      return sameKernel(o)
          && gridX == o.gridX
          && gridY == o.gridY
          && block == o.block
          && Arrays.equals(args, o.args);
    }
  }

  private final CudaContext cx;
  private final List<Node> nodes = new ArrayList<>();
  private final List<CUgraphNode_st> handles = new ArrayList<>();
  private final List<Node> step = new ArrayList<>();
  private CUgraph_st graph;
  private CUgraphExec_st exec;
  private long replays;
  private long updates;
  private long builds;
  private long fallbacks;
  private boolean closed;
  // The node parameters' argument slots (the driver copies them when a node is added or updated).
  private final KernelArgs slots = new KernelArgs();
  private final CUDA_KERNEL_NODE_PARAMS_v2 params = new CUDA_KERNEL_NODE_PARAMS_v2();

  LaunchGraph(CudaContext cx) {
    this.cx = cx;
  }

  /**
   * Runs {@code launches} as one graph launch (see the class comment); {@code launches} must only
   * launch kernels to be recorded, and is run directly otherwise.
   */
  void run(Runnable launches) {
    if (closed) {
      throw new IllegalStateException("the launch graph is closed");
    }
    if (cx.isProfiling()) { // launch by launch, so that the profile sees each
      fallbacks++;
      launches.run();
      return;
    }
    step.clear();
    boolean recorded = false;
    cx.startRecording(this);
    try {
      launches.run();
      recorded = true;
    } catch (NotRecordable e) {
      // nothing of the step ran: it runs again below, launch by launch
    } finally {
      cx.stopRecording();
    }
    if (!recorded) {
      fallbacks++;
      launches.run();
      return;
    }
    if (step.isEmpty()) {
      return;
    }
    if (exec != null && step.size() == nodes.size() && sameKernels()) {
      for (int i = 0; i < step.size(); i++) {
        Node s = step.get(i);
        if (!s.sameLaunch(nodes.get(i))) {
          setParams(s);
          check(
              "cuGraphExecKernelNodeSetParams(" + s.kernel + ")",
              cuGraphExecKernelNodeSetParams(exec, handles.get(i), params));
          nodes.set(i, s);
          updates++;
        }
      }
    } else {
      build();
    }
    cx.bind();
    check("cuGraphLaunch", cuGraphLaunch(exec, (CUstream_st) null));
    replays++;
  }

  Stats stats() {
    return new Stats(replays, updates, builds, fallbacks);
  }

  /**
   * Called by {@link CudaContext#launch} while recording: the arguments are in {@code argSlots}.
   */
  void add(
      String kernel,
      CUfunc_st function,
      int gridX,
      int gridY,
      int block,
      int argc,
      KernelArgs argSlots) {
    long[] args = new long[argc];
    for (int i = 0; i < argc; i++) {
      args[i] = argSlots.get(i);
    }
    step.add(new Node(kernel, function, gridX, gridY, block, args));
  }

  private boolean sameKernels() {
    for (int i = 0; i < step.size(); i++) {
      if (!step.get(i).sameKernel(nodes.get(i))) {
        return false;
      }
    }
    return true;
  }

  private void build() {
    destroyGraph();
    CUgraph_st g = new CUgraph_st();
    check("cuGraphCreate", cuGraphCreate(g, 0));
    graph = g;
    CUgraphNode_st previous = null;
    for (Node s : step) {
      setParams(s);
      CUgraphNode_st node = new CUgraphNode_st();
      check(
          "cuGraphAddKernelNode(" + s.kernel + ")",
          cuGraphAddKernelNode(node, graph, previous, previous == null ? 0 : 1, params));
      handles.add(node);
      previous = node;
    }
    CUgraphExec_st e = new CUgraphExec_st();
    check("cuGraphInstantiate", cuGraphInstantiate(e, graph, 0));
    exec = e;
    nodes.clear();
    nodes.addAll(step);
    builds++;
  }

  private void setParams(Node s) {
    for (int i = 0; i < s.args.length; i++) {
      slots.set(i, s.args[i]);
    }
    params
        .func(s.function)
        .gridDimX(s.gridX)
        .gridDimY(s.gridY)
        .gridDimZ(1)
        .blockDimX(s.block)
        .blockDimY(1)
        .blockDimZ(1)
        .sharedMemBytes(0)
        .kernelParams(slots.table())
        .extra((PointerPointer) null)
        .kern(null)
        .ctx(null);
  }

  private void destroyGraph() {
    if (exec != null) {
      check("cuGraphExecDestroy", cuGraphExecDestroy(exec));
      exec = null;
    }
    if (graph != null) {
      check("cuGraphDestroy", cuGraphDestroy(graph));
      graph = null;
    }
    handles.clear();
    nodes.clear();
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    if (!cx.isClosed()) { // else the context took the graphs with it
      cx.bind();
      destroyGraph();
    }
    params.close();
    slots.close();
  }
}
