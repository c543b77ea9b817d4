#!/usr/bin/env bash
# Builds logjet's container images (infra/docker/Dockerfile, one target per service) and ends
# with a size table against the goals and the old platform's figures.
#
#   scripts/build.sh                      every image, compiled inside the Rust builder image
#   scripts/build.sh --from-host          static musl binaries built here (profile dist), packed
#                                         FROM scratch (for engines that cannot pull a builder)
#   scripts/build.sh --push REGISTRY      also push REGISTRY/logjet/<svc>:<version> and :dev
#   scripts/build.sh ingest query         only some services
#   scripts/build.sh --from-host --platform linux/amd64,linux/arm64 ingest
#                                         a manifest list logjet/ingest:dev of both (podman)
#
# Options:
#   --from-host          see above; the binaries must be statically linked or the build fails
#   --push REGISTRY      e.g. --push ghcr.io/acme (after the build; log in to it first)
#   --platform LIST      linux/amd64 (default), linux/arm64 or both, comma-separated. Other than
#                        the default, with --from-host only: arm64 binaries are cross-built with
#                        cargo-zigbuild (zig from PyPI's ziglang, both installed once per machine).
#                        Each platform's image is tagged <tag>-<arch> (e.g. logjet/ingest:dev-arm64);
#                        with two platforms, logjet/<svc>:<version> and :dev are manifest lists of
#                        both (podman). The default tags plain amd64 images exactly as before.
#   --engine docker|podman
#                        default: Docker BuildKit when a Docker engine answers `docker info`,
#                        else podman/buildah (installed with apt-get when missing), configured by
#                        infra/podman/containers.conf (CONTAINERS_CONF)
#   -h, --help
#
# Tags: logjet/<svc>:<version from Cargo.toml> and logjet/<svc>:dev (podman stores them as
# localhost/logjet/<svc>:...), plus :<version>-<arch> and :dev-<arch> with --platform. The
# dashboard image is built once dashboard/ exists.
# Sizes are also written to target/images/sizes.tsv.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

DOCKERFILE=infra/docker/Dockerfile
PROFILE=dist
OUT="$ROOT/target/images"
# ziglang on PyPI: the C cross compiler (and linker) for aarch64 musl, for ring and mimalloc.
ZIGLANG_SPEC="ziglang==0.17.1"
ZIGBUILD_VERSION=0.24.1
ALL_SERVICES=(ingest processor query archiver dashboard)
MB=1000000 # sizes in MB (10^6 bytes), as `docker images` shows them

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

FROM_HOST=0
PUSH=""
ENGINE=""
PLATFORM_LIST=linux/amd64
SERVICES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-host) FROM_HOST=1 ;;
    --push) [[ $# -ge 2 ]] || die "--push needs a registry"; PUSH="${2%/}"; shift ;;
    --push=*) PUSH="${1#--push=}"; PUSH="${PUSH%/}" ;;
    --engine) [[ $# -ge 2 ]] || die "--engine needs docker or podman"; ENGINE="$2"; shift ;;
    --engine=*) ENGINE="${1#--engine=}" ;;
    --platform) [[ $# -ge 2 ]] || die "--platform needs linux/amd64, linux/arm64 or both"; PLATFORM_LIST="$2"; shift ;;
    --platform=*) PLATFORM_LIST="${1#--platform=}" ;;
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

# ARCHS: the platforms' architectures, in the order given. DEFAULT_ONLY: just linux/amd64, built
# and tagged as before --platform existed (no -<arch> tags, no manifest list).
ARCHS=()
IFS=',' read -r -a platforms <<<"$PLATFORM_LIST"
for p in "${platforms[@]}"; do
  case "$p" in
    linux/amd64 | linux/arm64) [[ " ${ARCHS[*]} " == *" ${p#linux/} "* ]] || ARCHS+=("${p#linux/}") ;;
    *) die "--platform: $p is not linux/amd64 or linux/arm64" ;;
  esac
