package dev.longctx.operator.resources;

import dev.longctx.api.v1alpha1.LongContextModel;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerBuilder;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.ContainerPortBuilder;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.EnvVarBuilder;
import io.fabric8.kubernetes.api.model.PodSpecBuilder;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpecBuilder;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.ProbeBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.ResourceRequirementsBuilder;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeBuilder;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.VolumeMountBuilder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Pod templates of the two roles. The container runs {@code longctx serve --role ROLE --config
 * /etc/longctx/engine.properties}; it serves Quarkus health on the HTTP port ({@code
 * /q/health/started}, {@code /ready}, {@code /live}), reports ready only once the model is loaded,
 * and on SIGTERM drains (stops taking new ranges, lets the coordinator move its sequences) within
 * {@code QUARKUS_SHUTDOWN_TIMEOUT}, a little under the pod's grace period.
 */
final class PodTemplates {

  static final String GPU_RESOURCE = "nvidia.com/gpu";

  private PodTemplates() {}

  static PodTemplateSpec worker(LongContextModel m) {
    var w = m.getSpec().getWorkers();
    var svc = m.getSpec().getService();
    List<ContainerPort> ports =
        List.of(port("shard", svc.getShardPort()), port("http", svc.getHttpPort()));
    ResourceRequirements resources = withGpu(w.getResources(), w.getGpu());
    List<EnvVar> env = new ArrayList<>();
    env.add(env("LONGCTX_KV_CACHE_TOKENS", Long.toString(w.getKvCacheTokens())));
    env.add(env("LONGCTX_DEVICE", w.getGpu() > 0 ? "cuda" : "cpu"));
    env.addAll(w.getEnv());
    return template(
        m,
        Names.WORKER,
        w.getImage(),
        ports,
        resources,
        env,
        w.getJvmOptions(),
        w.getTerminationGracePeriodSeconds(),
        w.getNodeSelector(),
        w.getTolerations());
  }

  static PodTemplateSpec coordinator(LongContextModel m) {
    var c = m.getSpec().getCoordinator();
    var svc = m.getSpec().getService();
    String image = c.getImage().isBlank() ? m.getSpec().getWorkers().getImage() : c.getImage();
    List<ContainerPort> ports =
        List.of(port("grpc", svc.getGrpcPort()), port("http", svc.getHttpPort()));
    List<EnvVar> env = new ArrayList<>();
    if (svc.getApiKeySecret().isSet()) {
      env.add(
          new EnvVarBuilder()
              .withName("LONGCTX_API_KEY")
              .withNewValueFrom()
              .withNewSecretKeyRef(
                  svc.getApiKeySecret().getKey(), svc.getApiKeySecret().getName(), false)
              .endValueFrom()
              .build());
    }
    return template(
        m,
        Names.COORDINATOR,
        image,
        ports,
        c.getResources(),
        env,
        c.getJvmOptions(),
        60,
        Map.of(),
        List.of());
  }

