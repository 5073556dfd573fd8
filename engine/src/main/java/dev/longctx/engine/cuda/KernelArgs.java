package dev.longctx.engine.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Native 8-byte slots for a kernel's arguments and the table of their addresses that cuLaunchKernel
 * and graph kernel nodes take (the driver copies the values at the call, so one block serves every
 * launch and nothing is allocated per launch). The slots are written through a memory segment: no
 * JNI call per argument. A 4-byte value fills its slot's low half with the high half zero (little
 * endian: the kernel reads the low half), so equal arguments are equal slots.
 */
final class KernelArgs implements AutoCloseable {

  /** The most arguments a kernel of longctx.cu takes, with room to spare. */
  static final int MAX = 24;

  private final BytePointer slots = new BytePointer(8L * MAX);
  private final LongPointer addresses = new LongPointer(MAX);
  private final PointerPointer<Pointer> table = new PointerPointer<>(addresses);
  private final MemorySegment memory =
      MemorySegment.ofAddress(slots.address()).reinterpret(8L * MAX);

  KernelArgs() {
    for (int i = 0; i < MAX; i++) {
      addresses.put(i, slots.address() + 8L * i);
    }
  }

  void set(int slot, long value) {
    memory.set(ValueLayout.JAVA_LONG, 8L * slot, value);
  }

  void set(int slot, int value) {
    set(slot, value & 0xffffffffL);
  }

  void set(int slot, float value) {
    set(slot, Float.floatToRawIntBits(value));
  }

  void set(int slot, double value) {
    memory.set(ValueLayout.JAVA_DOUBLE, 8L * slot, value);
  }

  /** Slot {@code slot} as its 8 bytes. */
  long get(int slot) {
    return memory.get(ValueLayout.JAVA_LONG, 8L * slot);
  }

  /** The address table (kernelParams). */
  PointerPointer<Pointer> table() {
    return table;
  }

  @Override
  public void close() {
    table.close();
    addresses.close();
    slots.close();
  }
}
