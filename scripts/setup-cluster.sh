#!/usr/bin/env bash
# Creates the local Kubernetes cluster for logjet and everything the manifests need around it:
#   1. a 3-node kind cluster from infra/kind/cluster.yaml (Kubernetes 1.32)
#   2. the logjet images, built with ./scripts/build.sh and side-loaded as logjet/<service>:dev
#   3. metrics-server (CPU metrics for the HPAs and KEDA's cpu trigger), pinned
#   4. KEDA (the processor's ScaledObject), pinned
# Safe to re-run: an existing cluster is reused, manifests are re-applied, images re-loaded.
#
# Environment:
#   CLUSTER_NAME  kind cluster name (default: logjet)
#   SKIP_BUILD=1  do not run ./scripts/build.sh; load the logjet/<service>:dev images already in docker
# Then: ./scripts/deploy.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLUSTER_NAME="${CLUSTER_NAME:-logjet}"
KIND_CONFIG="infra/kind/cluster.yaml"
IMAGE_TAG="dev"
SERVICES=(ingest processor query dashboard)
# Pinned versions. cloudcoil-models-keda in scripts/k8s-validate.sh is pinned to the same KEDA.
METRICS_SERVER_VERSION="v0.7.2"
KEDA_VERSION="2.16.1"
METRICS_SERVER_URL="https://github.com/kubernetes-sigs/metrics-server/releases/download/${METRICS_SERVER_VERSION}/components.yaml"
KEDA_URL="https://github.com/kedacore/keda/releases/download/v${KEDA_VERSION}/keda-${KEDA_VERSION}.yaml"

log() { printf '\n==> %s\n' "$*"; }
die() { echo "setup-cluster: $*" >&2; exit 1; }
need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH. $2"
}

need docker "Install Docker: https://docs.docker.com/get-docker/"
need kind "Install kind v0.26 or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "Install kubectl 1.32: https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (is it running, and may this user use it?)"

CTX="kind-${CLUSTER_NAME}"
k() { kubectl --context "$CTX" "$@"; }

# --- 1. cluster ------------------------------------------------------------------------------
log "kind cluster '${CLUSTER_NAME}'"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "cluster exists; reusing it"
  kind export kubeconfig --name "$CLUSTER_NAME" >/dev/null
else
  kind create cluster --name "$CLUSTER_NAME" --config "$KIND_CONFIG" --wait 180s
fi
k wait --for=condition=Ready nodes --all --timeout=180s

# --- 2. images -------------------------------------------------------------------------------
log "logjet images (${IMAGE_TAG})"
if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  [[ -x scripts/build.sh ]] || die "scripts/build.sh is missing or not executable; build the images \
logjet/<service>:${IMAGE_TAG} yourself and re-run with SKIP_BUILD=1"
  # build.sh tags every image logjet/<service>:<version> and logjet/<service>:dev.
  ./scripts/build.sh
fi
for svc in "${SERVICES[@]}"; do
  image="logjet/${svc}:${IMAGE_TAG}"
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    # A build that tags :latest only is accepted and re-tagged.
    if docker image inspect "logjet/${svc}:latest" >/dev/null 2>&1; then
      docker tag "logjet/${svc}:latest" "$image"
    else
      die "image $image not found in docker after the build"
    fi
  fi
  kind load docker-image "$image" --name "$CLUSTER_NAME"
done

# --- 3. metrics-server -----------------------------------------------------------------------
log "metrics-server ${METRICS_SERVER_VERSION}"
k apply -f "$METRICS_SERVER_URL"
# kind's kubelets serve self-signed certificates.
if ! k get deployment metrics-server -n kube-system -o jsonpath='{.spec.template.spec.containers[0].args}' \
    | grep -q -- '--kubelet-insecure-tls'; then
  k patch deployment metrics-server -n kube-system --type=json \
    -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi
k rollout status deployment/metrics-server -n kube-system --timeout=180s

# --- 4. KEDA ---------------------------------------------------------------------------------
log "KEDA ${KEDA_VERSION}"
# Server-side apply: the CRDs are too large for the last-applied annotation.
k apply --server-side --force-conflicts -f "$KEDA_URL"
k wait --for=condition=Established crd/scaledobjects.keda.sh --timeout=60s
for d in keda-operator keda-operator-metrics-apiserver keda-admission-webhooks; do
  k rollout status "deployment/$d" -n keda --timeout=240s
done

log "cluster ready"
cat <<EOF
context: ${CTX}
next:    ./scripts/deploy.sh
EOF
