#!/usr/bin/env bash
# Posts N generated log events to an ingest endpoint and prints a summary.
#   ./scripts/load-test.sh [URL] [N] [BATCH]
#   ./scripts/load-test.sh http://localhost:8000 1000
# Events go to service "load-test" with mixed levels, so afterwards:
#   curl -X POST http://localhost:8001/logs/query -H 'Content-Type: application/json' \
#        -d '{"service": "load-test", "limit": 10}'
# With authentication on (Kubernetes), give an API key with the ingest scope in LOGJET_API_KEY:
#   LOGJET_API_KEY="$(cat kustomize/overlays/kind/secrets/dev-api-key)" ./scripts/load-test.sh
set -euo pipefail

URL="${1:-http://localhost:8000}"
N="${2:-1000}"
BATCH="${3:-500}"
URL="${URL%/}"
[[ "$URL" == */logs ]] || URL="$URL/logs"

command -v curl >/dev/null || { echo "load-test: curl is required (apt-get install curl)" >&2; exit 2; }
command -v awk >/dev/null || { echo "load-test: awk is required" >&2; exit 2; }
[[ "$N" =~ ^[0-9]+$ && "$BATCH" =~ ^[0-9]+$ && "$BATCH" -gt 0 ]] || { echo "usage: $0 URL N [BATCH]" >&2; exit 2; }

tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.resp" "$tmp.auth"' EXIT
# The key goes to curl in a header file, not on its command line.
auth=()
if [[ -n "${LOGJET_API_KEY:-}" ]]; then
  printf 'Authorization: Bearer %s\n' "$LOGJET_API_KEY" >"$tmp.auth"
  auth=(-H "@$tmp.auth")
fi
sent=0 accepted=0 rejected=0 failed=0
start_ns=$(date +%s%N)
run_id="$(date +%s)-$$"

while [[ $sent -lt $N ]]; do
  n=$(( N - sent < BATCH ? N - sent : BATCH ))
  awk -v start="$sent" -v n="$n" -v run="$run_id" 'BEGIN {
    split("info info info info warn error debug", lv, " ");
    split("GET POST PUT DELETE", m, " ");
    srand(start);
    for (i = 0; i < n; i++) {
      k = start + i;
      l = lv[1 + int(rand() * 7)];
      printf "{\"service\":\"load-test\",\"level\":\"%s\",\"message\":\"%s /api/items/%d took %dms\",\"request_id\":\"%s-%d\",\"status\":%d}\n",
        l, m[1 + k % 4], k % 97, int(rand() * 500), run, k, (l == "error" ? 500 : 200);
    }
  }' >"$tmp"
  code=$(curl -sS -o "$tmp.resp" -w '%{http_code}' -X POST "$URL" \
    -H 'Content-Type: application/x-ndjson' -H "Idempotency-Key: load-$run_id-$sent" "${auth[@]}" \
    --data-binary "@$tmp" || echo 000)
  if [[ "$code" == 202 ]]; then
    a=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$tmp.resp")
    accepted=$(( accepted + ${a:-0} ))
    rejected=$(( rejected + n - ${a:-0} ))
  else
    failed=$(( failed + n ))
    echo "load-test: HTTP $code: $(head -c 300 "$tmp.resp" 2>/dev/null)" >&2
  fi
  sent=$(( sent + n ))
done

elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
rate=$(( elapsed_ms > 0 ? sent * 1000 / elapsed_ms : sent ))
printf '\n%-12s %s\n' "target" "$URL" "sent" "$sent" "accepted" "$accepted" "rejected" "$rejected" \
  "failed" "$failed" "elapsed" "${elapsed_ms} ms" "rate" "${rate} events/s"
[[ $failed -eq 0 ]]
