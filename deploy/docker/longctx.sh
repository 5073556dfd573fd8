#!/bin/sh
# Container entry point: the longctx CLI (`serve`, `fetch`, `generate`, ...) on the image's JVM.
# shellcheck disable=SC2086
exec java $LONGCTX_JVM_ARGS $JAVA_OPTS -jar /opt/longctx/quarkus-run.jar "$@"
