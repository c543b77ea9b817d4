#!/usr/bin/env bash
# Makes a new logjet API key. Prints the key (give it to the client, it is shown only once) and
# the line to add to the keys file (LOGJET_API_KEYS_FILE, or the Kubernetes Secret behind it),
# which holds only the key's SHA-256.
#   ./scripts/new-api-key.sh NAME SCOPES      e.g. ./scripts/new-api-key.sh fluent-bit ingest
#                                                  ./scripts/new-api-key.sh grafana query
#                                                  ./scripts/new-api-key.sh admin ingest,query
set -euo pipefail
name="${1:?usage: $0 NAME SCOPES (ingest, query or ingest,query)}"
scopes="${2:?usage: $0 NAME SCOPES (ingest, query or ingest,query)}"
[[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "NAME: letters, digits, . _ - only" >&2; exit 2; }
[[ "$scopes" =~ ^(ingest|query)(,(ingest|query))?$ ]] || { echo "SCOPES: ingest, query or ingest,query" >&2; exit 2; }
command -v sha256sum >/dev/null || { echo "sha256sum is required (coreutils)" >&2; exit 2; }
key="lj_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash="$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
printf 'key (give to the client):   %s\n' "$key"
printf 'line for the keys file:     %s %s sha256:%s\n' "$name" "$scopes" "$hash"
