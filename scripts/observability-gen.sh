#!/usr/bin/env bash
# Regenerates the Kubernetes copies of the alert rules and the Grafana dashboards in
# kustomize/components/monitoring (kustomize cannot read files outside a kustomization's
# directory, and a PrometheusRule needs the rules inline):
#   infra/prometheus/rules/logjet.rules.yml -> prometheusrule.yaml (spec = the rules file)
#   infra/grafana/dashboards/*.json         -> dashboards/ (byte copies)
# Usage: ./scripts/observability-gen.sh           rewrite the copies
#        ./scripts/observability-gen.sh --check   fail if they differ from what would be written
# tests/tests/observability.rs checks the same.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPONENT="$ROOT/kustomize/components/monitoring"
RULES="$ROOT/infra/prometheus/rules/logjet.rules.yml"
# The Helm release name of kube-prometheus-stack (scripts/monitoring-setup.sh): its Prometheus
# selects PrometheusRules labelled release=<name>.
RELEASE="${MONITORING_RELEASE:-prometheus}"

render() { # OUTDIR
  local out="$1"
  mkdir -p "$out/dashboards"
  {
    # The header (apiVersion, kind, metadata with the release label), then the rules file.
    sed "s/@RELEASE@/$RELEASE/" "$ROOT/infra/prometheus/prometheusrule-header.yaml.in"
    # The rules file, indented under spec: (blank lines stay empty).
    sed -e '/./s/^/  /' "$RULES"
  } >"$out/prometheusrule.yaml"
  cp "$ROOT"/infra/grafana/dashboards/*.json "$out/dashboards/"
}

if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  render "$tmp"
  status=0
  diff -u "$COMPONENT/prometheusrule.yaml" "$tmp/prometheusrule.yaml" || status=1
  diff -ru "$COMPONENT/dashboards" "$tmp/dashboards" || status=1
  if [[ $status -ne 0 ]]; then
    echo "observability-gen: kustomize/components/monitoring is stale: run ./scripts/observability-gen.sh" >&2
  fi
  exit $status
fi
render "$COMPONENT"
echo "wrote kustomize/components/monitoring/prometheusrule.yaml and dashboards/"
