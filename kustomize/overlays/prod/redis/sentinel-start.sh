#!/bin/sh
# Starts this pod's Sentinel. Its config is on the PVC: Sentinel rewrites it with what it learns
# (the current master, its replicas and peers), so a restarted pod knows the group. The
# password lines are written anew at each start (a rotated Secret).
set -eu
. /scripts/find-master.sh
self="${POD_NAME}.redis-headless.${POD_NAMESPACE}.svc.cluster.local"
conf=/data/sentinel/sentinel.conf
mkdir -p /data/sentinel
if [ ! -s "$conf" ]; then
  master="$(find_master)"
  cat >"$conf" <<CONF
port 26379
dir /data/sentinel
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor logjet $master 6379 2
sentinel down-after-milliseconds logjet 5000
sentinel failover-timeout logjet 60000
sentinel parallel-syncs logjet 1
CONF
fi
sed -i -e '/^requirepass /d' -e '/^sentinel auth-pass /d' -e '/^sentinel sentinel-pass /d' "$conf"
{
  echo "requirepass \"$REDIS_PASSWORD\""
  echo "sentinel auth-pass logjet \"$REDIS_PASSWORD\""
  echo "sentinel sentinel-pass \"$REDIS_PASSWORD\""
} >>"$conf"
exec redis-server "$conf" --sentinel
