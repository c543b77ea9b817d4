//! A container's environment as the kubelet builds it: `envFrom` ConfigMaps and Secrets first
//! (with their prefix, values taken literally), then `env` in order (`value` with `$(VAR)`
//! expanded against what is defined so far, `valueFrom` ConfigMap and Secret keys, `fieldRef`).
//! Each variable remembers which Secret keys went into it, so the tests can follow a credential
//! from its Secret to both ends.

use std::collections::{BTreeMap, BTreeSet};

use super::pod::Container;
pub use super::secrets::SecretKeyRef;
use super::{Manifests, ModelError, NAMESPACE, Result};

/// Where a variable was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EnvSource {
    ConfigMap,
    Secret,
    Value,
    Field,
}

/// One variable as the container sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    pub value: String,
    pub source: EnvSource,
    /// Every Secret key whose value went into it.
    pub secrets: BTreeSet<SecretKeyRef>,
    /// The Secret keys the overlay does not render: their values stand as `<secret NAME/KEY>`.
    pub unrendered: BTreeSet<SecretKeyRef>,
}

impl EnvVar {
    fn plain(value: String, source: EnvSource) -> EnvVar {
        EnvVar {
            value,
            source,
            secrets: BTreeSet::new(),
            unrendered: BTreeSet::new(),
        }
    }
}

/// The pod a container runs in, for `fieldRef`s.
#[derive(Clone, Debug)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub ip: String,
    pub node: String,
}

impl PodIdentity {
    /// A pod of ours on this machine.
    pub fn local(name: &str) -> PodIdentity {
        PodIdentity {
            name: name.to_string(),
            namespace: NAMESPACE.to_string(),
            ip: "127.0.0.1".into(),
            node: "localhost".into(),
        }
    }
}

/// Every variable of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    pub vars: BTreeMap<String, EnvVar>,
}

impl Environment {
    /// The container's environment in `m`, in the pod `pod`.
    pub fn of(m: &Manifests, c: &Container, pod: &PodIdentity) -> Result<Environment> {
        let mut env = Environment::default();
        for from in &c.env_from {
            let (data, secret): (_, Option<&str>) = if let Some(r) = &from.config_map_ref {
                match m.get("ConfigMap", &r.name) {
                    Some(_) => (m.config_map(&r.name)?, None),
                    None if r.optional => continue,
                    None => return Err(ModelError::Missing(format!("ConfigMap/{}", r.name))),
                }
            } else if let Some(r) = &from.secret_ref {
                match m.secret(&r.name) {
                    Some(data) => (data?, Some(r.name.as_str())),
                    None if r.optional => continue,
                    None => {
                        return Err(ModelError::Missing(format!(
                            "Secret/{} (envFrom: its keys are unknown unless it is rendered)",
                            r.name
                        )));
                    }
                }
            } else {
                return Err(ModelError::Unsupported(format!(
                    "{}: envFrom entry",
                    c.name
                )));
            };
            for (k, v) in data {
                let var = match secret {
                    None => EnvVar::plain(v, EnvSource::ConfigMap),
                    Some(name) => {
                        let mut var = EnvVar::plain(v, EnvSource::Secret);
                        var.secrets.insert(SecretKeyRef::new(name, &k));
                        var
                    }
                };
                env.vars.insert(format!("{}{k}", from.prefix), var);
            }
        }
        for e in &c.env {
            let var = if let Some(v) = &e.value {
                env.expand(v)
            } else if let Some(from) = &e.value_from {
                if let Some(r) = &from.secret_key_ref {
                    let key = SecretKeyRef::new(&r.name, &r.key);
                    let mut var = EnvVar::plain(String::new(), EnvSource::Secret);
                    match key.value(m)? {
                        Some(v) => var.value = v,
                        None if r.optional => continue,
                        None => {
                            var.value = format!("<secret {}/{}>", r.name, r.key);
                            var.unrendered.insert(key.clone());
                        }
                    }
                    var.secrets.insert(key);
                    var
                } else if let Some(r) = &from.config_map_key_ref {
                    match m
                        .config_map(&r.name)
                        .ok()
                        .and_then(|mut d| d.remove(&r.key))
                    {
                        Some(v) => EnvVar::plain(v, EnvSource::ConfigMap),
                        None if r.optional => continue,
                        None => {
                            return Err(ModelError::Missing(format!(
                                "ConfigMap/{} key {}",
                                r.name, r.key
                            )));
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    EnvVar::plain(field(pod, &f.field_path)?, EnvSource::Field)
                } else {
                    return Err(ModelError::Unsupported(format!(
                        "{}: env {}",
                        c.name, e.name
                    )));
                }
            } else {
                // A variable with neither is defined and empty.
                EnvVar::plain(String::new(), EnvSource::Value)
            };
            env.vars.insert(e.name.clone(), var);
        }
        Ok(env)
    }

    pub fn get(&self, name: &str) -> Option<&EnvVar> {
        self.vars.get(name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.value.as_str())
    }

    /// Name and value of every variable.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }

    /// `$(VAR)` references expanded as the kubelet does (`k8s.io/kubernetes/third_party/
    /// forked/golang/expansion`): `$$` is a `$`, a reference to a variable not defined (so far)
    /// stays as written, an unclosed `$(` and any other `$` are literal.
    pub fn expand(&self, text: &str) -> EnvVar {
        let mut out = EnvVar::plain(String::new(), EnvSource::Value);
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.value.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.value.push('$');
                rest = tail;
            } else if let Some((name, tail)) =
                after.strip_prefix('(').and_then(|t| t.split_once(')'))
            {
                match self.vars.get(name) {
                    Some(v) => {
                        out.value.push_str(&v.value);
                        out.secrets.extend(v.secrets.iter().cloned());
                        out.unrendered.extend(v.unrendered.iter().cloned());
                    }
                    None => out.value.push_str(&format!("$({name})")),
                }
                rest = tail;
            } else {
                out.value.push('$');
                rest = after;
            }
        }
        out.value.push_str(rest);
        out
    }

