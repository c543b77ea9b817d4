#!/usr/bin/env bash
# Creates the Secrets logjet needs in a real cluster (the kind overlay generates development-only
# ones from kustomize/overlays/kind/secrets/; the prod overlay references these by name):
#
#   logjet-api-keys           api-keys             hashed API keys (core/src/auth.rs format),
#                                                  mounted read-only into ingest and query
#   logjet-dashboard-key      query-api-key        the dashboard server's query key (its hash
#                                                  is the "dashboard" line of api-keys)
#   logjet-nats-credentials   ingest-password      NATS users of nats.conf, one per service;
#                             processor-password   read by nats-server and by the services
#                             query-password       (LOGJET_NATS_URL)
#                             archiver-password
#                             admin-password       the system account's user "admin", for
#                                                  operators (nats server report ...)
#   logjet-redis-credentials  password             Redis requirepass and LOGJET_REDIS_URL
#   logjet-archive-s3         access-key-id        the archiver's S3 keys (prod overlay only); from
#                             secret-access-key    your provider, not made here: kubectl create
#                                                  secret generic logjet-archive-s3 --from-file=...
#   nats-route-tls            tls.crt, tls.key     the NATS cluster routes' certificate and their
#                             ca.crt               CA (prod overlay only): mutual TLS between the
#                                                  servers; not made here: cert-manager or your
#                                                  PKI (docs/kubernetes.md, "NATS cluster routes")
#
# Values are random (48 hex digits behind a letter prefix: safe unquoted in nats.conf and in
# URLs) and never pass through a command line. Secrets are created with `kubectl create` or
# `kubectl replace` (no last-applied annotation holding a copy of the values).
#
#   ./scripts/k8s-secrets.sh                       create the Secrets that are missing, keep the rest
#   ./scripts/k8s-secrets.sh --add-key NAME SCOPES make an API key (ingest, query or ingest,query),
#                                                  add/replace its line in logjet-api-keys, print it once
#   ./scripts/k8s-secrets.sh --remove-key NAME     remove a key's line from logjet-api-keys
#   ./scripts/k8s-secrets.sh --rotate nats|redis|dashboard   new values for one Secret
#   ./scripts/k8s-secrets.sh --print               print all four as YAML (fresh values) instead of
#                                                  talking to a cluster, e.g. for kubeseal or SOPS
# Options: --namespace NS (default log-analytics), --context CTX (kubectl context).
# After a change it prints the rollouts that load the new values (services read them at start).
set -euo pipefail

NAMESPACE="log-analytics"
CONTEXT=""
MODE="create"
ARG1="" ARG2=""
usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "k8s-secrets: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --namespace) NAMESPACE="${2:?--namespace NS}"; shift 2 ;;
    --context) CONTEXT="${2:?--context CTX}"; shift 2 ;;
    --print) MODE="print"; shift ;;
    --rotate) MODE="rotate"; ARG1="${2:?--rotate nats|redis|dashboard}"; shift 2 ;;
    --add-key) MODE="add-key"; ARG1="${2:?--add-key NAME SCOPES}"; ARG2="${3:?--add-key NAME SCOPES}"; shift 3 ;;
    --remove-key) MODE="remove-key"; ARG1="${2:?--remove-key NAME}"; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "k8s-secrets: unknown argument $1" >&2; usage ;;
  esac
done

command -v kubectl >/dev/null 2>&1 || die "kubectl is required (it writes the Secret manifests)"
for tool in sha256sum od head base64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (coreutils)"
done
k() { if [[ -n "$CONTEXT" ]]; then kubectl --context "$CONTEXT" "$@"; else kubectl "$@"; fi; }

umask 077
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

