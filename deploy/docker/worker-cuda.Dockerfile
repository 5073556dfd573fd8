# longctx worker image for NVIDIA GPUs: the same application on a CUDA runtime base; the bytedeco
# CUDA bindings (org.bytedeco:cuda) bind the runtime's libraries at start. Needs the NVIDIA device
# plugin on the nodes and workers.gpu > 0 in the LongContextModel.
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t ghcr.io/longctx/longctx-worker:0.1.0-cuda .
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
FROM eclipse-temurin:25-jre AS jre
FROM ${CUDA_IMAGE}
ENV JAVA_HOME=/opt/java/openjdk PATH=/opt/java/openjdk/bin:$PATH
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
RUN groupadd --gid 1000 longctx && useradd --uid 1000 --gid 1000 --no-create-home longctx \
    && mkdir -p /models && chown 1000:1000 /models
COPY --chown=1000:1000 worker/target/quarkus-app/ /opt/longctx/
COPY deploy/docker/longctx.sh /usr/local/bin/longctx
ENV LONGCTX_JVM_ARGS="--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:MaxRAMPercentage=80" \
    LONGCTX_DEVICE=cuda
USER 1000
EXPOSE 9000 9100 8080
ENTRYPOINT ["/usr/local/bin/longctx"]
CMD ["--help"]
