//! The Kubernetes manifests against the code, offline: `kubectl kustomize` renders every overlay
//! and these tests fail on any drift between what the manifests declare and what the services
//! do (ports, probe paths, config keys, stream/consumer names, scaling, network edges, PDBs,
//! credentials), and check KEDA's lag arithmetic against a live nats-server configured like the
//! StatefulSet. They read the manifests through one model, `logjet_tests::k8s`, the same the
//! scripts use through `logjet-k8s`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

mod credentials;
mod keda_live;
mod network;
mod pods_plan;
mod scaling;
mod workloads;

use logjet_tests::k8s::env::{Environment, PodIdentity};
use logjet_tests::k8s::{Manifests, OVERLAYS};

fn render(overlay: &str) -> Manifests {
    Manifests::render(overlay).unwrap_or_else(|e| panic!("{e}"))
}

/// Every overlay, rendered.
fn overlays() -> Vec<(&'static str, Manifests)> {
    OVERLAYS.iter().map(|o| (*o, render(o))).collect()
}

/// The environment of a workload's container (its first when `container` is `None`).
fn env_of(m: &Manifests, workload: &str, container: Option<&str>) -> Environment {
    let w = m.workload(workload).unwrap_or_else(|e| panic!("{e}"));
    let spec = w.pod_spec().unwrap_or_else(|e| panic!("{e}"));
    let c = match container {
        Some(name) => spec.container(name),
        None => spec.main_container(),
    }
    .unwrap_or_else(|e| panic!("{workload}: {e}"));
    let pod = PodIdentity::local(&format!("{workload}-0"));
    Environment::of(m, c, &pod).unwrap_or_else(|e| panic!("{workload}: {e}"))
}
