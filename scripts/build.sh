#!/usr/bin/env bash
# Builds logjet's container images (infra/docker/Dockerfile, one target per service) and ends
# with a size table against the goals and the old platform's figures.
#
#   scripts/build.sh                      every image, compiled inside the Rust builder image
#   scripts/build.sh --from-host          static musl binaries built here (profile dist), packed
#                                         FROM scratch (for engines that cannot pull a builder)
#   scripts/build.sh --push REGISTRY      also push REGISTRY/logjet/<svc>:<version> and :dev
#   scripts/build.sh ingest query         only some services
#
# Options:
#   --from-host          see above; the binaries must be statically linked or the build fails
#   --push REGISTRY      e.g. --push ghcr.io/acme (after the build; log in to it first)
#   --engine docker|podman
#                        default: Docker BuildKit when a Docker engine answers `docker info`,
#                        else podman/buildah (installed with apt-get when missing), configured by
#                        infra/podman/containers.conf (CONTAINERS_CONF)
#   -h, --help
#
# Tags: logjet/<svc>:<version from Cargo.toml> and logjet/<svc>:dev (podman stores them as
# localhost/logjet/<svc>:...). The dashboard image is built once dashboard/ exists.
# Sizes are also written to target/images/sizes.tsv.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

DOCKERFILE=infra/docker/Dockerfile
MUSL_TARGET=x86_64-unknown-linux-musl
PROFILE=dist
OUT="$ROOT/target/images"
CONTEXT="$OUT/context"
ALL_SERVICES=(ingest processor query archiver dashboard)
MB=1000000 # sizes in MB (10^6 bytes), as `docker images` shows them

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

FROM_HOST=0
PUSH=""
ENGINE=""
SERVICES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-host) FROM_HOST=1 ;;
    --push) [[ $# -ge 2 ]] || die "--push needs a registry"; PUSH="${2%/}"; shift ;;
    --push=*) PUSH="${1#--push=}"; PUSH="${PUSH%/}" ;;
    --engine) [[ $# -ge 2 ]] || die "--engine needs docker or podman"; ENGINE="$2"; shift ;;
    --engine=*) ENGINE="${1#--engine=}" ;;
    -h | --help) usage; exit 0 ;;
    ingest | processor | query | archiver | dashboard) SERVICES+=("$1") ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

# --- what to build ----------------------------------------------------------------------------
if [[ ${#SERVICES[@]} -eq 0 ]]; then
  SERVICES=("${ALL_SERVICES[@]}")
fi
if [[ ! -d dashboard ]]; then
  kept=()
  for s in "${SERVICES[@]}"; do
    if [[ $s == dashboard ]]; then
      warn "dashboard: skipped, dashboard/ does not exist yet (its targets are ready in $DOCKERFILE)"
    else
      kept+=("$s")
    fi
  done
  SERVICES=("${kept[@]}")
fi
[[ ${#SERVICES[@]} -gt 0 ]] || die "nothing to build"

VERSION="$(awk '/^\[workspace\.package\]/ { p = 1; next } /^\[/ { p = 0 }
  p && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml)"
[[ -n "$VERSION" ]] || die "no version in [workspace.package] of Cargo.toml"
SOURCE="$(awk '/^\[workspace\.package\]/ { p = 1; next } /^\[/ { p = 0 }
  p && /^repository *=/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ $REVISION != unknown ]] && ! git diff --quiet HEAD 2>/dev/null; then
  REVISION="$REVISION-dirty"
fi
# Image timestamps from the commit, so unchanged inputs give identical images.
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || date +%s)"

# --- engine -----------------------------------------------------------------------------------
if [[ -z "$ENGINE" ]]; then
  if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    ENGINE=podman
    log "no Docker engine answers \`docker info\`: using podman/buildah"
  fi
fi
case "$ENGINE" in
  docker)
    timeout 20 docker info >/dev/null 2>&1 || die "--engine docker: no Docker engine answers \`docker info\`"
    export DOCKER_BUILDKIT=1
    ;;
  podman)
    apt_install podman buildah runc
    export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
    ;;
  *) die "--engine must be docker or podman, not $ENGINE" ;;
esac

image_size() { "$ENGINE" image inspect --format '{{.Size}}' "$1"; }

# --- host build (--from-host) -----------------------------------------------------------------
# is_static BINARY — true when BINARY has no program interpreter and no dynamic dependencies.
is_static() {
  local bin="$1" desc
  desc="$(file -b "$bin")"
  [[ $desc == *"static-pie linked"* || $desc == *"statically linked"* ]] || return 1
  # belt and braces: no PT_INTERP (dynamic loader) in the program headers
  ! readelf -lW "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'
}

