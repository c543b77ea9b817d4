#!/bin/sh
# Starts this pod's Redis as the master of group "logjet" or as a replica of it.
# "$@": the redis.conf path and --requirepass (from the container's args).
set -eu
. /scripts/find-master.sh
self="${POD_NAME}.redis-headless.${POD_NAMESPACE}.svc.cluster.local"
master="$(find_master)"
if [ "$master" = "$self" ]; then
  echo "starting as the master"
  exec redis-server "$@" --masterauth "$REDIS_PASSWORD" --replica-announce-ip "$self"
fi
echo "starting as a replica of $master"
exec redis-server "$@" --masterauth "$REDIS_PASSWORD" --replica-announce-ip "$self" \
  --replicaof "$master" 6379
