package dev.longctx.engine.cuda;

import static dev.longctx.engine.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DEFAULT;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * Where a step's device time goes, kernel by kernel: a CUDA event before and after each launch (and
 * each cuBLAS call) of the steps {@link CudaContext#profile} runs, read once the steps are done.
 * The device time of a launch is the time between its two events; what a step spends outside all
 * launches (idle gaps while the host issues the next launch, copies) is the step's time between its
 * first and last events less the launches'. This is the table that says whether a decode step is
 * bound by its matrix-vector products or by the small launches around them, without a profiler on
 * the device machine.
 */
public final class KernelProfile implements AutoCloseable {

  /** One kernel (or cuBLAS call) over the profiled steps: launches and device time. */
  public record Entry(String name, long launches, double microseconds) {}

  /**
   * The profiled steps: entries by device time (largest first), time outside the launches, and the
   * whole span from the first step's start to the last step's end; all in µs summed over steps.
   */
  public record Result(
      List<Entry> entries, int steps, double outsideMicroseconds, double spanMicroseconds) {

    /** Device time of all launches. */
    public double launchMicroseconds() {
      return entries.stream().mapToDouble(Entry::microseconds).sum();
    }

    /** Launches of all kernels. */
    public long launches() {
      return entries.stream().mapToLong(Entry::launches).sum();
    }

    /**
     * The same profile counted per unit, where each profiled step ran {@code units} of them (a run
     * of n decode tokens profiled as one step: per token).
     */
    public Result perUnit(int units) {
      return new Result(entries, steps * units, outsideMicroseconds, spanMicroseconds);
    }

    /**
     * A Markdown table under {@code title}: each kernel's launches and device time per {@code step}
     * (what one profiled step is: "token", "prefill"), its share of the steps' span, the time
     * outside all launches (the device idle between them, copies) and the whole step.
     */
    public String table(String title, String step) {
      double n = Math.max(1, steps);
      StringBuilder b = new StringBuilder();
      b.append(title).append(": device time by kernel (CUDA events around each launch)\n");
      b.append(
          String.format("| kernel | launches / %s | µs / %s | %% of the %s |%n", step, step, step));
      b.append("| --- | ---: | ---: | ---: |\n");
      for (Entry e : entries) {
        b.append(
            String.format(
                "| %s | %.0f | %.1f | %.1f %% |%n",
                e.name(),
                e.launches() / n,
                e.microseconds() / n,
                100 * e.microseconds() / spanMicroseconds));
      }
      b.append(
          String.format(
              "| outside the launches (idle, copies) | | %.1f | %.1f %% |%n",
              outsideMicroseconds / n, 100 * outsideMicroseconds / spanMicroseconds));
      b.append(
          String.format(
              "| whole %s | %.0f | %.1f | 100 %% |%n", step, launches() / n, spanMicroseconds / n));
      return b.toString();
    }
  }

  // Events in record order: a step's begin, then (before, after) per launch, then its end.
  private final List<CUevent_st> events = new ArrayList<>();
  private final List<String> names = new ArrayList<>();
  private final List<int[]> stepBounds = new ArrayList<>();

  /** Made by {@link CudaContext#profile}, which records into it. */
  KernelProfile() {}

  /** Starts a step: an event before its first launch. */
  void beginStep() {
    stepBounds.add(new int[] {record(), -1});
  }

  /** Ends a step: an event after its last launch (and any copy it made). */
  void endStep() {
    stepBounds.getLast()[1] = record();
  }

  /** Called right before a launch named {@code name}. */
  void before(String name) {
    names.add(name);
    record();
  }

  /** Called right after the launch {@link #before} announced. */
  void after() {
    record();
  }

  private int record() {
    CUevent_st e = new CUevent_st();
    check("cuEventCreate", cuEventCreate(e, CU_EVENT_DEFAULT));
    events.add(e);
    check("cuEventRecord", cuEventRecord(e, (CUstream_st) null));
    return events.size() - 1;
  }

  /** Waits for the recorded steps and sums their launches' events by name. */
  Result result() {
    Map<String, double[]> byName = new LinkedHashMap<>(); // name -> {launches, µs}
    double span = 0;
    double launched = 0;
    if (!events.isEmpty()) {
      check("cuEventSynchronize", cuEventSynchronize(events.getLast()));
    }
    int launch = 0;
    for (int[] bounds : stepBounds) {
      span += elapsed(bounds[0], bounds[1]);
      for (int next = bounds[0] + 1; next < bounds[1]; next += 2) {
        double us = elapsed(next, next + 1);
        double[] sum = byName.computeIfAbsent(names.get(launch++), k -> new double[2]);
        sum[0]++;
        sum[1] += us;
        launched += us;
      }
    }
    List<Entry> entries = new ArrayList<>();
    byName.forEach((name, sum) -> entries.add(new Entry(name, (long) sum[0], sum[1])));
    entries.sort(Comparator.comparingDouble(Entry::microseconds).reversed());
    return new Result(List.copyOf(entries), stepBounds.size(), Math.max(0, span - launched), span);
  }

  private double elapsed(int from, int to) {
    float[] ms = new float[1];
    check("cuEventElapsedTime", cuEventElapsedTime(ms, events.get(from), events.get(to)));
    return ms[0] * 1000.0;
  }

  @Override
  public void close() {
    for (CUevent_st e : events) {
      check("cuEventDestroy", cuEventDestroy(e));
    }
    events.clear();
  }
}
