package dev.longctx.operator.autoscaler;

/**
 * One worker pod's share of the context load.
 *
 * @param pod pod name (the StatefulSet ordinal name, e.g. {@code llama-worker-2})
 * @param residentTokens KV tokens resident on the pod
 * @param capacityTokens KV token capacity of the pod
 */
public record PodLoad(String pod, long residentTokens, long capacityTokens) {
  public PodLoad {
    if (residentTokens < 0 || capacityTokens < 0) {
      throw new IllegalArgumentException("negative token count for pod " + pod);
    }
  }
}
