#!/usr/bin/env bash
# Removes logjet from the cluster: by default the namespace log-analytics (with its PVCs, so the
# JetStream and Redis data go too); with --cluster the whole kind cluster. Safe to re-run.
#
# Usage: scripts/cleanup.sh [--cluster] [-h|--help]
# Environment: CLUSTER_NAME (default: logjet), KUBE_CONTEXT (default: kind-<CLUSTER_NAME> when it
# exists, else the current context)
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-logjet}"
NAMESPACE="log-analytics"
MODE="namespace"

usage() { sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "cleanup: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster) MODE="cluster" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

if [[ "$MODE" == "cluster" ]]; then
  command -v kind >/dev/null 2>&1 || die "'kind' is required to delete the cluster: https://kind.sigs.k8s.io/"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    kind delete cluster --name "$CLUSTER_NAME"
  else
    echo "no kind cluster named '$CLUSTER_NAME'; nothing to do"
  fi
  exit 0
fi

command -v kubectl >/dev/null 2>&1 || die "'kubectl' is required: https://kubernetes.io/docs/tasks/tools/"
if [[ -z "${KUBE_CONTEXT:-}" ]]; then
  if kubectl config get-contexts -o name 2>/dev/null | grep -qx "kind-${CLUSTER_NAME}"; then
    KUBE_CONTEXT="kind-${CLUSTER_NAME}"
  else
    KUBE_CONTEXT="$(kubectl config current-context 2>/dev/null)" || die "no kubectl context"
  fi
fi
echo "deleting namespace ${NAMESPACE} (context ${KUBE_CONTEXT}) and everything in it"
kubectl --context "$KUBE_CONTEXT" delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=300s
