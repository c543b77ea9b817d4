# The arm64 step of scripts/images-test.sh (sourced by it, after the amd64 checks; it uses that
# script's NATS server, RUN_ARGS, WORK, CONTAINERS, fail and http_code). Sets ARM64_RESULT.
#
# CI builds one service for arm64 (ingest, the smallest) to keep the run short: the cross build
# is a second fat-LTO build. scripts/build.sh --platform builds any of them.
# shellcheck shell=bash
# shellcheck disable=SC2034 # ARM64_RESULT is printed by images-test.sh

ARM64_IMAGE=logjet/ingest:dev-arm64
ARM64_PORT="$(free_port)"
ARM64_NAME="logjet-images-test-ingest-arm64-$$"
ARM64_EVENTS=10
ARM64_HOW="-"

apt_install qemu-user-static file binutils

# arm64_binfmt — makes the kernel run aarch64 ELF files through qemu-aarch64-static, which is what
# `podman run --platform linux/arm64` relies on. Debian's qemu-user-static ships the registration
# (/usr/lib/binfmt.d/qemu-aarch64.conf, flag F: the interpreter is opened now, so it also works
# inside a container's mount namespace); binfmt-support or systemd would load it at boot, neither
# runs here. Returns 1 when binfmt_misc cannot be used (no root, or a container without it).
arm64_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [[ -e $dir/qemu-aarch64 ]] && return 0
  [[ -e $dir/register ]] || as_root mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
  [[ -e $dir/qemu-aarch64 ]] && return 0
  log "registering qemu-aarch64 with binfmt_misc ($conf)"
  grep -v '^#' "$conf" | as_root tee "$dir/register" >/dev/null 2>&1 || return 1
  [[ -e $dir/qemu-aarch64 ]]
}

if [[ $BUILD -eq 1 ]]; then
  log "arm64: building logjet/ingest for linux/amd64 and linux/arm64 (a manifest list)"
  t0=$SECONDS
  ./scripts/build.sh --from-host --engine podman --platform linux/amd64,linux/arm64 ingest
  log "arm64: build took $((SECONDS - t0)) s"
fi

arm64_checks() {
  local platforms mnt bin desc size goal t0 code accepted ready

  # the manifest list names both platforms
  platforms="$(podman manifest inspect logjet/ingest:dev 2>/dev/null \
    | jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(",")' || true)"
  [[ $platforms == "linux/amd64,linux/arm64" ]] \
    || fail "arm64: logjet/ingest:dev is not a manifest list of linux/amd64 and linux/arm64 (it lists '$platforms')"

  podman image exists "$ARM64_IMAGE" || { fail "arm64: no image $ARM64_IMAGE (drop --no-build)"; return; }
  [[ "$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$ARM64_IMAGE")" == linux/arm64 ]] \
    || fail "arm64: $ARM64_IMAGE is not a linux/arm64 image"

  # the binary in the image: a static aarch64 ELF, no program interpreter
  mnt="$(podman image mount "$ARM64_IMAGE")"
  cp "$mnt/usr/local/bin/logjet-ingest" "$WORK/logjet-ingest-arm64"
  podman image unmount "$ARM64_IMAGE" >/dev/null
  bin="$WORK/logjet-ingest-arm64"
  desc="$(file -b "$bin")"
  [[ $desc == *"ARM aarch64"* ]] || fail "arm64: the ingest binary is not aarch64: $desc"
  [[ $desc == *"static-pie linked"* || $desc == *"statically linked"* ]] \
    || fail "arm64: the ingest binary is not statically linked: $desc"
  if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
    fail "arm64: the ingest binary asks for a program interpreter"
  fi

  size="$(podman image inspect --format '{{.Size}}' "$ARM64_IMAGE")"
  goal="$(image_goal_mb ingest)"
  ((size <= goal * MB)) || fail "arm64: $ARM64_IMAGE is $size bytes, over its goal of $goal MB"

  # run it, emulated, as production runs the amd64 one
  t0=$SECONDS
  if arm64_binfmt; then
    ARM64_HOW="podman run --platform linux/arm64, binfmt_misc + qemu-aarch64-static"
    CONTAINERS+=("$ARM64_NAME")
    podman run -d --name "$ARM64_NAME" --platform linux/arm64 "${RUN_ARGS[@]}" \
      -e "LOGJET_LISTEN=127.0.0.1:$ARM64_PORT" -e LOGJET_LOG_FORMAT=json -e LOGJET_AUTH=off \
      -e "LOGJET_NATS_URL=$NATS_URL" "$ARM64_IMAGE" >/dev/null \
      || fail "arm64: podman run --platform linux/arm64 failed"
  else
    # No binfmt_misc here: the same binary, started by the emulator directly.
    ARM64_HOW="qemu-aarch64-static directly (binfmt_misc unavailable), not in a container"
    warn "arm64: binfmt_misc cannot be used here: running the binary with qemu-aarch64-static"
    LOGJET_LISTEN="127.0.0.1:$ARM64_PORT" LOGJET_LOG_FORMAT=json LOGJET_AUTH=off LOGJET_NATS_URL="$NATS_URL" \
      qemu-aarch64-static "$bin" >"$WORK/ingest-arm64.log" 2>&1 &
    PIDS+=($!)
  fi
  if ! wait_http "http://127.0.0.1:$ARM64_PORT/healthz" 60; then
    fail "arm64: /healthz did not answer within 60 s; its log:"
    { podman logs "$ARM64_NAME" 2>&1 || cat "$WORK/ingest-arm64.log"; } | tail -20 >&2 || true
    ARM64_RESULT="FAILED: no /healthz ($ARM64_HOW)"
    return
  fi
  ARM64_READY_S=$((SECONDS - t0))
  [[ "$(http_code "http://127.0.0.1:$ARM64_PORT/healthz")" == 200 ]] || fail "arm64: /healthz is not 200"
  wait_http "http://127.0.0.1:$ARM64_PORT/readyz" 30 || fail "arm64: /readyz did not answer 200 within 30 s"
  ready="$(http_code "http://127.0.0.1:$ARM64_PORT/readyz")"

  # the emulated binary does real work: parse NDJSON, publish to JetStream, answer 202
  head -n "$ARM64_EVENTS" "$WORK/events.ndjson" >"$WORK/arm64.ndjson" 2>/dev/null \
    || seq "$ARM64_EVENTS" | sed 's/.*/{"service":"arm64","message":"event &"}/' >"$WORK/arm64.ndjson"
  code="$(curl -s -o "$WORK/arm64-post.json" -w '%{http_code}' --max-time 30 -X POST \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/arm64.ndjson" \
    "http://127.0.0.1:$ARM64_PORT/logs" || true)"
  accepted="$(jq -r '.accepted' "$WORK/arm64-post.json" 2>/dev/null || echo "?")"
  [[ $code == 202 && $accepted == "$(wc -l <"$WORK/arm64.ndjson")" ]] \
    || fail "arm64: POST /logs answered $code, accepted $accepted: $(head -c 300 "$WORK/arm64-post.json" 2>/dev/null)"

  ARM64_RESULT="ingest $(awk -v b="$size" -v mb="$MB" 'BEGIN { printf "%.2f MB", b / mb }'), $(file -b "$bin" | grep -oE 'ARM aarch64|static-pie linked|statically linked' | paste -sd' '); manifest list $platforms; /healthz after ${ARM64_READY_S} s, /readyz $ready, POST $code accepted $accepted; via $ARM64_HOW"
}

arm64_checks
