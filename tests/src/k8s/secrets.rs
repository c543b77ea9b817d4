//! Secrets as the workloads use them: keys referenced from the environment and from volumes,
//! and the Secret key behind a file a container reads.

use std::collections::BTreeSet;

use super::pod::{Container, PodSpec, VolumeMount};
use super::{Manifests, ModelError, Result};

/// A Secret key, as a workload references it (`secretKeyRef`, a `secret` volume).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

impl SecretKeyRef {
    pub fn new(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_string(),
            key: key.to_string(),
        }
    }

    /// The Secret's name without the hash suffix a `secretGenerator` adds.
    pub fn base_name(&self) -> &str {
        match self.name.rsplit_once('-') {
            Some((base, hash))
                if hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                base
            }
            _ => &self.name,
        }
    }

    /// Its value, when the overlay renders the Secret (`None` otherwise).
    pub fn value(&self, m: &Manifests) -> Result<Option<String>> {
        let Some(secret) = m.secret(&self.name) else {
            return Ok(None);
        };
        secret?
            .remove(&self.key)
            .map(Some)
            .ok_or_else(|| ModelError::Missing(format!("key {} of Secret {}", self.key, self.name)))
    }
}

/// Every Secret key a pod uses: `secretKeyRef`s of its containers, `items` of its Secret volumes.
pub fn secret_refs(spec: &PodSpec) -> BTreeSet<SecretKeyRef> {
    let mut refs = BTreeSet::new();
    for c in &spec.containers {
        for e in &c.env {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
            {
                refs.insert(SecretKeyRef::new(&r.name, &r.key));
            }
        }
    }
    for v in &spec.volumes {
        if let Some(s) = &v.secret {
            refs.extend(
                s.items
                    .iter()
                    .map(|i| SecretKeyRef::new(&s.secret_name, &i.key)),
            );
        }
    }
    refs
}

/// The Secret key a file of a container comes from, and the mount it is under.
pub fn secret_file<'a>(
    spec: &PodSpec,
    c: &'a Container,
    path: &str,
) -> Result<(&'a VolumeMount, SecretKeyRef)> {
    let mount = c
        .mount_above(path)
        .ok_or_else(|| ModelError::Missing(format!("{}: a volume mounted above {path}", c.name)))?;
    let file = &path[mount.mount_path.trim_end_matches('/').len() + 1..];
    let secret = spec
        .volume(&mount.name)
        .and_then(|v| v.secret.as_ref())
        .ok_or_else(|| ModelError::invalid(&c.name, format!("{path} is not from a Secret")))?;
    let key = if secret.items.is_empty() {
        file.to_string()
    } else {
        secret
            .items
            .iter()
            .find(|i| i.path == file)
            .map(|i| i.key.clone())
            .ok_or_else(|| ModelError::Missing(format!("{}: an item for {file}", c.name)))?
    };
    Ok((mount, SecretKeyRef::new(&secret.secret_name, &key)))
}
