//! Kubernetes must not kill a service that is still inside its drain deadline: in every overlay,
//! each service's `terminationGracePeriodSeconds` exceeds its preStop pause plus the
//! `drain_timeout` it loads from what the Deployment gives it (read with the service's own config
//! loader), with a few seconds to spare for the process to exit.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use logjet_core::config::{
    DashboardConfig, IngestConfig, ProcessorConfig, QueryConfig, ServiceConfig, load_from,
};
use serde_yaml_ng::Value;

const OVERLAYS: [&str; 2] = ["kustomize/overlays/kind", "kustomize/overlays/prod"];
/// Time left between the drain deadline and SIGKILL.
const MARGIN: Duration = Duration::from_secs(3);

fn render(overlay: &str) -> Vec<Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{root}/{overlay}")])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{overlay} does not render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

/// The `LOGJET_*` variables a container gets as plain values: its ConfigMaps, then its `env`
/// (values from Secrets are left out; they are URLs and keys, not timings).
fn literal_env(docs: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_sequence().into_iter().flatten() {
        if let Some(name) = from["configMapRef"]["name"].as_str() {
            let data = find(docs, "ConfigMap", name)["data"].as_mapping().cloned();
            for (k, v) in data.into_iter().flatten() {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    for e in container["env"].as_sequence().into_iter().flatten() {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env.retain(|k, _| k.starts_with("LOGJET_"));
    env
}

fn drain_timeout<C: ServiceConfig>(env: BTreeMap<String, String>) -> Duration {
    load_from::<C>(None, env)
        .expect("the Deployment's settings load")
        .drain_timeout()
}

#[test]
fn grace_periods_cover_the_pre_stop_pause_and_the_drain_timeout() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        for service in ["ingest", "processor", "query", "dashboard"] {
            let deployment = find(&docs, "Deployment", service);
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let env = literal_env(&docs, container);
            assert!(
                env.contains_key("LOGJET_DRAIN_TIMEOUT"),
                "{overlay} {service}: LOGJET_DRAIN_TIMEOUT is not set explicitly"
            );
            let drain = match service {
                "ingest" => drain_timeout::<IngestConfig>(env),
                "processor" => drain_timeout::<ProcessorConfig>(env),
                "query" => drain_timeout::<QueryConfig>(env),
                _ => drain_timeout::<DashboardConfig>(env),
            };
            let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap_or(0);
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
            let needed = Duration::from_secs(pre_stop) + drain + MARGIN;
            assert!(
                Duration::from_secs(grace) >= needed,
                "{overlay} {service}: terminationGracePeriodSeconds {grace} < preStop {pre_stop}s + drain_timeout {drain:?} + {MARGIN:?}"
            );
        }
    }
}