build_on_host() {
  local packages=() s
  command -v cargo >/dev/null || die "cargo is required for --from-host: install Rust with rustup"
  apt_install file binutils
  rustup_target "$MUSL_TARGET"
  # musl-gcc for the C code of ring (async-nats TLS) when targeting musl
  apt_install musl-tools
  for s in "${SERVICES[@]}"; do packages+=(-p "logjet-$s"); done
  log "building static binaries on the host: cargo build --profile $PROFILE --target $MUSL_TARGET ${packages[*]}"
  log "(profile dist: fat LTO, codegen-units=1, panic=abort, strip; a cold build takes several minutes)"
  local t0=$SECONDS
  cargo build --locked --profile "$PROFILE" --target "$MUSL_TARGET" "${packages[@]}"
  log "host build done in $((SECONDS - t0)) s"

  log "staging the from-host build context in ${CONTEXT#"$ROOT"/}"
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT/bin" "$CONTEXT/rootfs/etc/ssl/certs"
  local bin
  for s in "${SERVICES[@]}"; do
    bin="target/$MUSL_TARGET/$PROFILE/logjet-$s"
    [[ -x "$bin" ]] || die "$bin was not built"
    if ! is_static "$bin"; then
      die "$bin is not statically linked: $(file -b "$bin")"
    fi
    log "  logjet-$s: $(file -b "$bin" | grep -oE 'static-pie linked|statically linked'), $(du -h "$bin" | cut -f1)"
    install -m 0555 "$bin" "$CONTEXT/bin/"
  done
  install -m 0444 infra/docker/rootfs/etc/passwd infra/docker/rootfs/etc/group "$CONTEXT/rootfs/etc/"
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates
  install -m 0444 /etc/ssl/certs/ca-certificates.crt "$CONTEXT/rootfs/etc/ssl/certs/"
  if [[ " ${SERVICES[*]} " == *" dashboard "* ]]; then
    if [[ -x scripts/build-dashboard.sh ]]; then
      log "building the dashboard bundle: scripts/build-dashboard.sh"
      ./scripts/build-dashboard.sh
    fi
    [[ -d dashboard/dist ]] || die "dashboard/dist does not exist: run scripts/build-dashboard.sh first"
    mkdir -p "$CONTEXT/dashboard"
    cp -R dashboard/dist "$CONTEXT/dashboard/dist"
    chmod -R a=rX "$CONTEXT/dashboard/dist"
  fi
}

# The Dockerfile the engine is given. Docker BuildKit gets infra/docker/Dockerfile as it is,
# except for --from-host, where the `# syntax=` line goes (it would make Docker pull the
# frontend image, and a from-host build must pull nothing). podman gets a copy with this build's
# version, revision and source written into the LABEL lines: buildah 1.28's layer cache matches
# ARG and LABEL steps by their text, not by the --build-arg values, and would reuse an image
# labelled with an older revision. It also drops `sharing=locked` from the cache mounts: buildah
# 1.28 keeps such a lock past the stage that took it, and the next stage that mounts the same
# cache waits forever. Without it the cache is shared, which is safe for what is cached: cargo
# locks its registry and target directories itself, and a podman build runs one stage at a time.
effective_dockerfile() {
  local out="$OUT/Dockerfile.$ENGINE"
  mkdir -p "$OUT"
  if [[ $ENGINE == docker && $FROM_HOST -eq 0 ]]; then
    echo "$DOCKERFILE"
    return
  fi
  if [[ $ENGINE == docker ]]; then
    sed -e '/^# syntax=/d' "$DOCKERFILE" >"$out"
  else
    sed -e '/^# syntax=/d' -e 's/,sharing=locked//g' \
      -e "/^LABEL\|^ *org\.opencontainers/ {
            s|\${VERSION}|$VERSION|g; s|\${REVISION}|$REVISION|g; s|\${SOURCE}|$SOURCE|g
          }" "$DOCKERFILE" >"$out"
  fi
  echo "$out"
}

# --- image builds -----------------------------------------------------------------------------
build_image() { # service
  local svc="$1" target context dockerfile t0=$SECONDS
  dockerfile="$(effective_dockerfile)"
  if [[ $FROM_HOST -eq 1 ]]; then
    target="$svc-from-host" context="$CONTEXT"
  else
    target="$svc" context="$ROOT"
  fi
  local args=(-f "$dockerfile" --target "$target"
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE"
    -t "logjet/$svc:$VERSION" -t "logjet/$svc:dev")
  log "building logjet/$svc:$VERSION (target $target, $ENGINE)"
  if [[ $ENGINE == docker ]]; then
    export SOURCE_DATE_EPOCH
    docker build --progress=plain --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" "${args[@]}" "$context"
  else
    # Docker image format: buildah ignores SHELL (bash -o pipefail) in OCI format.
    podman build --layers --format docker --timestamp "$SOURCE_DATE_EPOCH" "${args[@]}" "$context"
  fi
  BUILD_SECONDS[$svc]=$((SECONDS - t0))
}

