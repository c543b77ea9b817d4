#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests in kustomize/ (no cluster needed):
#   1. render      kubectl kustomize of base and every overlay
#   2. schema      strict Kubernetes 1.32 schemas (PyPI kubernetes-validate --strict) for every
#                  built-in kind; CRD kinds are handed to step 3, any other unknown kind fails
#   3. keda        ScaledObjects against KEDA's CRD schema (PyPI cloudcoil-models-keda, the models
#                  generated from the KEDA 2.16.1 CRDs that setup-cluster.sh installs) with unknown
#                  fields rejected, trigger types allow-listed {nats-jetstream, cpu}, and the
#                  cross-object rules: lagThreshold > the processor's in-flight window
#                  (LOGJET_FETCH_BATCH), stream/consumer equal to the processor's, no HPA on a
#                  KEDA-scaled Deployment, PDBs that never block every eviction
#   4. monitoring  the Prometheus operator objects of kustomize/components/monitoring (rendered in
#                  overlays/kind-monitoring only): PodMonitors and the PrometheusRule against the
#                  operator's CRD models (PyPI cloudcoil-models-prometheus-operator, operator
#                  v0.80) with unknown fields rejected; every logjet service and the NATS exporter
#                  selected by one PodMonitor on a port the pod declares; the release label
#                  kube-prometheus-stack selects by; every alert with expr, for, a severity, a
#                  summary and a description; the dashboard ConfigMap labelled for Grafana's
#                  sidecar and holding dashboard JSON
#   5. checkov     --framework kubernetes,kustomize over kustomize/, settings and the justified
#                  skips in infra/checkov/config.yaml; any other skip fails the run
#   6. shellcheck  the Kubernetes scripts (skipped with a note when shellcheck is missing)
#
# Python tools live in a repo-local venv (.venv/, gitignored), installed once and reused.
# Usage: scripts/k8s-validate.sh            exits non-zero on any failure
#        KEEP_RENDERED=dir scripts/k8s-validate.sh   also leaves the rendered YAML in dir
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S_VERSION="1.32"
TARGETS=(base overlays/kind overlays/prod overlays/kind-monitoring)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# Pinned so results do not drift; cloudcoil-models-keda 2.16.1.0 matches KEDA v2.16.1.
PY_REQUIREMENTS=(
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "cloudcoil-models-keda==2.16.1.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
)
SHELL_SCRIPTS=(scripts/k8s-validate.sh scripts/setup-cluster.sh scripts/deploy.sh scripts/cleanup.sh
  scripts/monitoring-setup.sh scripts/k8s-secrets.sh scripts/k8s-pods-test.sh)

die() { echo "k8s-validate: $*" >&2; exit 2; }

command -v kubectl >/dev/null 2>&1 || die "kubectl is required (it renders the overlays with 'kubectl kustomize'); install kubectl >= 1.27"
command -v python3 >/dev/null 2>&1 || die "python3 (with the venv module) is required for the validators"

# --- tools -----------------------------------------------------------------------------------
ensure_tools() {
  if [[ ! -x "$PY" ]]; then
    echo "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  local stamp="$VENV/.logjet-k8s-validate"
  local want
  want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "installing validators into $VENV: ${PY_REQUIREMENTS[*]}"
  "$PY" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" \
    || die "pip install failed"
  printf '%s\n' "$want" >"$stamp"
}
ensure_tools

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

declare -a SUMMARY=()
FAILED=0
record() { # name status detail
  SUMMARY+=("$(printf '%-11s %-5s %s' "$1" "$2" "$3")")
  if [[ "$2" == "FAIL" ]]; then FAILED=1; fi
}
slug() { echo "${1//\//-}"; }

# --- 1. render -------------------------------------------------------------------------------
RENDERED=()
for t in "${TARGETS[@]}"; do
  out="$WORK/$(slug "$t").yaml"
  if kubectl kustomize "kustomize/$t" >"$out" 2>"$WORK/render.err"; then
    RENDERED+=("$out")
    record render ok "kustomize/$t ($(grep -c '^kind:' "$out") objects)"
  else
    cat "$WORK/render.err" >&2
    record render FAIL "kustomize/$t does not render"
  fi
done
if [[ -n "${KEEP_RENDERED:-}" ]]; then
  mkdir -p "$KEEP_RENDERED"
  cp "${RENDERED[@]}" "$KEEP_RENDERED"/
fi

