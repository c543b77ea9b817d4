//! One model of logjet's Kubernetes manifests, used by the drift tests (`tests/tests/manifests/`)
//! and by the checks the scripts run (`logjet-k8s`, tests/src/bin/logjet-k8s.rs): render an
//! overlay and read its objects ([`Manifests`], [`pod`]), resolve a container's environment as
//! the kubelet does ([`env`]), match label selectors ([`selector`]), evaluate NetworkPolicies
//! ([`netpol`]), the scaling facts of KEDA ([`keda`]), HPAs and PDBs ([`scaling`]), the Prometheus
//! operator's objects ([`monitoring`]), CRD objects against their schemas ([`schema`]), checkov's
//! reports ([`checkov`]) and the pods test's plan ([`pods`]).
//!
//! Defaults (ports, stream and consumer names, the fetch batch) are read from
//! `logjet_core::config`, never copied here.

pub mod checkov;
pub mod defaults;
pub mod env;
mod error;
pub mod keda;
mod manifests;
pub mod monitoring;
pub mod nats_conf;
pub mod netpol;
pub mod pod;
pub mod pods;
pub mod quantity;
pub mod scaling;
pub mod schema;
pub mod secrets;
pub mod selector;
pub mod service;

use std::path::{Path, PathBuf};

pub use error::ModelError;
pub use manifests::{Manifests, Object};

/// The namespace every logjet object lives in.
pub const NAMESPACE: &str = "log-analytics";

/// The label every pod of ours carries with its workload's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// The label Kubernetes puts on every namespace with its name (what namespaceSelectors match).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The overlays a cluster is deployed from.
pub const OVERLAYS: [&str; 2] = ["kustomize/overlays/kind", "kustomize/overlays/prod"];

/// The overlay whose development Secrets are rendered (and which the pods test runs).
pub const KIND_OVERLAY: &str = "kustomize/overlays/kind";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
