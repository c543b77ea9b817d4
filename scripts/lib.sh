# Shared helpers for logjet's scripts. Source it: . "$(dirname "$0")/lib.sh"
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Tools live once per machine, outside the clone, so a fresh clone (CI) does not install them
# again: LOGJET_TOOLS, default ~/.cache/logjet. tests/src/tools.rs resolves the same directory.
TOOLS="${LOGJET_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/logjet}"
VENV="$TOOLS/venv"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"
  fi
}

# apt_install PKG... — installs the Debian packages that are missing.
APT_UPDATED=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || warn "apt-get update failed"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# venv_install SPEC... — pip-installs into the shared venv ($TOOLS/venv) what is not there yet.
venv_install() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV" || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  local missing=()
  for spec in "$@"; do
    local name="${spec%%[=<>]*}"
    "$VENV/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing into $VENV: ${missing[*]}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" || die "pip install ${missing[*]} failed"
}

# npm_tool NAME PKG@VERSION... — npm packages in $TOOLS/NAME, installed once per machine (the
# stamp file records the versions). Needs node and npm (Debian `nodejs npm`).
npm_tool() {
  local name="$1"; shift
  local dir="$TOOLS/$name" stamp="$TOOLS/$name/.logjet-versions"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$*" && -d "$dir/node_modules" ]]; then
    return 0
  fi
  command -v npm >/dev/null || apt_install nodejs npm
  log "installing into $dir: $*"
  mkdir -p "$dir" &&
    { [[ -f "$dir/package.json" ]] || echo '{"private": true}' >"$dir/package.json"; } &&
    (cd "$dir" && npm install --no-audit --no-fund --silent --save-exact "$@") &&
    echo "$*" >"$stamp"
}

# tool_venv NAME SPEC... — a separate venv under $TOOLS/NAME for a tool whose dependencies would
# clash with the others (schemathesis and checkov disagree on `packaging`). Prints the venv path.
tool_venv() {
  local name="$1"; shift
  local dir="$TOOLS/$name"
  if [[ ! -x "$dir/bin/python" ]]; then
    python3 -m venv "$dir" >&2 || { apt_install python3-venv; python3 -m venv "$dir" >&2; }
  fi
  local missing=()
  for spec in "$@"; do
    "$dir/bin/python" -m pip show -q "${spec%%[=<>]*}" >/dev/null 2>&1 || missing+=("$spec")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing into $dir: ${missing[*]}"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" >&2 || die "pip install ${missing[*]} failed"
  fi
  echo "$dir"
}

rustup_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  log "adding rustup target $1"
  rustup target add "$1" >/dev/null || die "rustup target add $1 failed"
}

ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null || die "cargo install cargo-nextest failed"
}

# ensure_s3s_fs — the S3-compatible server of the archive tests (tests/src/s3.rs), from crates.io into
# ~/.cargo/bin once per machine. 0.14.1: later versions need a newer rustc than the project's.
ensure_s3s_fs() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "0.14.1" && return 0
  log "installing s3s-fs 0.14.1 into ~/.cargo/bin (once per machine)"
  cargo install -q --locked s3s-fs --version 0.14.1 --features binary >/dev/null || die "cargo install s3s-fs failed"
}

# share_ci_target — on CI (`CI=true`, a fresh clone every run) target/ and fuzz/target/ become
# links to directories kept once per machine ($TOOLS/ci-target, $TOOLS/ci-fuzz-target), so a run
# compiles only the workspace's own crates (new paths, new mtimes) and reuses every dependency
# the previous run built, for each profile and target (debug, dist/musl, aarch64, wasm32).
# sccache alone does not do it: a build in another target directory got no hit from it
# (measured on the arm64 build), and a fresh clone's target/ is another directory every run. A
# developer's checkout keeps its own target/: cargo names the workspace's own artifacts the same
# in every checkout, and decides freshness by mtime, so sharing is only safe for a fresh clone
# (its files are newer than any artifact there); a checkout built here after another one would
# reuse the other's binaries (seen: tests reading the other checkout's CARGO_MANIFEST_DIR).
share_ci_target() {
  [[ "${CI:-}" == "true" ]] || return 0
  local link dir
  for link in target fuzz/target; do
    dir="$TOOLS/ci-${link//\//-}"
    [[ -e "$ROOT/$link" || -L "$ROOT/$link" ]] && continue
    mkdir -p "$dir"
    ln -s "$dir" "$ROOT/$link"
    log "$link/ -> $dir (shared by CI runs on this machine)"
  done
}

# use_sccache — compiler output cached once per machine (sccache's own cache, ~/.cache/sccache), so
# a fresh clone (CI) does not compile every dependency again. sccache is installed into
# ~/.cargo/bin once per machine.
use_sccache() {
  if ! command -v sccache >/dev/null; then
    log "installing sccache into ~/.cargo/bin (once per machine)"
    cargo install -q --locked sccache --no-default-features >/dev/null || {
      warn "cargo install sccache failed: building without a compiler cache"
      return 0
    }
  fi
  export RUSTC_WRAPPER=sccache
}

# Stage timing: stage NAME CMD... runs CMD and records how long it took.
STAGES=()
stage() {
  local name="$1"; shift
  local t0=$SECONDS
  log "stage: $name"
  "$@"
  local rc=$?
  STAGES+=("$(printf '%-28s %5ss  %s' "$name" "$((SECONDS - t0))" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED ($rc)")")")
  return $rc
}

print_stages() {
  printf '\n%-28s %6s  %s\n' "stage" "time" "result"
  printf '%s\n' "${STAGES[@]}"
}

# free_port — a free TCP port on 127.0.0.1
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS — waits for a 2xx.
wait_http() {
  local url="$1" deadline=$((SECONDS + ${2:-30}))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    [[ $SECONDS -ge $deadline ]] && return 1
    sleep 0.2
  done
}

# logjet_k8s_bin debug|release — builds logjet-k8s (tests/src/bin/logjet-k8s.rs: logjet's
# Kubernetes model, the checks the scripts run and the code's defaults) with that cargo profile
# and prints its path.
#   LOGJET_K8S="$(logjet_k8s_bin debug)"; "$LOGJET_K8S" defaults
logjet_k8s_bin() {
  local profile="$1" flags=()
  case "$profile" in
    debug) ;;
    release) flags=(--release) ;;
    *) die "logjet_k8s_bin: unknown profile $profile (debug or release)" ;;
  esac
  command -v cargo >/dev/null || die "cargo is required: install Rust with rustup (https://rustup.rs)"
  log "building logjet-k8s ($profile)"
  (cd "$ROOT" && cargo build --quiet "${flags[@]}" -p logjet-tests --bin logjet-k8s) >&2 \
    || die "cargo build -p logjet-tests --bin logjet-k8s failed"
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/$profile/logjet-k8s"
}

# Image size goals, MB (10^6 bytes), used by build.sh and images-test.sh. query and the archiver
# carry the archive tier (Parquet, Arrow, the S3 client): 18 MB until that reader is slimmed
# (docs/images.md); the other services 10, the dashboard (server + wasm bundle) 12.
# shellcheck disable=SC2034 # used by the scripts that source this file
TOTAL_GOAL_MB=45
image_goal_mb() { # service
  case "$1" in
    dashboard) echo 12 ;;
    query | archiver) echo 18 ;;
    *) echo 10 ;;
  esac
}