# Everything but KEDA's and the Prometheus operator's objects goes to kubernetes-validate, so any
# other CRD kind (which it has no schema for) fails the schema step instead of going unchecked.
"$PY" - "${RENDERED[@]}" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(
        ("keda.sh/", "monitoring.coreos.com/"))]
    with open(path[:-5] + ".core.yaml", "w") as fh:
        yaml.safe_dump_all(core, fh, sort_keys=False)
PY

# --- 2. schema -------------------------------------------------------------------------------
for f in "${RENDERED[@]}"; do
  name="$(basename "$f" .yaml)"
  core="${f%.yaml}.core.yaml"
  if "$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" "$core" \
      >"$WORK/kv.out" 2>&1 && ! grep -q "Couldn't find schema" "$WORK/kv.out"; then
    record schema ok "$name: $(grep -c '^kind:' "$core") objects, strict, Kubernetes $K8S_VERSION"
  else
    sed "s|$WORK/||g" "$WORK/kv.out" >&2
    record schema FAIL "$name: see errors above"
  fi
done

# --- 3. keda ---------------------------------------------------------------------------------
if "$PY" - "${RENDERED[@]}" >"$WORK/keda.out" 2>&1 <<'PY'
"""ScaledObjects against KEDA's CRD models with unknown fields rejected, plus cross-object rules.

cloudcoil-models-keda's pydantic models are generated from KEDA's CRD openAPIV3Schema but ignore
unknown keys (pydantic's default), so a misplaced or misspelt field would pass them. This walks
each document alongside the model and rejects every key the schema does not declare, then lets
pydantic check the types and required fields.
"""
import inspect, math, os, sys, types, typing
import pydantic, yaml
from cloudcoil.models.keda import v1alpha1 as keda

# trigger type -> (required metadata keys, optional metadata keys)
ALLOWED_TRIGGERS = {
    "nats-jetstream": ({"natsServerMonitoringEndpoint", "account", "stream", "consumer",
                        "lagThreshold"}, {"activationLagThreshold", "useHttps"}),
    "cpu": ({"value"}, {"containerName"}),
}
KINDS = {"ScaledObject": keda.ScaledObject}
PROCESSOR_DEFAULT_FETCH_BATCH = 256  # core/src/config.rs, ProcessorConfig::default()


def unwrap(ann):
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        yield from unwrap(typing.get_args(ann)[0])
    elif origin in (typing.Union, types.UnionType):
        for a in typing.get_args(ann):
            if a is not type(None):
                yield from unwrap(a)
    else:
        yield ann


def walk(ann, value, path, errors):
    for t in unwrap(ann):
        origin = typing.get_origin(t)
        if origin in (list, typing.List) and isinstance(value, list):
            (item,) = typing.get_args(t) or (typing.Any,)
            for i, v in enumerate(value):
                walk(item, v, f"{path}[{i}]", errors)
            return
        if origin in (dict, typing.Dict) and isinstance(value, dict):
            args = typing.get_args(t)
            for k, v in value.items():
                walk(args[1] if args else typing.Any, v, f"{path}.{k}", errors)
            return
        if inspect.isclass(t) and issubclass(t, pydantic.RootModel):
            walk(t.model_fields["root"].annotation, value, path, errors)
            return
        if inspect.isclass(t) and issubclass(t, pydantic.BaseModel) and isinstance(value, dict):
            fields = {(f.alias or n): f.annotation for n, f in t.model_fields.items()}
            for k, v in value.items():
                if k not in fields:
                    errors.append(f"{path}.{k}: unknown field (not in KEDA's {t.__name__} schema)")
                else:
                    walk(fields[k], v, f"{path}.{k}", errors)
            return


def check_triggers(doc, errors):
    for i, trig in enumerate(doc.get("spec", {}).get("triggers") or []):
        p = f".spec.triggers[{i}]"
        ttype = trig.get("type")
        if ttype not in ALLOWED_TRIGGERS:
            errors.append(f"{p}.type: {ttype!r} is not in the allow-list {sorted(ALLOWED_TRIGGERS)}")
            continue
        required, optional = ALLOWED_TRIGGERS[ttype]
        meta = trig.get("metadata") or {}
        for k in sorted(required - meta.keys()):
            errors.append(f"{p}.metadata.{k}: required by the {ttype} scaler")
        for k in sorted(meta.keys() - required - optional):
            errors.append(f"{p}.metadata.{k}: not a {ttype} scaler parameter")
        if ttype == "cpu" and trig.get("metricType") not in ("Utilization", "AverageValue"):
            errors.append(f"{p}.metricType: the cpu trigger needs Utilization or AverageValue")


