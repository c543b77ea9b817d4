//! The Prometheus operator's objects (kustomize/components/monitoring, rendered in
//! overlays/kind-monitoring only) and what makes them useful: every logjet workload scraped on a
//! port it has, the release label kube-prometheus-stack selects by, every alert well-formed, the
//! dashboard ConfigMap loadable by Grafana's sidecar.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::Schema;
use super::selector::LabelSelector;
use super::{Manifests, Object, Result};

/// The object kinds of the operator this project may use.
pub const KINDS: [&str; 3] = ["PodMonitor", "ServiceMonitor", "PrometheusRule"];

/// The workloads that must be scraped, each by exactly one PodMonitor.
pub const SCRAPED: [&str; 6] = [
    "ingest",
    "processor",
    "query",
    "dashboard",
    "archiver",
    "nats",
];

/// The kube-prometheus-stack Helm release (scripts/monitoring-setup.sh): its Prometheus selects
/// PodMonitors and PrometheusRules labelled `release=<name>`.
pub const RELEASE: &str = "prometheus";

/// Whether an object belongs to the operator's API group.
pub fn is_operator_object(o: &Object) -> bool {
    o.api_version().starts_with("monitoring.coreos.com/")
}

/// Every problem of the monitoring objects in `m`, one line each.
pub fn findings(m: &Manifests) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let monitors: Vec<&Object> = m.of_kind("PodMonitor").collect();
    for name in SCRAPED {
        let Ok(w) = m.workload(name) else {
            out.push(format!("workload {name} is not rendered"));
            continue;
        };
        let labels = w.pod_labels();
        let mut found = Vec::new();
        for pm in &monitors {
            let sel = LabelSelector::from_value(&pm.value["spec"]["selector"])?.unwrap_or_default();
            if pm.namespace() == w.namespace() && sel.matches(&labels) {
                found.push(*pm);
            }
        }
        let [pm] = found.as_slice() else {
            out.push(format!(
                "{name}: selected by {} PodMonitors, want exactly 1",
                found.len()
            ));
            continue;
        };
        let ports = w.pod_spec()?.ports();
        for ep in pm.value["spec"]["podMetricsEndpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let port = ep["port"].as_str().unwrap_or("");
            if !ports.contains_key(port) || port.is_empty() {
                let names: Vec<&String> = ports.keys().filter(|p| !p.is_empty()).collect();
                out.push(format!(
                    "PodMonitor/{}: port {port:?} is not a port of {name} ({names:?})",
                    pm.name()
                ));
            }
        }
    }
    for o in m.objects.iter().filter(|o| KINDS.contains(&o.kind())) {
        if o.labels().get("release").map(String::as_str) != Some(RELEASE) {
            out.push(format!(
                "{}: no label release={RELEASE}, kube-prometheus-stack would not select it",
                o.id()
            ));
        }
    }
    let rules: Vec<&Object> = m.of_kind("PrometheusRule").collect();
    if rules.is_empty() {
        out.push("no PrometheusRule rendered".into());
    }
    for r in rules {
        for g in r.value["spec"]["groups"].as_array().into_iter().flatten() {
            for rule in g["rules"].as_array().into_iter().flatten() {
                let Some(alert) = rule["alert"].as_str() else {
                    continue;
                };
                for (field, value) in [
                    ("expr", &rule["expr"]),
                    ("for", &rule["for"]),
                    ("labels.severity", &rule["labels"]["severity"]),
                    ("annotations.summary", &rule["annotations"]["summary"]),
                    (
                        "annotations.description",
                        &rule["annotations"]["description"],
                    ),
                ] {
                    if !present(value) {
                        out.push(format!("{}: alert {alert} lacks {field}", r.id()));
                    }
                }
            }
        }
    }
    let dashboards: Vec<&Object> = m
        .of_kind("ConfigMap")
        .filter(|d| d.labels().get("grafana_dashboard").map(String::as_str) == Some("1"))
        .collect();
    if dashboards.is_empty() {
        out.push("no ConfigMap labelled grafana_dashboard=1".into());
    }
    for d in dashboards {
        for (key, text) in d.value["data"].as_object().into_iter().flatten() {
            let dash: Option<Value> = text.as_str().and_then(|t| serde_json::from_str(t).ok());
            let ok = dash.is_some_and(|d| {
                present(&d["uid"]) && present(&d["title"]) && present(&d["panels"])
            });
            if !ok {
                out.push(format!("{}: {key} is not a dashboard JSON", d.id()));
            }
        }
    }
    Ok(out)
}

/// Set, and not empty or false.
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(b) => *b,
        Value::Number(_) => true,
    }
}

/// The operator's objects of `m` against their CRD schemas (`schemas` by kind; a kind without one
/// is not allowed), then [`findings`]: (how many operator objects, findings).
pub fn operator_findings(
    m: &Manifests,
    schemas: &BTreeMap<String, Schema>,
) -> Result<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let ours: Vec<&Object> = m.objects.iter().filter(|o| is_operator_object(o)).collect();
    for o in &ours {
        match schemas.get(o.kind()).filter(|_| KINDS.contains(&o.kind())) {
            Some(schema) => out.extend(
                schema
                    .validate(&o.value)
                    .into_iter()
                    .map(|e| format!("{}: {e}", o.id())),
            ),
            None => out.push(format!(
                "{}: kind {} is not allowed here (only {KINDS:?})",
                o.id(),
                o.kind()
            )),
        }
    }
    out.extend(findings(m)?);
    Ok((ours.len(), out))
}
