package dev.longctx.operator;

import dev.longctx.api.v1alpha1.LongContextModel;
import dev.longctx.operator.autoscaler.ContextLoad;
import dev.longctx.operator.autoscaler.ContextLoadSource;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/** Test double of the coordinator's Admin.GetLoad: readings set per model name. */
public class FakeContextLoadSource implements ContextLoadSource {

  private final Map<String, ContextLoad> readings = new ConcurrentHashMap<>();

  public void set(String model, ContextLoad load) {
    readings.put(model, load);
  }

  public void clear(String model) {
    readings.remove(model);
  }

  @Override
  public Optional<ContextLoad> read(LongContextModel model) {
    return Optional.ofNullable(readings.get(model.getMetadata().getName()));
  }
}