  private static PodTemplateSpec template(
      LongContextModel m,
      String role,
      String image,
      List<ContainerPort> ports,
      ResourceRequirements resources,
      List<EnvVar> extraEnv,
      String jvmOptions,
      int gracePeriodSeconds,
      Map<String, String> nodeSelector,
      List<io.fabric8.kubernetes.api.model.Toleration> tolerations) {
    ModelMount model = ModelMount.of(m, image);
    List<EnvVar> env = new ArrayList<>();
    env.add(fieldEnv("POD_NAME", "metadata.name"));
    env.add(fieldEnv("POD_NAMESPACE", "metadata.namespace"));
    env.add(env("LONGCTX_ROLE", role.equals(Names.WORKER) ? "shard" : "coordinator"));
    env.add(env("LONGCTX_MODEL_PATH", model.modelPath()));
    env.add(env("QUARKUS_SHUTDOWN_TIMEOUT", Math.max(1, gracePeriodSeconds - 5) + "s"));
    if (!jvmOptions.isBlank()) {
      env.add(env("JAVA_TOOL_OPTIONS", jvmOptions));
    }
    env.addAll(extraEnv);

    List<VolumeMount> mounts = new ArrayList<>();
    mounts.add(
        new VolumeMountBuilder()
            .withName("config")
            .withMountPath(EngineConfig.DIR)
            .withReadOnly(true)
            .build());
    model.mount().ifPresent(mounts::add);
    List<Volume> volumes = new ArrayList<>();
    volumes.add(
        new VolumeBuilder()
            .withName("config")
            .withNewConfigMap()
            .withName(Names.config(m))
            .endConfigMap()
            .build());
    model.volume().ifPresent(volumes::add);

    Container main =
        new ContainerBuilder()
            .withName(role)
            .withImage(image)
            .withImagePullPolicy(m.getSpec().getWorkers().getImagePullPolicy())
            .withArgs(
                "serve",
                "--role",
                role.equals(Names.WORKER) ? "shard" : "coordinator",
                "--config",
                EngineConfig.DIR + "/" + EngineConfig.FILE)
            .withPorts(ports)
            .withEnv(env)
            .withResources(resources)
            .withVolumeMounts(mounts)
            // Loading a large model can take many minutes: the startup probe allows 30.
            .withStartupProbe(probe("/q/health/started", 180))
            .withReadinessProbe(probe("/q/health/ready", 3))
            .withLivenessProbe(probe("/q/health/live", 6))
            .withNewSecurityContext()
            .withAllowPrivilegeEscalation(false)
            .withRunAsNonRoot(true)
            .withNewCapabilities()
            .withDrop("ALL")
            .endCapabilities()
            .endSecurityContext()
            .build();

    Map<String, String> annotations = new LinkedHashMap<>();
    annotations.put(Names.MODEL_GENERATION, Hashing.of(m.getSpec().getModel()));
    annotations.put(Names.CONFIG_HASH, Hashing.sha256(ConfigMapDependent.engineProperties(m)));
    annotations.put("prometheus.io/scrape", "true");
    annotations.put("prometheus.io/port", Integer.toString(m.getSpec().getService().getHttpPort()));
    annotations.put("prometheus.io/path", "/q/metrics");

    return new PodTemplateSpecBuilder()
        .withNewMetadata()
        .withLabels(Names.labels(m, role))
        .withAnnotations(annotations)
        .endMetadata()
        .withSpec(
            new PodSpecBuilder()
                .withServiceAccountName(Names.serviceAccount(m))
                .withAutomountServiceAccountToken(false)
                .withTerminationGracePeriodSeconds((long) gracePeriodSeconds)
                .withNodeSelector(new LinkedHashMap<>(nodeSelector))
                .withTolerations(tolerations)
                .withInitContainers(model.fetch().stream().toList())
                .withContainers(main)
                .withVolumes(volumes)
                .withNewSecurityContext()
                .withRunAsNonRoot(true)
                .withRunAsUser(1000L)
                .withFsGroup(1000L)
                .endSecurityContext()
                .build())
        .build();
  }

  static ResourceRequirements withGpu(ResourceRequirements base, int gpus) {
    ResourceRequirements r = new ResourceRequirementsBuilder(base).build();
    if (gpus > 0) {
      Map<String, Quantity> limits =
          new LinkedHashMap<>(r.getLimits() == null ? Map.of() : r.getLimits());
      Map<String, Quantity> requests =
          new LinkedHashMap<>(r.getRequests() == null ? Map.of() : r.getRequests());
      limits.put(GPU_RESOURCE, new Quantity(Integer.toString(gpus)));
      requests.put(GPU_RESOURCE, new Quantity(Integer.toString(gpus)));
      r.setLimits(limits);
      r.setRequests(requests);
    }
    return r;
  }

  private static Probe probe(String path, int failureThreshold) {
    return new ProbeBuilder()
        .withNewHttpGet()
        .withPath(path)
        .withNewPort("http")
        .endHttpGet()
        .withPeriodSeconds(10)
        .withFailureThreshold(failureThreshold)
        .build();
  }

  private static ContainerPort port(String name, int port) {
    return new ContainerPortBuilder().withName(name).withContainerPort(port).build();
  }

  private static EnvVar env(String name, String value) {
    return new EnvVarBuilder().withName(name).withValue(value).build();
  }

  private static EnvVar fieldEnv(String name, String path) {
    return new EnvVarBuilder()
        .withName(name)
        .withNewValueFrom()
        .withNewFieldRef()
        .withFieldPath(path)
        .endFieldRef()
        .endValueFrom()
        .build();
  }
}
