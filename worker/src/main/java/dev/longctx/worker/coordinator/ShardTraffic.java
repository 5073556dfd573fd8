package dev.longctx.worker.coordinator;

import com.google.protobuf.MessageLite;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.util.concurrent.atomic.LongAdder;

/**
 * Bytes the coordinator exchanges with its shards (protobuf payloads, without gRPC framing), for
 * the communication-volume measurements of ALGORITHMS.md §4.6. Process-wide; every shard stub
 * counts through {@link #INTERCEPTOR}.
 */
public final class ShardTraffic {

  private static final LongAdder SENT = new LongAdder();
  private static final LongAdder RECEIVED = new LongAdder();
  private static final LongAdder CALLS = new LongAdder();

  /** Totals at one moment. */
  public record Snapshot(long sentBytes, long receivedBytes, long calls) {
    public Snapshot minus(Snapshot earlier) {
      return new Snapshot(
          sentBytes - earlier.sentBytes,
          receivedBytes - earlier.receivedBytes,
          calls - earlier.calls);
    }

    public long totalBytes() {
      return sentBytes + receivedBytes;
    }
  }

  private ShardTraffic() {}

  public static Snapshot snapshot() {
    return new Snapshot(SENT.sum(), RECEIVED.sum(), CALLS.sum());
  }

  static final ClientInterceptor INTERCEPTOR =
      new ClientInterceptor() {
        @Override
        public <Q, A> ClientCall<Q, A> interceptCall(
            MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
          CALLS.increment();
          return new ForwardingClientCall.SimpleForwardingClientCall<>(
              next.newCall(method, options)) {
            @Override
            public void sendMessage(Q message) {
              if (message instanceof MessageLite m) {
                SENT.add(m.getSerializedSize());
              }
              super.sendMessage(message);
            }

            @Override
            public void start(Listener<A> listener, Metadata headers) {
              super.start(
                  new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                    @Override
                    public void onMessage(A message) {
                      if (message instanceof MessageLite m) {
                        RECEIVED.add(m.getSerializedSize());
                      }
                      super.onMessage(message);
                    }
                  },
                  headers);
            }
          };
        }
      };
}