def pod_env(docs, workload):
    """LOGJET_* environment of a workload: its envFrom ConfigMaps, then its env."""
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    env = {}
    for c in workload["spec"]["template"]["spec"]["containers"][:1]:
        for src in c.get("envFrom") or []:
            env.update(cms.get((src.get("configMapRef") or {}).get("name"), {}))
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
    return env


def check_cluster(docs, errors):
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    min_replicas = {}
    for h in hpas:
        min_replicas[h["spec"]["scaleTargetRef"]["name"]] = h["spec"].get("minReplicas", 1)
    for so in scaled:
        name = so["metadata"]["name"]
        target = so["spec"]["scaleTargetRef"]["name"]
        min_replicas[target] = so["spec"].get("minReplicaCount", 0)
        if target not in deployments:
            errors.append(f"ScaledObject/{name}: target Deployment {target} is not rendered")
            continue
        for h in hpas:
            if h["spec"]["scaleTargetRef"]["name"] == target:
                errors.append(f"HPA/{h['metadata']['name']} also scales {target}: KEDA owns its HPA")
        env = pod_env(docs, deployments[target])
        window = int(env.get("LOGJET_FETCH_BATCH", PROCESSOR_DEFAULT_FETCH_BATCH))
        for trig in so["spec"].get("triggers") or []:
            if trig.get("type") != "nats-jetstream":
                continue
            meta = trig.get("metadata") or {}
            lag = int(meta.get("lagThreshold", "0"))
            if lag <= window:
                errors.append(f"ScaledObject/{name}: lagThreshold {lag} must exceed one replica's "
                              f"in-flight window LOGJET_FETCH_BATCH={window}")
            for key, var, default in (("stream", "LOGJET_STREAM", "LOGS"),
                                      ("consumer", "LOGJET_CONSUMER", "processor")):
                if meta.get(key) != env.get(var, default):
                    errors.append(f"ScaledObject/{name}: {key} {meta.get(key)!r} but {target} "
                                  f"uses {var}={env.get(var, default)!r}")
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] not in min_replicas:
            min_replicas[d["metadata"]["name"]] = d["spec"].get("replicas", 1)
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    for p in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        sel = p["spec"]["selector"].get("matchLabels", {})
        for wname, w in workloads.items():
            labels = w["spec"]["template"]["metadata"].get("labels", {})
            if not sel.items() <= labels.items():
                continue
            n = min_replicas.get(wname, 1)
            spec = p["spec"]
            if "minAvailable" in spec:
                allowed = n - int(spec["minAvailable"])
            else:
                mu = spec.get("maxUnavailable", 0)
                allowed = math.ceil(n * int(mu[:-1]) / 100) if isinstance(mu, str) else int(mu)
            if allowed < 1:
                errors.append(f"PDB/{p['metadata']['name']} blocks every eviction of {wname} "
                              f"at its minimum of {n} replica(s)")


