#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests in kustomize/ (no cluster needed):
#   1. render      kubectl kustomize of base and every overlay
#   2. schema      strict Kubernetes 1.32 schemas (PyPI kubernetes-validate --strict) for every
#                  built-in kind; CRD kinds are handed to step 3, any other unknown kind fails
#   3. keda        ScaledObjects against KEDA's CRD schema (the JSON Schema of PyPI
#                  cloudcoil-models-keda, the models generated from the KEDA 2.16.1 CRDs that
#                  setup-cluster.sh installs) with unknown fields rejected, trigger types
#                  allow-listed {nats-jetstream, cpu}, and the
#                  cross-object rules: lagThreshold > the processor's in-flight window
#                  (LOGJET_FETCH_BATCH), stream/consumer equal to the processor's, no HPA on a
#                  KEDA-scaled Deployment, PDBs that never block every eviction
#   4. monitoring  the Prometheus operator objects of kustomize/components/monitoring (rendered in
#                  overlays/kind-monitoring only): PodMonitors and the PrometheusRule against the
#                  JSON Schemas of the operator's CRD models (PyPI
#                  cloudcoil-models-prometheus-operator, operator v0.80) with unknown fields
#                  rejected; every logjet service and the NATS exporter
#                  selected by one PodMonitor on a port the pod declares; the release label
#                  kube-prometheus-stack selects by; every alert with expr, for, a severity, a
#                  summary and a description; the dashboard ConfigMap labelled for Grafana's
#                  sidecar and holding dashboard JSON
#   5. checkov     --framework kubernetes,kustomize over kustomize/, settings and the justified
#                  skips in infra/checkov/config.yaml; any other skip fails the run
#   6. shellcheck  the Kubernetes scripts (skipped with a note when shellcheck is missing)
#
# Steps 3-5 are judged by logjet-k8s (tests/src/bin/logjet-k8s.rs, the Kubernetes model of the
# drift tests, cargo-built on first use). Python tools live in the shared venv ($TOOLS/venv,
# scripts/lib.sh), installed once per machine and reused.
# Usage: scripts/k8s-validate.sh            exits non-zero on any failure
#        KEEP_RENDERED=dir scripts/k8s-validate.sh   also leaves the rendered YAML in dir
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

K8S_VERSION="1.32"
TARGETS=(base overlays/kind overlays/prod overlays/kind-monitoring)
PY="$VENV/bin/python"
# Pinned so results do not drift; cloudcoil-models-keda 2.16.1.0 matches KEDA v2.16.1.
PY_REQUIREMENTS=(
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "cloudcoil-models-keda==2.16.1.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
)
SHELL_SCRIPTS=(scripts/k8s-validate.sh scripts/setup-cluster.sh scripts/deploy.sh scripts/cleanup.sh
  scripts/monitoring-setup.sh scripts/k8s-secrets.sh scripts/k8s-pods-test.sh)

die() { echo "k8s-validate: $*" >&2; exit 2; }

command -v kubectl >/dev/null 2>&1 || die "kubectl is required (it renders the overlays with 'kubectl kustomize'); install kubectl >= 1.27"
command -v python3 >/dev/null 2>&1 || die "python3 (with the venv module) is required for the validators"

# --- tools -----------------------------------------------------------------------------------
ensure_tools() {
  if [[ ! -x "$PY" ]]; then
    echo "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  local stamp="$VENV/.logjet-k8s-validate"
  local want
  want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "installing validators into $VENV: ${PY_REQUIREMENTS[*]}"
  "$PY" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" \
    || die "pip install failed"
  printf '%s\n' "$want" >"$stamp"
}
ensure_tools

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

declare -a SUMMARY=()
FAILED=0
record() { # name status detail
  SUMMARY+=("$(printf '%-11s %-5s %s' "$1" "$2" "$3")")
  if [[ "$2" == "FAIL" ]]; then FAILED=1; fi
}
slug() { echo "${1//\//-}"; }

# --- 1. render -------------------------------------------------------------------------------
RENDERED=()
for t in "${TARGETS[@]}"; do
  out="$WORK/$(slug "$t").yaml"
  if kubectl kustomize "kustomize/$t" >"$out" 2>"$WORK/render.err"; then
    RENDERED+=("$out")
    record render ok "kustomize/$t ($(grep -c '^kind:' "$out") objects)"
  else
    cat "$WORK/render.err" >&2
    record render FAIL "kustomize/$t does not render"
  fi
