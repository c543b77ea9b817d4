#!/usr/bin/env bash
# Monitoring for logjet on Kubernetes: installs kube-prometheus-stack (Prometheus operator,
# Prometheus, Alertmanager, Grafana) with Helm into the namespace `monitoring`, then deploys logjet
# with the monitoring component (kustomize/overlays/kind-monitoring: PodMonitors, the alert rules
# as a PrometheusRule, the Grafana dashboard as a ConfigMap), and prints how to reach Grafana.
# Safe to re-run (helm upgrade --install, kubectl apply).
#
# Environment:
#   OVERLAY       overlay under kustomize/overlays that includes components/monitoring
#                 (default: kind-monitoring)
#   CLUSTER_NAME  kind cluster made by setup-cluster.sh (default: logjet)
#   KUBE_CONTEXT  kubectl context (default: kind-<CLUSTER_NAME> when it exists, else the current one)
#
# The Helm release is named "prometheus": kube-prometheus-stack's Prometheus selects PodMonitors
# and PrometheusRules labelled `release: prometheus` (as the component's are), and its Grafana
# Service is then `prometheus-grafana`. See docs/observability.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CHART="prometheus-community/kube-prometheus-stack"
CHART_REPO="https://prometheus-community.github.io/helm-charts"
# Pinned: Prometheus operator v0.81 (scripts/k8s-validate.sh checks the component against the
# operator's v0.80 CRD models; PodMonitor and PrometheusRule did not change between them).
CHART_VERSION="70.10.0"
RELEASE="prometheus"
NAMESPACE="monitoring"
OVERLAY="${OVERLAY:-kind-monitoring}"

die() { echo "monitoring-setup: $*" >&2; exit 1; }
command -v helm >/dev/null 2>&1 \
  || die "'helm' (v3) is required but not on PATH. Install it: https://helm.sh/docs/intro/install/"
command -v kubectl >/dev/null 2>&1 \
  || die "'kubectl' is required but not on PATH. Install kubectl 1.32: https://kubernetes.io/docs/tasks/tools/"
[[ -f "kustomize/overlays/$OVERLAY/kustomization.yaml" ]] || die "no overlay at kustomize/overlays/$OVERLAY"

if [[ -z "${KUBE_CONTEXT:-}" ]]; then
  if kubectl config get-contexts -o name 2>/dev/null | grep -qx "kind-${CLUSTER_NAME:-logjet}"; then
    KUBE_CONTEXT="kind-${CLUSTER_NAME:-logjet}"
  else
    KUBE_CONTEXT="$(kubectl config current-context 2>/dev/null)" \
      || die "no kubectl context; run ./scripts/setup-cluster.sh first"
  fi
fi
export KUBE_CONTEXT
k() { kubectl --context "$KUBE_CONTEXT" "$@"; }
k cluster-info >/dev/null 2>&1 || die "cluster of context '$KUBE_CONTEXT' is not reachable"

# Values for a laptop-sized cluster (why each is set: in the file).
VALUES="infra/kind/kube-prometheus-stack.values.yaml"

echo "==> helm: $CHART $CHART_VERSION as release '$RELEASE' in namespace '$NAMESPACE'"
helm repo add prometheus-community "$CHART_REPO" --force-update >/dev/null
helm repo update prometheus-community >/dev/null
helm --kube-context "$KUBE_CONTEXT" upgrade --install "$RELEASE" "$CHART" \
  --version "$CHART_VERSION" --namespace "$NAMESPACE" --create-namespace \
  --values "$VALUES" --wait --timeout 10m

for crd in podmonitors prometheusrules servicemonitors; do
  k wait --for condition=established --timeout=120s "crd/$crd.monitoring.coreos.com" >/dev/null
done

echo "==> logjet with monitoring: kustomize/overlays/$OVERLAY"
OVERLAY="$OVERLAY" ./scripts/deploy.sh

cat <<MSG

  Monitoring is installed (kube-prometheus-stack $CHART_VERSION, namespace $NAMESPACE).

  Grafana (dashboard "logjet pipeline", folder General):
    kubectl --context $KUBE_CONTEXT port-forward -n $NAMESPACE svc/$RELEASE-grafana 3001:80
    open http://localhost:3001  (user: admin)
  Its password:
    kubectl --context $KUBE_CONTEXT get secret -n $NAMESPACE $RELEASE-grafana -o jsonpath='{.data.admin-password}' | base64 -d; echo
  Prometheus (alerts: Status > Rules, look for the "logjet" group):
    kubectl --context $KUBE_CONTEXT port-forward -n $NAMESPACE svc/$RELEASE-kube-prometheus-prometheus 9090:9090
    open http://localhost:9090

MSG