done
[[ ${#ARCHS[@]} -gt 0 ]] || die "--platform: no platform given"
DEFAULT_ONLY=0
[[ "${ARCHS[*]}" == amd64 ]] && DEFAULT_ONLY=1
if [[ $DEFAULT_ONLY -eq 0 && $FROM_HOST -eq 0 ]]; then
  die "--platform $PLATFORM_LIST needs --from-host: the builder stages compile for x86_64 only"
fi
musl_target() { # arch
  case "$1" in amd64) echo x86_64-unknown-linux-musl ;; arm64) echo aarch64-unknown-linux-musl ;; esac
}
# The from-host build context of an architecture: amd64's is where it always was.
context_dir() { # arch
  if [[ $1 == amd64 ]]; then echo "$OUT/context"; else echo "$OUT/context-$1"; fi
}
# image_tag SVC TAG ARCH — the name of SVC's image for ARCH (TAG: the version or dev).
image_tag() {
  if [[ $DEFAULT_ONLY -eq 1 ]]; then echo "logjet/$1:$2"; else echo "logjet/$1:$2-$3"; fi
}

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
    [[ ${#ARCHS[@]} -eq 1 ]] || apt_install jq
    export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
    ;;
  *) die "--engine must be docker or podman, not $ENGINE" ;;
esac
if [[ $ENGINE == docker && ${#ARCHS[@]} -gt 1 ]]; then
  die "a manifest list of several platforms needs --engine podman (with Docker: docker buildx --push)"
fi

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

# ensure_zigbuild — cargo-zigbuild (~/.cargo/bin) and zig (PyPI ziglang, its own venv under
# $TOOLS), installed once per machine: zig is the C cross compiler and linker for aarch64 musl.
ensure_zigbuild() {
  if ! cargo zigbuild --help >/dev/null 2>&1; then
    log "installing cargo-zigbuild $ZIGBUILD_VERSION into ~/.cargo/bin (once per machine)"
    cargo install -q --locked cargo-zigbuild --version "$ZIGBUILD_VERSION" >/dev/null || die "cargo install cargo-zigbuild failed"
  fi
  local venv
  venv="$(tool_venv zig "$ZIGLANG_SPEC")"
  # cargo-zigbuild runs `python3 -m ziglang` when there is no `zig`: the venv's python3 first.
  export PATH="$venv/bin:$PATH"
}

# host_binaries ARCH — the static musl binaries of SERVICES for ARCH, staged in its context.
host_binaries() {
  local arch="$1" target packages=() s cargo_build=(cargo build)
  target="$(musl_target "$arch")"
  rustup_target "$target"
  if [[ $arch == amd64 ]]; then
    # musl-gcc for the C code of ring (async-nats TLS) and mimalloc when targeting musl
    apt_install musl-tools
  else
    ensure_zigbuild
    cargo_build=(cargo zigbuild)
  fi
  for s in "${SERVICES[@]}"; do packages+=(-p "logjet-$s"); done
  log "building static binaries on the host: ${cargo_build[*]} --profile $PROFILE --target $target ${packages[*]}"
  log "(profile dist: fat LTO, codegen-units=1, panic=abort, strip; a cold build takes several minutes)"
  local t0=$SECONDS
  "${cargo_build[@]}" --locked --profile "$PROFILE" --target "$target" "${packages[@]}"
  log "host build ($arch) done in $((SECONDS - t0)) s"

  local context
  context="$(context_dir "$arch")"
  log "staging the from-host build context in ${context#"$ROOT"/}"
  rm -rf "$context"
  mkdir -p "$context/bin" "$context/rootfs/etc/ssl/certs"
  local bin
  for s in "${SERVICES[@]}"; do
    bin="${CARGO_TARGET_DIR:-target}/$target/$PROFILE/logjet-$s"
    [[ -x "$bin" ]] || die "$bin was not built"
    if ! is_static "$bin"; then
      die "$bin is not statically linked: $(file -b "$bin")"
    fi
    elf_arch_is "$bin" "$arch" || die "$bin is not an $arch binary: $(file -b "$bin")"
    log "  logjet-$s ($arch): $(file -b "$bin" | grep -oE 'static-pie linked|statically linked'), $(du -h "$bin" | cut -f1)"
    install -m 0555 "$bin" "$context/bin/"
  done
  install -m 0444 infra/docker/rootfs/etc/passwd infra/docker/rootfs/etc/group "$context/rootfs/etc/"
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates
  install -m 0444 /etc/ssl/certs/ca-certificates.crt "$context/rootfs/etc/ssl/certs/"
  if [[ " ${SERVICES[*]} " == *" dashboard "* ]]; then
    [[ -d dashboard/dist ]] || die "dashboard/dist does not exist: run scripts/build-dashboard.sh first"
    mkdir -p "$context/dashboard"
    cp -R dashboard/dist "$context/dashboard/dist"
    chmod -R a=rX "$context/dashboard/dist"
  fi
}

# elf_arch_is BINARY ARCH — the ELF machine of BINARY is ARCH's (file: "x86-64", "ARM aarch64").
elf_arch_is() {
  local want
  case "$2" in amd64) want="x86-64" ;; arm64) want="ARM aarch64" ;; esac
  [[ "$(file -b "$1")" == *", $want,"* ]]
}

build_on_host() {
  local arch
  command -v cargo >/dev/null || die "cargo is required for --from-host: install Rust with rustup"
  apt_install file binutils
  # The dashboard's WebAssembly bundle is the same for every architecture: built once.
  if [[ " ${SERVICES[*]} " == *" dashboard "* && -x scripts/build-dashboard.sh ]]; then
    log "building the dashboard bundle: scripts/build-dashboard.sh"
    ./scripts/build-dashboard.sh
  fi
  for arch in "${ARCHS[@]}"; do host_binaries "$arch"; done
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
build_image() { # service arch
  local svc="$1" arch="$2" target context dockerfile t0=$SECONDS
  dockerfile="$(effective_dockerfile)"
  if [[ $FROM_HOST -eq 1 ]]; then
    target="$svc-from-host" context="$(context_dir "$arch")"
  else
    target="$svc" context="$ROOT"
  fi
  local args=(-f "$dockerfile" --target "$target"
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE"
    -t "$(image_tag "$svc" "$VERSION" "$arch")" -t "$(image_tag "$svc" dev "$arch")")
  [[ $DEFAULT_ONLY -eq 1 ]] || args+=(--platform "linux/$arch")
  log "building $(image_tag "$svc" "$VERSION" "$arch") (target $target, linux/$arch, $ENGINE)"
  if [[ $ENGINE == docker ]]; then
    export SOURCE_DATE_EPOCH
    docker build --progress=plain --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" "${args[@]}" "$context"
  else
    # Docker image format: buildah ignores SHELL (bash -o pipefail) in OCI format.
    # --no-cache for the from-host targets (COPY only, about a second): buildah 1.28's layer
    # cache ignores the platform, and would give an arm64 build the amd64 image of the same
    # steps, or the other way round.
    local cache=()
    [[ $FROM_HOST -eq 1 ]] && cache=(--no-cache)
    podman build --layers "${cache[@]}" --format docker --timestamp "$SOURCE_DATE_EPOCH" "${args[@]}" "$context"
  fi
  local got
  got="$("$ENGINE" image inspect --format '{{.Os}}/{{.Architecture}}' "$(image_tag "$svc" dev "$arch")")"
  [[ $got == "linux/$arch" ]] || die "$(image_tag "$svc" dev "$arch") is $got, not linux/$arch"
  BUILD_SECONDS[$svc]=$((${BUILD_SECONDS[$svc]:-0} + SECONDS - t0))
}

# manifest_list SVC — logjet/SVC:<version> and :dev as manifest lists of the per-arch images
# (podman; any image or list of that name is replaced).
manifest_list() {
  local svc="$1" tag name arch
  for tag in "$VERSION" dev; do
    name="logjet/$svc:$tag"
    if podman manifest exists "$name" 2>/dev/null; then
      podman manifest rm "$name" >/dev/null
    elif podman image exists "$name"; then
      podman untag "$name" "$name"
    fi
    podman manifest create "$name" >/dev/null
    for arch in "${ARCHS[@]}"; do
      podman manifest add "$name" "containers-storage:localhost/$(image_tag "$svc" "$tag" "$arch")" >/dev/null
    done
    log "manifest list $name: $(podman manifest inspect "$name" | jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(", ")')"
  done
}

push_image() { # service
  local svc="$1" tag arch
  for tag in "$VERSION" dev; do
    if [[ ${#ARCHS[@]} -gt 1 ]]; then
      log "pushing the manifest list $PUSH/logjet/$svc:$tag (${ARCHS[*]})"
      podman manifest push --all "logjet/$svc:$tag" "docker://$PUSH/logjet/$svc:$tag"
      continue
    fi
    arch="${ARCHS[0]}"
    local image
    image="$(image_tag "$svc" "$tag" "$arch")"
    log "pushing $PUSH/$image"
    if [[ $ENGINE == docker ]]; then
      docker tag "$image" "$PUSH/$image"
      docker push "$PUSH/$image"
    else
      podman push "$image" "$PUSH/$image"
    fi
  done
}

# --- size table -------------------------------------------------------------------------------
mb() { awk -v b="$1" -v mb="$MB" 'BEGIN { printf "%.2f MB", b / mb }'; }

size_table() {
  local svc arch image size gz goal status total total_gz over=0 label first_total=
  mkdir -p "$OUT"
  printf 'image\tbytes\tgzip_bytes\tgoal_mb\n' >"$OUT/sizes.tsv"
  printf '\n%-28s %10s %12s %9s  %s\n' "image" "size" "compressed" "goal" "result"
  for arch in "${ARCHS[@]}"; do
    total=0 total_gz=0
    for svc in "${SERVICES[@]}"; do
      image="$(image_tag "$svc" "$VERSION" "$arch")"
      size="$(image_size "$image")"
      # what a registry stores and a node pulls: the image, gzip-compressed
      gz="$("$ENGINE" save "$image" 2>/dev/null | gzip -9 | wc -c)"
      goal="$(image_goal_mb "$svc")"
      if ((size <= goal * MB)); then status=ok; else status="OVER GOAL"; over=1; fi
      printf '%-28s %10s %12s %9s  %s\n' "$image" "$(mb "$size")" "$(mb "$gz")" "<= $goal MB" "$status"
      printf '%s\t%s\t%s\t%s\n' "$image" "$size" "$gz" "$goal" >>"$OUT/sizes.tsv"
      total=$((total + size)) total_gz=$((total_gz + gz))
    done
    if ((total <= TOTAL_GOAL_MB * MB)); then status=ok; else status="OVER GOAL"; over=1; fi
    label="all ${#SERVICES[@]} images"
    [[ $DEFAULT_ONLY -eq 1 ]] || label+=" ($arch)"
    printf '%-28s %10s %12s %9s  %s\n' "$label" "$(mb "$total")" "$(mb "$total_gz")" "<= $TOTAL_GOAL_MB MB" "$status"
    first_total="${first_total:-$total}"
  done
  printf '\n%s\n' "the platform logjet replaces (reference):"
  printf '  %-40s %7s\n' "Python API (after its 1.1 GB diet)" "165 MB" "nginx frontend" "95 MB" \
    "Go processor (scratch)" "8 MB" "together" "268 MB"
  printf '  %-40s %7s\n' "logjet, ${#SERVICES[@]} images (${ARCHS[0]})" "$(mb "$first_total")"
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
log "logjet images ${SERVICES[*]} (linux/${ARCHS[*]}): version $VERSION, revision $REVISION, engine $ENGINE$([[ $FROM_HOST -eq 1 ]] && echo ", from host binaries")"
T0=$SECONDS
if [[ $FROM_HOST -eq 1 ]]; then
  build_on_host
fi
for svc in "${SERVICES[@]}"; do
  for arch in "${ARCHS[@]}"; do build_image "$svc" "$arch"; done
  [[ ${#ARCHS[@]} -eq 1 ]] || manifest_list "$svc"
done
if [[ -n "$PUSH" ]]; then
  for svc in "${SERVICES[@]}"; do push_image "$svc"; done
fi
times=()
for svc in "${SERVICES[@]}"; do times+=("$svc ${BUILD_SECONDS[$svc]} s;"); done
log "built ${#SERVICES[@]} images in $((SECONDS - T0)) s (image steps: ${times[*]})"
size_table
