//! Rendered manifests: `kubectl kustomize` of an overlay, read as one object per document.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::pod::PodSpec;
use super::{ModelError, Result, repo_root};

/// One Kubernetes object as rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"].as_str().unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }

    /// `Kind/name`, for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        string_map(&self.value["metadata"]["labels"])
    }

    pub fn spec(&self) -> &Value {
        &self.value["spec"]
    }

    /// The value at a path of keys (`None` where a key is missing).
    pub fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter()
            .try_fold(&self.value, |v, k| v.get(*k))
            .filter(|v| !v.is_null())
    }

    /// A part of the object as a typed struct.
    pub fn typed<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T> {
        let v = self.at(path).cloned().unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| {
            ModelError::invalid(format!("{} .{}", self.id(), path.join(".")), e.to_string())
        })
    }

    /// Whether this is a workload (its pods have a template).
    pub fn is_workload(&self) -> bool {
        matches!(self.kind(), "Deployment" | "StatefulSet")
    }

    /// The pod spec of a workload's template.
    pub fn pod_spec(&self) -> Result<PodSpec> {
        self.typed(&["spec", "template", "spec"])
    }

    /// The labels of a workload's pods.
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        string_map(&self.value["spec"]["template"]["metadata"]["labels"])
    }
}

/// A mapping of strings (labels, a ConfigMap's data); other values are left out.
pub(super) fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// Every object of a rendered overlay (or of any multi-document YAML).
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Object>,
}

impl Manifests {
    /// `kubectl kustomize <dir>`; a relative directory is taken from the repository's root.
    pub fn render(overlay: &str) -> Result<Manifests> {
        let dir = repo_root().join(overlay);
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .map_err(|e| ModelError::Io("kubectl kustomize (is kubectl installed?)".into(), e))?;
        if !out.status.success() {
            return Err(ModelError::Render {
                overlay: overlay.to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Manifests::parse(&String::from_utf8_lossy(&out.stdout), overlay)
    }

    /// A file of rendered YAML.
    pub fn read(path: &Path) -> Result<Manifests> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Io(path.display().to_string(), e))?;
        Manifests::parse(&text, &path.display().to_string())
    }

    /// Multi-document YAML; `origin` names it in errors.
    pub fn parse(yaml: &str, origin: &str) -> Result<Manifests> {
        let mut objects = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| ModelError::Yaml(origin.to_string(), e.to_string()))?;
            if !value.is_null() {
                objects.push(Object { value });
            }
        }
        Ok(Manifests { objects })
    }

    /// The objects as multi-document YAML, each document in JSON's flow style: every string is
    /// quoted, so YAML 1.1 readers (PyYAML: `on`, `yes`, `0440`) and 1.2 readers read the same.
    pub fn to_yaml<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Result<String> {
        let mut out = String::new();
        for o in objects {
            let doc = serde_json::to_string_pretty(&o.value)
                .map_err(|e| ModelError::Yaml(o.id(), e.to_string()))?;
            out.push_str("---\n");
            out.push_str(&doc);
            out.push('\n');
        }
        Ok(out)
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects.iter().filter(move |o| o.kind() == kind)
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name)
    }

    pub fn find(&self, kind: &str, name: &str) -> Result<&Object> {
        self.get(kind, name)
            .ok_or_else(|| ModelError::Missing(format!("{kind}/{name}")))
    }

    /// Deployments and StatefulSets.
    pub fn workloads(&self) -> impl Iterator<Item = &Object> {
        self.objects.iter().filter(|o| o.is_workload())
    }

    /// A workload by name, whatever its kind.
    pub fn workload(&self, name: &str) -> Result<&Object> {
        self.workloads()
            .find(|o| o.name() == name)
            .ok_or_else(|| ModelError::Missing(format!("workload {name}")))
    }

    /// A ConfigMap's `data`.
    pub fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>> {
        Ok(string_map(&self.find("ConfigMap", name)?.value["data"]))
    }

    /// The first ConfigMap holding `key` and its value (e.g. the one with `nats.conf`).
    pub fn config_file(&self, key: &str) -> Result<&str> {
        self.of_kind("ConfigMap")
            .find_map(|cm| cm.value["data"][key].as_str())
            .ok_or_else(|| ModelError::Missing(format!("a ConfigMap with {key}")))
    }

    /// A Secret's keys and values as a pod sees them (`data` decoded, `stringData` over it), or
    /// `None` when the overlay does not render that Secret.
    pub fn secret(&self, name: &str) -> Option<Result<BTreeMap<String, String>>> {
        let secret = self.get("Secret", name)?;
        Some(decode_secret(secret))
    }
}

fn decode_secret(secret: &Object) -> Result<BTreeMap<String, String>> {
    let mut data = BTreeMap::new();
    for (k, v) in secret.value["data"].as_object().into_iter().flatten() {
        // kustomize folds long values over several lines.
        let encoded: String = v.as_str().unwrap_or("").split_ascii_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| ModelError::invalid(format!("{} data.{k}", secret.id()), e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ModelError::invalid(format!("{} data.{k}", secret.id()), "not UTF-8"))?;
        data.insert(k.clone(), text);
    }
    data.extend(string_map(&secret.value["stringData"]));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n\
        data: {a: \"aGVs\\n  bG8=\", b: d29ybGQ=}\nstringData: {b: over}\n---\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {nats.conf: 'listen: 1', auth: 'on'}\n";

    #[test]
    fn secrets_decode_data_and_string_data_wins() {
        let m = Manifests::parse(DOCS, "test").unwrap();
        let s = m.secret("s").unwrap().unwrap();
        assert_eq!(s["a"], "hello");
        assert_eq!(s["b"], "over");
        assert!(m.secret("other").is_none());
        assert_eq!(m.config_file("nats.conf").unwrap(), "listen: 1");
        assert!(m.find("ConfigMap", "x").is_err());
    }

    #[test]
    fn round_trips_through_yaml() {
        let m = Manifests::parse(DOCS, "test").unwrap();
        let yaml = Manifests::to_yaml(&m.objects).unwrap();
        let again = Manifests::parse(&yaml, "again").unwrap();
        assert_eq!(again.objects, m.objects);
        assert!(
            yaml.contains(r#""auth": "on""#),
            "quoted for YAML 1.1: {yaml}"
        );
    }
}