status = 0
for path in sys.argv[1:]:
    with open(path) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    label = os.path.basename(path)[:-5]
    errors = []
    n = 0
    for doc in docs:
        if not str(doc.get("apiVersion", "")).startswith("keda.sh/"):
            continue
        n += 1
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        errs = []
        model = KINDS.get(kind)
        if model is None:
            errs.append(f"kind {kind} is not allowed here (only {sorted(KINDS)})")
        else:
            walk(model, doc, "", errs)
            try:
                model.model_validate(doc)
            except pydantic.ValidationError as e:
                errs += [f".{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
            check_triggers(doc, errs)
        errors += [f"{kind}/{name}: {e}" for e in errs]
    if n == 0:
        errors.append("no ScaledObject rendered (the processor must be scaled by KEDA)")
    check_cluster(docs, errors)
    if errors:
        status = 1
        print(f"FAIL {label}")
        for e in errors:
            print(f"    {e}")
    else:
        print(f"ok   {label}: {n} KEDA object(s) valid, no unknown fields, cross-object rules hold")
sys.exit(status)
PY
then
  while read -r line; do record keda ok "${line#ok   }"; done <"$WORK/keda.out"
else
  cat "$WORK/keda.out" >&2
  record keda FAIL "see errors above"
fi

# --- 4. monitoring ---------------------------------------------------------------------------
if "$PY" - "${RENDERED[@]}" >"$WORK/monitoring.out" 2>&1 <<'PY'
"""The Prometheus operator objects against its CRD models, unknown fields rejected (pydantic
ignores them by default, so each document is walked alongside the model), plus what makes them
useful: every logjet workload scraped on a port it has, every alert well-formed, the dashboard
ConfigMap loadable by Grafana's sidecar."""
import inspect, json, os, sys, types, typing
import pydantic, yaml
from cloudcoil.models.prometheus_operator import v1 as po

KINDS = {"PodMonitor": po.PodMonitor, "ServiceMonitor": po.ServiceMonitor,
         "PrometheusRule": po.PrometheusRule}
SCRAPED = ["ingest", "processor", "query", "dashboard", "nats"]
RELEASE = "prometheus"  # scripts/monitoring-setup.sh: the kube-prometheus-stack Helm release


def unwrap(ann):
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        yield from unwrap(typing.get_args(ann)[0])
    elif origin in (typing.Union, types.UnionType):
        for a in typing.get_args(ann):
            if a is not type(None):
                yield from unwrap(a)
    else:
        yield ann


def walk(ann, value, path, errors):
    for t in unwrap(ann):
        origin = typing.get_origin(t)
        if origin in (list, typing.List) and isinstance(value, list):
            (item,) = typing.get_args(t) or (typing.Any,)
            for i, v in enumerate(value):
                walk(item, v, f"{path}[{i}]", errors)
            return
        if origin in (dict, typing.Dict) and isinstance(value, dict):
            args = typing.get_args(t)
            for k, v in value.items():
                walk(args[1] if args else typing.Any, v, f"{path}.{k}", errors)
            return
        if inspect.isclass(t) and issubclass(t, pydantic.RootModel):
            walk(t.model_fields["root"].annotation, value, path, errors)
            return
        if inspect.isclass(t) and issubclass(t, pydantic.BaseModel) and isinstance(value, dict):
            fields = {(f.alias or n): f.annotation for n, f in t.model_fields.items()}
            for k, v in value.items():
                if k not in fields:
                    errors.append(f"{path}.{k}: unknown field (not in the operator's {t.__name__} schema)")
                else:
                    walk(fields[k], v, f"{path}.{k}", errors)
            return


def matches(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val, op, vals = labels.get(e["key"]), e["operator"], e.get("values") or []
        if (op == "In" and val not in vals) or (op == "NotIn" and val in vals) \
                or (op == "Exists" and val is None) or (op == "DoesNotExist" and val is not None):
            return False
    return True


def check(docs, errors):
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    for name in SCRAPED:
        w = workloads.get(name)
        if w is None:
            errors.append(f"workload {name} is not rendered")
            continue
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        ports = {p.get("name") for c in w["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        found = [m for m in monitors
                 if m["metadata"].get("namespace") == w["metadata"].get("namespace")
                 and matches(m["spec"].get("selector") or {}, labels)]
        if len(found) != 1:
            errors.append(f"{name}: selected by {len(found)} PodMonitors, want exactly 1")
            continue
        for ep in found[0]["spec"].get("podMetricsEndpoints") or []:
            if ep.get("port") not in ports:
                errors.append(f"PodMonitor/{found[0]['metadata']['name']}: port {ep.get('port')!r} "
                              f"is not a port of {name} ({sorted(p for p in ports if p)})")
    for d in docs:
        if d["kind"] in KINDS and (d["metadata"].get("labels") or {}).get("release") != RELEASE:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: no label release={RELEASE}, "
                          "kube-prometheus-stack would not select it")
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    if not rules:
        errors.append("no PrometheusRule rendered")
    for r in rules:
        for g in r["spec"]["groups"]:
            for rule in g["rules"]:
                if "alert" not in rule:
                    continue
                need = {
                    "expr": rule.get("expr"),
                    "for": rule.get("for"),
                    "labels.severity": (rule.get("labels") or {}).get("severity"),
                    "annotations.summary": (rule.get("annotations") or {}).get("summary"),
                    "annotations.description": (rule.get("annotations") or {}).get("description"),
                }
                for field, value in need.items():
                    if not value:
                        errors.append(f"PrometheusRule/{r['metadata']['name']}: alert "
                                      f"{rule['alert']} lacks {field}")
    dashboards = [d for d in docs if d["kind"] == "ConfigMap"
                  and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    if not dashboards:
        errors.append("no ConfigMap labelled grafana_dashboard=1")
    for d in dashboards:
        for key, text in (d.get("data") or {}).items():
            try:
                dash = json.loads(text)
                ok = bool(dash.get("uid") and dash.get("title") and dash.get("panels"))
            except ValueError:
                ok = False
            if not ok:
                errors.append(f"ConfigMap/{d['metadata']['name']}: {key} is not a dashboard JSON")


status = 0
for path in sys.argv[1:]:
    with open(path) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    label = os.path.basename(path)[:-5]
    ours = [d for d in docs if str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
    # Only the monitoring overlay carries them (the others must apply without the operator).
    if not ours and label != "overlays-kind-monitoring":
        continue
    errors = []
    for doc in ours:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        model = KINDS.get(kind)
        errs = []
        if model is None:
            errs.append(f"kind {kind} is not allowed here (only {sorted(KINDS)})")
        else:
            walk(model, doc, "", errs)
            try:
                model.model_validate(doc)
            except pydantic.ValidationError as e:
                errs += [f".{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
        errors += [f"{kind}/{name}: {e}" for e in errs]
    check(docs, errors)
    if errors:
        status = 1
        print(f"FAIL {label}")
        for e in errors:
            print(f"    {e}")
    else:
        print(f"ok   {label}: {len(ours)} operator objects valid, no unknown fields, every service "
              "scraped, alerts and dashboard well-formed")
sys.exit(status)
PY
then
  while read -r line; do record monitoring ok "${line#ok   }"; done <"$WORK/monitoring.out"
else
  cat "$WORK/monitoring.out" >&2
  record monitoring FAIL "see errors above"
fi

# --- 5. checkov ------------------------------------------------------------------------------
# The only skip allowed besides infra/checkov/config.yaml's skip-check list: CKV_K8S_15 by
# annotation in the kind overlay and in kind-monitoring, which includes it (justified in that file).
if "$VENV/bin/checkov" --config-file infra/checkov/config.yaml -o json \
    >"$WORK/checkov.json" 2>"$WORK/checkov.err"; then ck_rc=0; else ck_rc=$?; fi
if "$PY" - "$WORK/checkov.json" "$ck_rc" >"$WORK/checkov.out" 2>&1 <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    reports = json.load(open(path))
except ValueError:
    print(f"checkov produced no JSON report (exit {rc})")
    sys.exit(1)
reports = reports if isinstance(reports, list) else [reports]
ok = rc == 0
seen = {r["check_type"] for r in reports}
for fw in ("kubernetes", "kustomize"):
    if fw not in seen:
        print(f"checkov ran no {fw} scan")
        ok = False
for r in reports:
    s, res = r["summary"], r["results"]
    for f in res.get("failed_checks", []):
        print(f"FAILED {f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})")
    for f in res.get("skipped_checks", []):
        # checkov names the kind-monitoring overlay (an overlay of an overlay) without overlays/.
        if not (f["check_id"] == "CKV_K8S_15" and f["resource"].startswith(
                ("overlay:overlays/kind:", "overlay:overlays/kind-monitoring:",
                 "overlay:kind-monitoring:"))):
            print(f"UNJUSTIFIED SKIP {f['check_id']}: {f['resource']} "
                  f"(justify it in infra/checkov/config.yaml first)")
            ok = False
    if r["check_type"] == "kustomize":
        targets = {p["resource"].rsplit(":", 1)[0] for p in res.get("passed_checks", [])}
        for want in ("base", "overlay:overlays/kind", "overlay:overlays/prod",
                     "overlay:kind-monitoring"):
            if want not in targets and want.replace("overlay:", "overlay:overlays/") not in targets:
                print(f"checkov did not scan {want} (a failed kustomize build is silently skipped)")
                ok = False
    ok = ok and s["failed"] == 0 and s.get("parsing_errors", 0) == 0
    print(f"{r['check_type']}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped")
sys.exit(0 if ok else 1)
PY
then
  while read -r line; do record checkov ok "$line"; done <"$WORK/checkov.out"
else
  cat "$WORK/checkov.out" >&2
  grep -v '^\s*$' "$WORK/checkov.err" | tail -20 >&2 || true
  record checkov FAIL "see findings above"
fi

# --- 6. shellcheck ---------------------------------------------------------------------------
present=()
for s in "${SHELL_SCRIPTS[@]}"; do [[ -f "$s" ]] && present+=("$s"); done
if ! command -v shellcheck >/dev/null 2>&1; then
  record shellcheck skip "shellcheck not installed (apt-get install shellcheck)"
elif shellcheck -x "${present[@]}"; then
  record shellcheck ok "${present[*]}"
else
  record shellcheck FAIL "see findings above"
fi

# --- summary ---------------------------------------------------------------------------------
echo
echo "Kubernetes manifests, offline validation:"
printf '  %s\n' "${SUMMARY[@]}"
if [[ "$FAILED" -ne 0 ]]; then
  echo "k8s-validate: FAILED"
  exit 1
fi
echo "k8s-validate: all checks passed"
