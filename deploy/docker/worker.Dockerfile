# longctx worker image, CPU (Vector API) engine. Serves both roles:
#   longctx serve --role shard|coordinator --config /etc/longctx/engine.properties
#   longctx fetch --uri URI --revision REV --dest /models   (the operator's init container)
# Build from the repository root after `./mvnw -pl worker -am package -DskipTests`:
#   docker build -f deploy/docker/worker.Dockerfile -t ghcr.io/longctx/longctx-worker:0.1.0 .
# Bake a model in (for file:// URIs, e.g. the e2e tests); the directory must lie inside the build
# context, so copy it in first (models/ is git-ignored):
#   mkdir -p models && cp -r ../shared/data/models/stories260K models/
#   docker build ... --build-arg MODEL_DIR=models/stories260K  (copied to /models/stories260K)
FROM eclipse-temurin:25-jre
ARG MODEL_DIR=deploy/docker/empty
RUN groupadd --gid 1000 longctx && useradd --uid 1000 --gid 1000 --no-create-home longctx \
    && mkdir -p /models && chown 1000:1000 /models
COPY --chown=1000:1000 worker/target/quarkus-app/ /opt/longctx/
COPY --chown=1000:1000 ${MODEL_DIR}/ /models/stories260K/
COPY deploy/docker/longctx.sh /usr/local/bin/longctx
ENV LONGCTX_JVM_ARGS="--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:MaxRAMPercentage=80"
USER 1000
EXPOSE 9000 9100 8080
ENTRYPOINT ["/usr/local/bin/longctx"]
CMD ["--help"]