rand_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
password() { printf 'lj%s' "$(rand_hex)"; }
api_key() { printf 'lj_%s' "$(rand_hex)"; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# manifest NAME KEY=FILE... — the Secret as YAML on stdout (values read from files).
manifest() {
  local name="$1"; shift
  local from=()
  for kv in "$@"; do from+=("--from-file=$kv"); done
  kubectl create secret generic "$name" --namespace "$NAMESPACE" "${from[@]}" --dry-run=client -o yaml \
    | kubectl label --local -f - -o yaml app.kubernetes.io/part-of=logjet
}

# Writes the files of each Secret into $WORK/<secret>/<key>.
new_nats() {
  mkdir -p "$WORK/nats"
  for u in ingest processor query archiver admin; do password >"$WORK/nats/$u-password"; done
}
new_redis() { mkdir -p "$WORK/redis"; password >"$WORK/redis/password"; }
new_dashboard() { mkdir -p "$WORK/dashboard"; api_key >"$WORK/dashboard/query-api-key"; }
keys_header() {
  printf '# logjet API keys: <name> <scopes> sha256:<hex of the key> (scripts/k8s-secrets.sh --add-key)\n'
}
# set_key_line FILE NAME SCOPES HASH — replaces NAME's line, or appends it.
set_key_line() {
  local file="$1" name="$2" scopes="$3" hash="$4"
  awk -v n="$name" '$1 != n' "$file" >"$file.new"
  printf '%s %s sha256:%s\n' "$name" "$scopes" "$hash" >>"$file.new"
  mv "$file.new" "$file"
}

nats_manifest() {
  manifest logjet-nats-credentials "ingest-password=$WORK/nats/ingest-password" \
    "processor-password=$WORK/nats/processor-password" "query-password=$WORK/nats/query-password" \
    "archiver-password=$WORK/nats/archiver-password" "admin-password=$WORK/nats/admin-password"
}
redis_manifest() { manifest logjet-redis-credentials "password=$WORK/redis/password"; }
dashboard_manifest() { manifest logjet-dashboard-key "query-api-key=$WORK/dashboard/query-api-key"; }
keys_manifest() { manifest logjet-api-keys "api-keys=$WORK/api-keys"; }

exists() { k get secret "$1" --namespace "$NAMESPACE" >/dev/null 2>&1; }
# current_keys — the api-keys file of the cluster into $WORK/api-keys.
current_keys() {
  exists logjet-api-keys || die "Secret logjet-api-keys does not exist yet: run $0 first"
  k get secret logjet-api-keys --namespace "$NAMESPACE" -o jsonpath='{.data.api-keys}' | base64 -d >"$WORK/api-keys"
}
create() { "$1" | k create -f - >/dev/null; echo "created Secret $2"; }
replace() { "$1" | k replace -f - >/dev/null; echo "replaced Secret $2"; }
restart_hint() {
  echo "The pods read these values at start; roll them (in this order) to load the new ones:"
  local w
  for w in "$@"; do printf '  kubectl rollout restart -n %s %s\n' "$NAMESPACE" "$w"; done
}

if [[ "$MODE" == "print" ]]; then
  new_nats; new_redis; new_dashboard
  keys_header >"$WORK/api-keys"
  set_key_line "$WORK/api-keys" dashboard query "$(sha256 "$(cat "$WORK/dashboard/query-api-key")")"
  nats_manifest; echo "---"; redis_manifest; echo "---"; dashboard_manifest; echo "---"; keys_manifest
  exit 0
fi

k get namespace "$NAMESPACE" >/dev/null 2>&1 || k create namespace "$NAMESPACE" >/dev/null

case "$MODE" in
  create)
    made=0
    if exists logjet-nats-credentials; then echo "kept Secret logjet-nats-credentials"; else new_nats; create nats_manifest logjet-nats-credentials; made=1; fi
    if exists logjet-redis-credentials; then echo "kept Secret logjet-redis-credentials"; else new_redis; create redis_manifest logjet-redis-credentials; made=1; fi
    if exists logjet-dashboard-key; then
      echo "kept Secret logjet-dashboard-key"
      exists logjet-api-keys || die "logjet-dashboard-key exists but logjet-api-keys does not: run $0 --rotate dashboard"
    else
      new_dashboard
      create dashboard_manifest logjet-dashboard-key
      made=1
      if exists logjet-api-keys; then
        current_keys
        set_key_line "$WORK/api-keys" dashboard query "$(sha256 "$(cat "$WORK/dashboard/query-api-key")")"
        replace keys_manifest logjet-api-keys
      fi
    fi
    if exists logjet-api-keys; then
      echo "kept Secret logjet-api-keys"
    else
      keys_header >"$WORK/api-keys"
      set_key_line "$WORK/api-keys" dashboard query "$(sha256 "$(cat "$WORK/dashboard/query-api-key")")"
      create keys_manifest logjet-api-keys
      made=1
    fi
    if [[ $made -eq 1 ]]; then
      echo "Clients need API keys of their own: $0 --add-key NAME ingest|query|ingest,query"
    fi
    ;;
  add-key)
    [[ "$ARG1" =~ ^[A-Za-z0-9_.-]+$ ]] || die "NAME: letters, digits, . _ - only"
    [[ "$ARG2" =~ ^(ingest|query)(,(ingest|query))?$ ]] || die "SCOPES: ingest, query or ingest,query"
    [[ "$ARG1" != dashboard ]] || die "the dashboard's key is managed with --rotate dashboard"
    current_keys
    key="$(api_key)"
    set_key_line "$WORK/api-keys" "$ARG1" "$ARG2" "$(sha256 "$key")"
    replace keys_manifest logjet-api-keys
    printf 'API key %s (%s), shown only once: %s\n' "$ARG1" "$ARG2" "$key"
    restart_hint deployment/ingest deployment/query
    ;;
  remove-key)
    [[ "$ARG1" != dashboard ]] || die "the dashboard's key is managed with --rotate dashboard"
    current_keys
    grep -q "^$ARG1 " "$WORK/api-keys" || die "no key named $ARG1 in logjet-api-keys"
    awk -v n="$ARG1" '$1 != n' "$WORK/api-keys" >"$WORK/api-keys.new" && mv "$WORK/api-keys.new" "$WORK/api-keys"
    replace keys_manifest logjet-api-keys
    restart_hint deployment/ingest deployment/query
    ;;
  rotate)
    case "$ARG1" in
      nats)
        new_nats; replace nats_manifest logjet-nats-credentials
        restart_hint statefulset/nats deployment/ingest deployment/processor deployment/query ;;
      redis)
        new_redis; replace redis_manifest logjet-redis-credentials
        restart_hint statefulset/redis deployment/processor deployment/query ;;
      dashboard)
        current_keys
        new_dashboard
        set_key_line "$WORK/api-keys" dashboard query "$(sha256 "$(cat "$WORK/dashboard/query-api-key")")"
        replace keys_manifest logjet-api-keys
        if exists logjet-dashboard-key; then replace dashboard_manifest logjet-dashboard-key; else create dashboard_manifest logjet-dashboard-key; fi
        restart_hint deployment/ingest deployment/query deployment/dashboard ;;
      *) die "--rotate takes nats, redis or dashboard" ;;
    esac
    ;;
esac
