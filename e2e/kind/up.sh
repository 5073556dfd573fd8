#!/usr/bin/env bash
# Creates a local Kubernetes cluster for the Kubernetes e2e tests (KubernetesE2E), builds the
# worker and operator images with stories260K baked in, loads them into the cluster, installs the
# operator (deploy/overlays/cpu) and, unless --no-sample, serves deploy/samples/cpu-stories260k.yaml
# in namespace longctx-demo and waits for it to be Ready.
#
#   e2e/kind/up.sh [--no-sample]        # kind if installed, else k3d (LONGCTX_CLUSTER_TOOL=kind|k3d)
#   export KUBECONFIG=$(e2e/kind/up.sh --print-kubeconfig)
#   ./mvnw -pl e2e -am -Pkube-e2e verify
#   e2e/kind/down.sh
#
# Needs docker, kubectl and kind or k3d; the model comes from ../shared/data/models/stories260K
# (or LONGCTX_MODEL_DIR). Idempotent: reruns rebuild and reload the images and re-apply.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="${LONGCTX_CLUSTER:-longctx-e2e}"
# The tags deploy/base and the CRD default (workers.image) name.
TAG=0.1.0
WORKER_IMAGE="ghcr.io/longctx/longctx-worker:${TAG}"
OPERATOR_IMAGE="ghcr.io/longctx/longctx-operator:${TAG}"
MODEL_DIR="${LONGCTX_MODEL_DIR:-$ROOT/../shared/data/models/stories260K}"
KUBECONFIG_FILE="${LONGCTX_KUBECONFIG:-$ROOT/e2e/kind/.kubeconfig}"
SAMPLE=1

for arg in "$@"; do
  case "$arg" in
    --no-sample) SAMPLE=0 ;;
    --print-kubeconfig) echo "$KUBECONFIG_FILE"; exit 0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null || { echo "up.sh: $1 is not on the PATH" >&2; exit 1; }; }
need docker
need kubectl
TOOL="${LONGCTX_CLUSTER_TOOL:-}"
if [[ -z "$TOOL" ]]; then
  if command -v kind >/dev/null; then TOOL=kind; elif command -v k3d >/dev/null; then TOOL=k3d; else
    echo "up.sh: install kind (https://kind.sigs.k8s.io) or k3d (https://k3d.io)" >&2; exit 1
  fi
fi
need "$TOOL"
[[ -f "$MODEL_DIR/stories260K.bin" ]] || {
  echo "up.sh: no stories260K.bin in $MODEL_DIR (set LONGCTX_MODEL_DIR)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*" >&2; }

step "cluster $CLUSTER ($TOOL)"
mkdir -p "$(dirname "$KUBECONFIG_FILE")"
case "$TOOL" in
  kind)
    kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
    kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
    ;;
  k3d)
    k3d cluster list "$CLUSTER" >/dev/null 2>&1 || k3d cluster create "$CLUSTER" --wait
    k3d kubeconfig get "$CLUSTER" >"$KUBECONFIG_FILE"
    ;;
  *) echo "up.sh: LONGCTX_CLUSTER_TOOL must be kind or k3d" >&2; exit 2 ;;
esac
export KUBECONFIG="$KUBECONFIG_FILE"

step "build (worker, crds, operator)"
(cd "$ROOT" && ./mvnw -B -q -pl worker,crds,operator -am package -DskipTests)

step "images $WORKER_IMAGE, $OPERATOR_IMAGE"
# The model is baked into the worker image (file:// in the sample); models/ is git-ignored.
rm -rf "$ROOT/models/stories260K" && mkdir -p "$ROOT/models" && cp -r "$MODEL_DIR" "$ROOT/models/stories260K"
docker build -q -f "$ROOT/deploy/docker/worker.Dockerfile" --build-arg MODEL_DIR=models/stories260K \
  -t "$WORKER_IMAGE" "$ROOT"
docker build -q -f "$ROOT/deploy/docker/operator.Dockerfile" -t "$OPERATOR_IMAGE" "$ROOT"
case "$TOOL" in
  kind) kind load docker-image --name "$CLUSTER" "$WORKER_IMAGE" "$OPERATOR_IMAGE" ;;
  k3d) k3d image import --cluster "$CLUSTER" "$WORKER_IMAGE" "$OPERATOR_IMAGE" ;;
esac

step "operator (deploy/overlays/cpu)"
# The CRD first, so that nothing in the overlay races its establishment.
kubectl apply -f "$ROOT/deploy/base/crd/longcontextmodels.longctx.dev-v1.yml"
kubectl wait --for condition=established --timeout=60s crd/longcontextmodels.longctx.dev
kubectl apply -k "$ROOT/deploy/overlays/cpu"
# A rerun loads a rebuilt image under the same tag: restart so the pods run it.
kubectl -n longctx-system rollout restart deploy/longctx-operator >/dev/null
kubectl -n longctx-system rollout status deploy/longctx-operator --timeout=300s

if [[ "$SAMPLE" == 1 ]]; then
  step "sample model (longctx-demo/stories260k)"
  kubectl create namespace longctx-demo --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n longctx-demo apply -f "$ROOT/deploy/samples/cpu-stories260k.yaml"
  if ! kubectl -n longctx-demo wait lcm/stories260k --for condition=Ready --timeout=600s; then
    kubectl -n longctx-demo get lcm stories260k -o yaml >&2 || true
    kubectl -n longctx-demo get events --sort-by=.lastTimestamp >&2 || true
    kubectl -n longctx-demo logs -l app.kubernetes.io/instance=stories260k --all-containers --tail=100 >&2 || true
    exit 1
  fi
  kubectl -n longctx-demo get lcm
fi

step "ready"
cat >&2 <<MSG
export KUBECONFIG=$KUBECONFIG_FILE
./mvnw -pl e2e -am -Pkube-e2e verify     # the Kubernetes scenario (KubernetesE2E)
e2e/kind/down.sh                         # delete the cluster
MSG