push_image() { # service
  local svc="$1" tag
  for tag in "$VERSION" dev; do
    log "pushing $PUSH/logjet/$svc:$tag"
    if [[ $ENGINE == docker ]]; then
      docker tag "logjet/$svc:$tag" "$PUSH/logjet/$svc:$tag"
      docker push "$PUSH/logjet/$svc:$tag"
    else
      podman push "logjet/$svc:$tag" "$PUSH/logjet/$svc:$tag"
    fi
  done
}

# --- size table -------------------------------------------------------------------------------
mb() { awk -v b="$1" -v mb="$MB" 'BEGIN { printf "%.2f MB", b / mb }'; }

size_table() {
  local svc size gz goal status total=0 total_gz=0 over=0
  mkdir -p "$OUT"
  printf 'image\tbytes\tgzip_bytes\tgoal_mb\n' >"$OUT/sizes.tsv"
  printf '\n%-28s %10s %12s %9s  %s\n' "image" "size" "compressed" "goal" "result"
  for svc in "${SERVICES[@]}"; do
    size="$(image_size "logjet/$svc:$VERSION")"
    # what a registry stores and a node pulls: the image, gzip-compressed
    gz="$("$ENGINE" save "logjet/$svc:$VERSION" 2>/dev/null | gzip -9 | wc -c)"
    goal="$(image_goal_mb "$svc")"
    if ((size <= goal * MB)); then status=ok; else status="OVER GOAL"; over=1; fi
    printf '%-28s %10s %12s %9s  %s\n' "logjet/$svc:$VERSION" "$(mb "$size")" "$(mb "$gz")" "<= $goal MB" "$status"
    printf '%s\t%s\t%s\t%s\n' "logjet/$svc:$VERSION" "$size" "$gz" "$goal" >>"$OUT/sizes.tsv"
    total=$((total + size)) total_gz=$((total_gz + gz))
  done
  if ((total <= TOTAL_GOAL_MB * MB)); then status=ok; else status="OVER GOAL"; over=1; fi
  printf '%-28s %10s %12s %9s  %s\n' "all ${#SERVICES[@]} images" "$(mb "$total")" "$(mb "$total_gz")" "<= $TOTAL_GOAL_MB MB" "$status"
  printf '\n%s\n' "the platform logjet replaces (reference):"
  printf '  %-40s %7s\n' "Python API (after its 1.1 GB diet)" "165 MB" "nginx frontend" "95 MB" \
    "Go processor (scratch)" "8 MB" "together" "268 MB"
  printf '  %-40s %7s\n' "logjet, ${#SERVICES[@]} images" "$(mb "$total")"
  if [[ " ${SERVICES[*]} " != *" dashboard "* ]]; then
    printf '  (dashboard not built yet: its goal is ≤ %s MB)\n' "$(image_goal_mb dashboard)"
  fi
  printf 'goals: ingest, processor ≤ %s MB, query, archiver ≤ %s MB, dashboard ≤ %s MB, all four ≤ %s MB (MB = 10^6 bytes, uncompressed)\n' \
    "$(image_goal_mb ingest)" "$(image_goal_mb query)" "$(image_goal_mb dashboard)" "$TOTAL_GOAL_MB"
  [[ $over -eq 0 ]] || warn "an image is over its size goal"
}

# --- main -------------------------------------------------------------------------------------
# podman 4.3 exits 0 when it is interrupted: stop here rather than go on to the next image.
trap 'warn "interrupted"; exit 130' INT TERM
declare -A BUILD_SECONDS=()
log "logjet images ${SERVICES[*]}: version $VERSION, revision $REVISION, engine $ENGINE$([[ $FROM_HOST -eq 1 ]] && echo ", from host binaries")"
T0=$SECONDS
if [[ $FROM_HOST -eq 1 ]]; then
  build_on_host
fi
for svc in "${SERVICES[@]}"; do
  build_image "$svc"
done
if [[ -n "$PUSH" ]]; then
  for svc in "${SERVICES[@]}"; do push_image "$svc"; done
fi
times=()
for svc in "${SERVICES[@]}"; do times+=("$svc ${BUILD_SECONDS[$svc]} s;"); done
log "built ${#SERVICES[@]} images in $((SECONDS - T0)) s (image steps: ${times[*]})"
size_table
