# longctx operator image. Build from the repository root after
# `./mvnw -pl crds,operator -am package -DskipTests`:
#   docker build -f deploy/docker/operator.Dockerfile -t ghcr.io/longctx/longctx-operator:0.1.0 .
FROM eclipse-temurin:25-jre
RUN groupadd --gid 1000 longctx && useradd --uid 1000 --gid 1000 --no-create-home longctx
COPY --chown=1000:1000 operator/target/quarkus-app/ /opt/longctx-operator/
USER 1000
EXPOSE 8080
ENTRYPOINT ["java", "-jar", "/opt/longctx-operator/quarkus-run.jar"]
