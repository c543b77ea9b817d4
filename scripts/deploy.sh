#!/usr/bin/env bash
# Deploys logjet with `kubectl apply -k kustomize/overlays/<overlay>` to the current cluster,
# waits for every rollout and prints the port-forward commands. Safe to re-run.
#
# Environment:
#   OVERLAY       kustomize overlay under kustomize/overlays (default: kind)
#   CLUSTER_NAME  kind cluster made by setup-cluster.sh (default: logjet)
#   KUBE_CONTEXT  kubectl context (default: kind-<CLUSTER_NAME> when it exists, else the current one)
#   TIMEOUT       rollout wait per workload (default: 300s)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OVERLAY="${OVERLAY:-kind}"
TIMEOUT="${TIMEOUT:-300s}"
NAMESPACE="log-analytics"
DIR="kustomize/overlays/${OVERLAY}"

die() { echo "deploy: $*" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 \
  || die "'kubectl' is required but not on PATH. Install kubectl 1.32: https://kubernetes.io/docs/tasks/tools/"
[[ -f "$DIR/kustomization.yaml" ]] || die "no overlay at $DIR"

if [[ -z "${KUBE_CONTEXT:-}" ]]; then
  if kubectl config get-contexts -o name 2>/dev/null | grep -qx "kind-${CLUSTER_NAME:-logjet}"; then
    KUBE_CONTEXT="kind-${CLUSTER_NAME:-logjet}"
  else
    KUBE_CONTEXT="$(kubectl config current-context 2>/dev/null)" \
      || die "no kubectl context; run ./scripts/setup-cluster.sh first"
  fi
fi
k() { kubectl --context "$KUBE_CONTEXT" "$@"; }

k cluster-info >/dev/null 2>&1 || die "cluster of context '$KUBE_CONTEXT' is not reachable"
# The ScaledObject cannot be applied before KEDA's CRDs exist.
k get crd scaledobjects.keda.sh >/dev/null 2>&1 \
  || die "KEDA is not installed (no CRD scaledobjects.keda.sh): run ./scripts/setup-cluster.sh, or install KEDA 2.16+"
if ! k get apiservice v1beta1.metrics.k8s.io >/dev/null 2>&1; then
  echo "deploy: warning: metrics-server is not installed; CPU autoscaling will not act" >&2
fi

# The kind overlays generate development-only Secrets; any other overlay expects the operator's
# (docs/kubernetes.md, Secrets): without them the pods would wait in CreateContainerConfigError.
if [[ "$OVERLAY" != kind* ]]; then
  missing=()
  for s in logjet-api-keys logjet-dashboard-key logjet-nats-credentials logjet-redis-credentials; do
    k get secret "$s" -n "$NAMESPACE" >/dev/null 2>&1 || missing+=("$s")
  done
  [[ ${#missing[@]} -eq 0 ]] \
    || die "missing Secrets in $NAMESPACE: ${missing[*]}; create them with ./scripts/k8s-secrets.sh --context $KUBE_CONTEXT"
fi

echo "==> applying $DIR to context $KUBE_CONTEXT"
k apply -k "$DIR"

echo "==> waiting for rollouts (timeout ${TIMEOUT} each)"
for w in statefulset/nats statefulset/redis deployment/ingest deployment/processor deployment/query deployment/dashboard; do
  k rollout status "$w" -n "$NAMESPACE" --timeout="$TIMEOUT"
done

echo
k get pods,svc,hpa,scaledobject,pdb -n "$NAMESPACE"
cat <<EOF

logjet is up in namespace ${NAMESPACE}. Reach it with port-forwards (one per terminal):
  kubectl port-forward -n ${NAMESPACE} svc/dashboard 3000:3000   # http://localhost:3000
  kubectl port-forward -n ${NAMESPACE} svc/ingest 8000:8000      # POST http://localhost:8000/logs
  kubectl port-forward -n ${NAMESPACE} svc/query 8001:8001       # http://localhost:8001/openapi.json
  kubectl port-forward -n ${NAMESPACE} svc/nats 8222:8222        # NATS monitoring, /jsz
Watch the processor scale on consumer lag:
  kubectl get scaledobject,hpa -n ${NAMESPACE} -w
Ingest and query want an API key (Authorization: Bearer); add one with ./scripts/k8s-secrets.sh --add-key.
EOF
if [[ "$OVERLAY" == kind* ]]; then
  cat <<EOF
On kind, the development key (public, scopes ingest and query):
  KEY="\$(cat kustomize/overlays/kind/secrets/dev-api-key)"
  curl -s -XPOST localhost:8000/logs -H "authorization: Bearer \$KEY" -d '{"service":"api","message":"hello"}'
EOF
fi