    /// Names of the variables from each source, for a one-line summary.
    pub fn count(&self, source: EnvSource) -> usize {
        self.vars.values().filter(|v| v.source == source).count()
    }
}

fn field(pod: &PodIdentity, path: &str) -> Result<String> {
    Ok(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "status.podIP" => pod.ip.clone(),
        "spec.nodeName" => pod.node.clone(),
        other => return Err(ModelError::Unsupported(format!("fieldRef {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment {
            vars: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        EnvVar::plain(v.to_string(), EnvSource::Value),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let e = env(&[("A", "x"), ("B", "y$(A)")]);
        assert_eq!(e.expand("$(A)-$(B)").value, "x-y$(A)");
        assert_eq!(e.expand("$$(A)").value, "$(A)");
        assert_eq!(e.expand("$(UNKNOWN)").value, "$(UNKNOWN)");
        assert_eq!(e.expand("$(A").value, "$(A");
        assert_eq!(e.expand("a$b$").value, "a$b$");
        assert_eq!(e.expand("$$$(A)$$$").value, "$x$$");
        assert_eq!(e.expand("$()").value, "$()");
    }

    const POD: &str = "
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {LOGJET_LISTEN: '0.0.0.0:8000', PORT: '8000'}
---
apiVersion: v1
kind: Secret
metadata: {name: creds-abcdefgh12}
data: {password: c2VjcmV0}
";

    fn container(yaml: &str) -> Container {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn resolves_config_maps_secrets_fields_and_references_in_order() {
        let m = Manifests::parse(POD, "test").unwrap();
        let c = container(
            "
name: c
envFrom: [{configMapRef: {name: cm}}, {prefix: S_, secretRef: {name: creds-abcdefgh12}}]
env:
  - {name: EARLY, value: '$(URL)'}
  - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds-abcdefgh12, key: password}}}
  - {name: URL, value: 'nats://u:$(PASSWORD)@nats:$(PORT)'}
  - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
  - {name: FROM_CM, valueFrom: {configMapKeyRef: {name: cm, key: PORT}}}
  - {name: MISSING, valueFrom: {secretKeyRef: {name: other, key: k}}}
",
        );
        let e = Environment::of(&m, &c, &PodIdentity::local("ingest-0")).unwrap();
        assert_eq!(e.value("LOGJET_LISTEN"), Some("0.0.0.0:8000"));
        assert_eq!(e.value("S_password"), Some("secret"));
        assert_eq!(e.value("EARLY"), Some("$(URL)"));
        assert_eq!(e.value("URL"), Some("nats://u:secret@nats:8000"));
        let url = e.get("URL").unwrap();
        assert_eq!(url.source, EnvSource::Value);
        let key = SecretKeyRef::new("creds-abcdefgh12", "password");
        assert_eq!(url.secrets, BTreeSet::from([key.clone()]));
        assert_eq!(key.base_name(), "creds");
        assert_eq!(e.value("POD"), Some("ingest-0"));
        assert_eq!(e.value("FROM_CM"), Some("8000"));
        let missing = e.get("MISSING").unwrap();
        assert_eq!(missing.value, "<secret other/k>");
        assert_eq!(missing.unrendered.len(), 1);
        assert_eq!(e.count(EnvSource::ConfigMap), 3);
        assert_eq!(e.count(EnvSource::Secret), 3);
    }

    #[test]
    fn a_missing_config_map_is_an_error_unless_optional() {
        let m = Manifests::parse(POD, "test").unwrap();
        let c = container("{name: c, envFrom: [{configMapRef: {name: nope}}]}");
        assert!(Environment::of(&m, &c, &PodIdentity::local("p")).is_err());
        let c = container("{name: c, envFrom: [{configMapRef: {name: nope, optional: true}}]}");
        assert!(Environment::of(&m, &c, &PodIdentity::local("p")).is_ok());
    }
}
