#!/usr/bin/env bash
# Runs the whole platform locally: NATS (JetStream) and Redis (the ones already running at the
# configured URLs, or its own under .data/), then ingest, processor, query, the archiver (archive in
# .data/archive) and the dashboard in
# release mode, each on its default address (from the code: logjet-k8s defaults).
# Ctrl-C stops everything it started.
#   ./scripts/dev.sh
#   ./scripts/dev.sh --with-monitoring   also a Prometheus on :9090 scraping every service, with
#                                        logjet's alert rules (infra/prometheus/, docs/observability.md)
#   LOGJET_NATS_URL=nats://host:4222 LOGJET_REDIS_URL=redis://host:6379 ./scripts/dev.sh
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT"

WITH_MONITORING=0
[[ " $* " == *" --with-monitoring "* ]] && WITH_MONITORING=1

export LOGJET_LOG_FORMAT="${LOGJET_LOG_FORMAT:-pretty}"
# Local development: no API keys (the services say so loudly at start-up), and a dashboard that
# asks nobody who they are (LOGJET_DASHBOARD_AUTH=off: it could not check keys against a query
# service without them). To try the sign-in page: docs/security.md, "Trying sign-in locally".
export LOGJET_AUTH="${LOGJET_AUTH:-off}"
export LOGJET_DASHBOARD_AUTH="${LOGJET_DASHBOARD_AUTH:-off}"
DATA="$ROOT/.data"
mkdir -p "$DATA/logs"

