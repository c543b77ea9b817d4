//! Kubernetes Services: which workload's pods a Service port reaches, and on which container port.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::pod::IntOrString;
use super::selector::LabelSelector;
use super::{Manifests, Object, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePort {
    port: u16,
    #[serde(default)]
    target_port: Option<IntOrString>,
}

/// One port of a Service, resolved to its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The Service's name (its DNS name in the namespace).
    pub service: String,
    pub port: u16,
    pub workload: String,
    pub container_port: u16,
}

/// Every port of a Service, to the workloads its selector picks.
pub fn routes(m: &Manifests, svc: &Object) -> Result<Vec<Route>> {
    // A Service selects by a plain map of labels (no expressions); without one it has no pods.
    let labels: BTreeMap<String, String> = svc.typed(&["spec", "selector"]).unwrap_or_default();
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    let selector = LabelSelector {
        match_labels: labels,
        match_expressions: Vec::new(),
    };
    let ports: Vec<ServicePort> = svc.typed(&["spec", "ports"])?;
    let mut out = Vec::new();
    for w in m.workloads().filter(|w| selector.matches(&w.pod_labels())) {
        let spec = w.pod_spec()?;
        for p in &ports {
            let target = p
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(i64::from(p.port)));
            out.push(Route {
                service: svc.name().to_string(),
                port: p.port,
                workload: w.name().to_string(),
                container_port: spec.resolve_port(&target)?,
            });
        }
    }
    Ok(out)
}

/// Every Service port of the manifests.
pub fn all_routes(m: &Manifests) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for svc in m.of_kind("Service") {
        out.extend(routes(m, svc)?);
    }
    Ok(out)
}
