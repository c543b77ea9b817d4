#!/usr/bin/env bash
# Fuzzes the event parser and the query filter parser with cargo fuzz (libFuzzer), each for a
# bounded time, starting from the checked-in seeds in fuzz/seeds/. A crash fails the run and
# leaves its input in fuzz/artifacts/<target>/ (add it to the seeds once fixed).
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET]      default 30
# Runs on stable Rust: `-s none` (no sanitizer) needs no nightly; Rust is memory-safe, the point
# here is panics and broken invariants.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT/fuzz"
SECONDS_PER_TARGET="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install --locked cargo-fuzz >/dev/null
fi
cargo fuzz build -s none >/dev/null
for target in parse_body query_filter logql; do
  mkdir -p "corpus/$target"
  log "fuzzing $target for ${SECONDS_PER_TARGET}s"
  cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::new_units_added)|panicked|ERROR|SUMMARY' || true
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    die "$target crashed: see fuzz/artifacts/$target/"
  fi
done
log "no crash"
