#!/bin/sh
# Prints the host of the Redis master of group "logjet" (sourced by redis-start.sh and
# sentinel-start.sh): what a peer's Sentinel names; else the master this pod's Sentinel last
# knew (its config lives on the PVC); else redis-0 (a new group).
# Needs POD_NAMESPACE and REDIS_PASSWORD.
find_master() {
  domain="redis-headless.${POD_NAMESPACE}.svc.cluster.local"
  for i in 0 1 2; do
    peer="redis-$i.$domain"
    found="$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "$peer" -p 26379 --raw \
      SENTINEL get-master-addr-by-name logjet 2>/dev/null | head -n 1)" || found=""
    case "$found" in
      ""|*ERR*|*NOAUTH*|*NOSCRIPT*|*IDONTKNOW*) ;;
      *) echo "$found"; return 0 ;;
    esac
  done
  known="$(sed -n 's/^sentinel monitor logjet \([^ ]*\) .*/\1/p' /data/sentinel/sentinel.conf 2>/dev/null | head -n 1)"
  if [ -n "$known" ]; then
    echo "$known"
    return 0
  fi
  echo "redis-0.$domain"
}
