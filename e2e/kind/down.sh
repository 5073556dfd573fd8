#!/usr/bin/env bash
# Deletes the cluster e2e/kind/up.sh created (kind or k3d, whichever has it).
set -euo pipefail
rm -f "$(dirname "$0")/.kubeconfig"
CLUSTER="${LONGCTX_CLUSTER:-longctx-e2e}"
if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
elif command -v k3d >/dev/null && k3d cluster list "$CLUSTER" >/dev/null 2>&1; then
  k3d cluster delete "$CLUSTER"
else
  echo "down.sh: no cluster named $CLUSTER" >&2
fi
