package dev.longctx.engine.cuda;

import java.util.Locale;
import java.util.function.Supplier;

/**
 * Which backend runs the model: {@code cpu}, {@code cuda}, or {@code auto} (CUDA when the driver
 * loads and a device exists, else the CPU). This class never touches the CUDA bindings itself: the
 * probe ({@link CudaProbe}, loaded only when {@code auto} or {@code cuda} asks for it) does, so the
 * CPU path runs on machines without a driver or the CUDA libraries (DESIGN.md §2).
 */
public enum Backend {
  AUTO,
  CPU,
  CUDA;

  /** Whether CUDA is usable here, and why not when it is not. */
  public record Availability(boolean available, String reason) {
    public static Availability yes(String device) {
      return new Availability(true, device);
    }

    public static Availability no(String reason) {
      return new Availability(false, reason);
    }
  }

  /** Parses {@code auto}, {@code cpu} or {@code cuda} (any case); fails naming the choices. */
  public static Backend parse(String name) {
    try {
      return valueOf(name.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException | NullPointerException e) {
      throw new IllegalArgumentException(
          "unknown backend '" + name + "': expected auto, cpu or cuda", e);
    }
  }

  /** {@link #select(Supplier)} with the real probe of this machine. */
  public Backend select() {
    return select(CudaProbe::probe);
  }

  /**
   * The concrete backend for this request: {@code cpu} stays CPU without probing; {@code auto} is
   * CUDA when {@code probe} finds a device, else CPU; {@code cuda} is CUDA or fails with the
   * probe's reason.
   */
  public Backend select(Supplier<Availability> probe) {
    return switch (this) {
      case CPU -> CPU;
      case AUTO -> probe.get().available() ? CUDA : CPU;
      case CUDA -> {
        Availability a = probe.get();
        if (!a.available()) {
          throw new IllegalStateException("--backend cuda was requested but " + a.reason());
        }
        yield CUDA;
      }
    };
  }
}