PIDS=()
cleanup() {
  trap - INT TERM EXIT
  if [[ ${#PIDS[@]} -gt 0 ]]; then
    log "stopping ${#PIDS[@]} processes"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap cleanup INT TERM EXIT

hostport() { local u="${1#*://}"; u="${u##*@}"; echo "${u%%/*}"; }
port_open() { local hp; hp="$(hostport "$1")"; (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; }

apt_install curl
command -v cargo >/dev/null || die "cargo is required: install Rust with rustup (https://rustup.rs)"

log "building release binaries (first time takes a few minutes)"
cargo build --release --bins -p logjet-ingest -p logjet-processor -p logjet-query -p logjet-archiver -p logjet-dashboard
"$ROOT/scripts/build-dashboard.sh"
BIN="$ROOT/target/release"

# The services' defaults, from the code (logjet-k8s defaults: `<service>.<key>=<value>` lines).
LOGJET_K8S="$(logjet_k8s_bin release)"
declare -A DEFAULT=()
while IFS='=' read -r key value; do DEFAULT[$key]=$value; done < <("$LOGJET_K8S" defaults)
SERVICES=(ingest processor query archiver dashboard)
# The archive: a directory, no extra server (docs/archive.md).
export LOGJET_ARCHIVE_URL="${LOGJET_ARCHIVE_URL:-file://.data/archive}"
declare -A PORT=()
for svc in "${SERVICES[@]}"; do
  [[ -n "${DEFAULT[$svc.listen]:-}" ]] || die "logjet-k8s defaults names no listen address for $svc"
  PORT[$svc]="${DEFAULT[$svc.port]}"
done
export LOGJET_NATS_URL="${LOGJET_NATS_URL:-${DEFAULT[processor.nats_url]}}"
export LOGJET_REDIS_URL="${LOGJET_REDIS_URL:-${DEFAULT[processor.redis_url]}}"

# --- NATS -------------------------------------------------------------------------------------
if port_open "$LOGJET_NATS_URL"; then
  log "using NATS at $LOGJET_NATS_URL"
else
  command -v nats-server >/dev/null || apt_install nats-server
  hp="$(hostport "$LOGJET_NATS_URL")"
  log "starting nats-server with JetStream on ${hp##*:} (data in .data/nats)"
  nats-server -a 127.0.0.1 -p "${hp##*:}" -m 8222 -js -sd "$DATA/nats" >"$DATA/logs/nats.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do port_open "$LOGJET_NATS_URL" && break; sleep 0.1; done
  port_open "$LOGJET_NATS_URL" || die "nats-server did not start; see .data/logs/nats.log"
fi

# --- Redis ------------------------------------------------------------------------------------
if port_open "$LOGJET_REDIS_URL"; then
  log "using Redis at $LOGJET_REDIS_URL"
else
  command -v redis-server >/dev/null || apt_install redis-server
  hp="$(hostport "$LOGJET_REDIS_URL")"
  log "starting redis-server on ${hp##*:} (data in .data/redis)"
  mkdir -p "$DATA/redis"
  redis-server --port "${hp##*:}" --bind 127.0.0.1 --dir "$DATA/redis" --appendonly yes \
    >"$DATA/logs/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do port_open "$LOGJET_REDIS_URL" && break; sleep 0.1; done
  port_open "$LOGJET_REDIS_URL" || die "redis-server did not start; see .data/logs/redis.log"
fi

# --- services ---------------------------------------------------------------------------------
start() { # name
  log "starting $1 on ${DEFAULT[$1.listen]}"
  LOGJET_LISTEN="${DEFAULT[$1.listen]}" "$BIN/logjet-$1" >"$DATA/logs/$1.log" 2>&1 &
  PIDS+=($!)
}
for svc in "${SERVICES[@]}"; do start "$svc"; done
for svc in "${SERVICES[@]}"; do
  u="http://127.0.0.1:${PORT[$svc]}/readyz"
  wait_http "$u" 30 || die "$u not ready; see .data/logs/"
done

# --- Prometheus (--with-monitoring) ----------------------------------------------------------
PROM_MSG=""
if [[ $WITH_MONITORING -eq 1 ]]; then
  command -v prometheus >/dev/null || apt_install prometheus
  log "starting prometheus on 9090 (infra/prometheus/prometheus.yml, data in .data/prometheus)"
  prometheus --config.file="$ROOT/infra/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DATA/prometheus" --web.listen-address=127.0.0.1:9090 \
    >"$DATA/logs/prometheus.log" 2>&1 &
  PIDS+=($!)
  wait_http http://127.0.0.1:9090/-/ready 30 || die "prometheus did not start; see .data/logs/prometheus.log"
  PROM_MSG="  prometheus http://localhost:9090      alerts /alerts, targets /targets (Grafana: docs/observability.md)"
fi

cat <<MSG

  logjet is running (logs in .data/logs/, Ctrl-C stops it)

  dashboard  http://localhost:${PORT[dashboard]}      open it in a browser (no sign-in: LOGJET_DASHBOARD_AUTH=$LOGJET_DASHBOARD_AUTH, development only)
  ingest     http://localhost:${PORT[ingest]}      POST /logs
  query      http://localhost:${PORT[query]}      POST /logs/query, GET /stats/summary, /openapi.json
  processor  http://localhost:${PORT[processor]}      /metrics
  archiver   http://localhost:${PORT[archiver]}      /metrics; Parquet segments in .data/archive/

  Send a log:
    curl -X POST http://localhost:${PORT[ingest]}/logs -H 'Content-Type: application/json' \\
         -d '{"service":"api","level":"error","message":"boom"}'
  Or publish straight to JetStream (nats CLI):
    nats pub logs.api '{"level":"error","message":"boom"}'
  Then look:
    curl -s http://localhost:${PORT[query]}/stats/summary
    curl -s -X POST http://localhost:${PORT[query]}/logs/query -H 'Content-Type: application/json' \\
         -d '{"service":"api","limit":10}'
  Load:
    ./scripts/load-test.sh http://localhost:${PORT[ingest]} 10000

MSG
if [[ -n "$PROM_MSG" ]]; then printf '%s\n\n' "$PROM_MSG"; fi
wait -n "${PIDS[@]}" || true
warn "a process exited; stopping the rest (see .data/logs/)"