done
if [[ -n "${KEEP_RENDERED:-}" ]]; then
  mkdir -p "$KEEP_RENDERED"
  cp "${RENDERED[@]}" "$KEEP_RENDERED"/
fi

# Everything but KEDA's and the Prometheus operator's objects goes to kubernetes-validate, so any
# other CRD kind (which it has no schema for) fails the schema step instead of going unchecked.
LOGJET_K8S="$(logjet_k8s_bin debug)"
for f in "${RENDERED[@]}"; do
  "$LOGJET_K8S" core-objects "$f" >"${f%.yaml}.core.yaml"
done

# The JSON Schemas of the pinned CRD models (PY_REQUIREMENTS), for steps 3 and 4.
mkdir -p "$WORK/schemas"
export_schema() { # MODULE CLASS
  "$PY" -c 'import importlib, json, sys
print(json.dumps(getattr(importlib.import_module(sys.argv[1]), sys.argv[2]).model_json_schema()))' \
    "$1" "$2" >"$WORK/schemas/$2.json" || die "could not export the schema of $1.$2"
}
export_schema cloudcoil.models.keda.v1alpha1 ScaledObject
for kind in PodMonitor ServiceMonitor PrometheusRule; do
  export_schema cloudcoil.models.prometheus_operator.v1 "$kind"
done

# --- 2. schema -------------------------------------------------------------------------------
for f in "${RENDERED[@]}"; do
  name="$(basename "$f" .yaml)"
  core="${f%.yaml}.core.yaml"
  if "$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" "$core" \
      >"$WORK/kv.out" 2>&1 && ! grep -q "Couldn't find schema" "$WORK/kv.out"; then
    record schema ok "$name: $(grep -c '^---$' "$core") objects, strict, Kubernetes $K8S_VERSION"
  else
    sed "s|$WORK/||g" "$WORK/kv.out" >&2
    record schema FAIL "$name: see errors above"
  fi
done

# --- 3. keda ---------------------------------------------------------------------------------
if "$LOGJET_K8S" check-keda --schemas "$WORK/schemas" "${RENDERED[@]}" >"$WORK/keda.out" 2>&1; then
  while read -r line; do record keda ok "${line#ok   }"; done <"$WORK/keda.out"
else
  cat "$WORK/keda.out" >&2
  record keda FAIL "see errors above"
fi

# --- 4. monitoring ---------------------------------------------------------------------------
# Only the monitoring overlay carries them (the others must apply without the operator).
if "$LOGJET_K8S" check-monitoring --schemas "$WORK/schemas" --require overlays-kind-monitoring \
    "${RENDERED[@]}" >"$WORK/monitoring.out" 2>&1; then
  while read -r line; do record monitoring ok "${line#ok   }"; done <"$WORK/monitoring.out"
else
  cat "$WORK/monitoring.out" >&2
  record monitoring FAIL "see errors above"
fi

# --- 5. checkov ------------------------------------------------------------------------------
# The only skip allowed besides infra/checkov/config.yaml's skip-check list: CKV_K8S_15 by
# annotation in the kind overlay and in kind-monitoring, which includes it (justified in that file).
if "$VENV/bin/checkov" --config-file infra/checkov/config.yaml -o json \
    >"$WORK/checkov.json" 2>"$WORK/checkov.err"; then ck_rc=0; else ck_rc=$?; fi
if "$LOGJET_K8S" checkov-kubernetes "$WORK/checkov.json" "$ck_rc" >"$WORK/checkov.out" 2>&1; then
  while read -r line; do record checkov ok "$line"; done <"$WORK/checkov.out"
else
  cat "$WORK/checkov.out" >&2
  grep -v '^\s*$' "$WORK/checkov.err" | tail -20 >&2 || true
  record checkov FAIL "see findings above"
fi

# --- 6. shellcheck ---------------------------------------------------------------------------
present=()
for s in "${SHELL_SCRIPTS[@]}"; do [[ -f "$s" ]] && present+=("$s"); done
if ! command -v shellcheck >/dev/null 2>&1; then
  record shellcheck skip "shellcheck not installed (apt-get install shellcheck)"
elif shellcheck -x "${present[@]}"; then
  record shellcheck ok "${present[*]}"
else
  record shellcheck FAIL "see findings above"
fi

# --- summary ---------------------------------------------------------------------------------
echo
echo "Kubernetes manifests, offline validation:"
printf '  %s\n' "${SUMMARY[@]}"
if [[ "$FAILED" -ne 0 ]]; then
  echo "k8s-validate: FAILED"
  exit 1
fi
echo "k8s-validate: all checks passed"
