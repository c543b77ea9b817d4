//! Typed access to the parts of a pod spec this model reads (unknown fields are ignored here;
//! `kubernetes-validate --strict` rejects them in scripts/k8s-validate.sh).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{ModelError, Result};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub security_context: PodSecurityContext,
    pub termination_grace_period_seconds: Option<u64>,
}

impl PodSpec {
    pub fn container(&self, name: &str) -> Result<&Container> {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ModelError::Missing(format!("container {name}")))
    }

    /// The first container (the service's own; others are sidecars).
    pub fn main_container(&self) -> Result<&Container> {
        self.containers
            .first()
            .ok_or_else(|| ModelError::Missing("a container".into()))
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// Every container port, by name (unnamed ones under "").
    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
            .collect()
    }

    /// A port as a probe, a Service or a policy names it: a number, or a container port's name.
    pub fn resolve_port(&self, port: &IntOrString) -> Result<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n)
                .map_err(|_| ModelError::invalid("port", format!("{n} is not a port"))),
            IntOrString::String(name) => self
                .ports()
                .get(name)
                .copied()
                .ok_or_else(|| ModelError::Missing(format!("a container port named {name}"))),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVarSpec>,
    pub env_from: Vec<EnvFromSource>,
    pub ports: Vec<ContainerPort>,
    pub volume_mounts: Vec<VolumeMount>,
    pub security_context: SecurityContext,
    pub resources: Resources,
    pub startup_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
}

impl Container {
    pub fn probe(&self, which: ProbeKind) -> Option<&Probe> {
        match which {
            ProbeKind::Startup => self.startup_probe.as_ref(),
            ProbeKind::Liveness => self.liveness_probe.as_ref(),
            ProbeKind::Readiness => self.readiness_probe.as_ref(),
        }
    }

    /// The mount whose path is `path` or a directory above it.
    pub fn mount_above(&self, path: &str) -> Option<&VolumeMount> {
        self.volume_mounts
            .iter()
            .find(|m| path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/'))))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    pub fn field(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startupProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSpec {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeyRef>,
    pub config_map_key_ref: Option<KeyRef>,
    pub field_ref: Option<FieldRef>,
    pub resource_field_ref: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    pub optional: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    pub prefix: String,
    pub config_map_ref: Option<NameRef>,
    pub secret_ref: Option<NameRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NameRef {
    pub name: String,
    pub optional: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub sub_path: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub name: String,
    pub secret: Option<SecretVolume>,
    pub config_map: Option<ConfigMapVolume>,
    pub empty_dir: Option<EmptyDir>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretVolume {
    pub secret_name: String,
    pub default_mode: Option<u32>,
    pub items: Vec<KeyToPath>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapVolume {
    pub name: String,
    pub default_mode: Option<u32>,
    pub items: Vec<KeyToPath>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmptyDir {
    pub medium: Option<String>,
    pub size_limit: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub fs_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    pub seccomp_profile: Option<SeccompProfile>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub privileged: Option<bool>,
    pub capabilities: Capabilities,
    pub seccomp_profile: Option<SeccompProfile>,
}

impl SecurityContext {
    /// What the container runs with: its own settings over the pod's, as the kubelet merges them.
    pub fn effective(pod: &PodSecurityContext, container: &SecurityContext) -> SecurityContext {
        SecurityContext {
            run_as_user: container.run_as_user.or(pod.run_as_user),
            run_as_group: container.run_as_group.or(pod.run_as_group),
            run_as_non_root: container.run_as_non_root.or(pod.run_as_non_root),
            seccomp_profile: container
                .seccomp_profile
                .clone()
                .or_else(|| pod.seccomp_profile.clone()),
            ..container.clone()
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    pub limits: BTreeMap<String, Value>,
    pub requests: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    pub http_get: Option<HttpGet>,
    pub exec: Option<ExecAction>,
    pub initial_delay_seconds: Option<u64>,
    pub period_seconds: Option<u64>,
    pub failure_threshold: Option<u64>,
}

impl Probe {
    /// How long the kubelet gives it before it gives up (Kubernetes' defaults: 10 s, 3 tries).
    pub fn budget_seconds(&self) -> u64 {
        self.initial_delay_seconds.unwrap_or(0)
            + self.failure_threshold.unwrap_or(3) * self.period_seconds.unwrap_or(10)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    pub path: String,
    pub port: IntOrString,
    #[serde(default)]
    pub scheme: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    pub command: Vec<String>,
}
