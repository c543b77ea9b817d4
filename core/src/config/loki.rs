//! Configuration of query's Loki-compatible read API.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Loki API settings (query).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LokiSettings {
    /// Event fields that are stream labels besides `service` and `level`, comma-separated
    /// (`region,env`): selectable in `{…}` and listed by `/loki/api/v1/labels`. Dots become
    /// `_` as in Loki label names (`k8s.namespace` → `k8s_namespace`).
    pub loki_labels: String,
}

impl LokiSettings {
    /// The configured labels, as Loki label names.
    pub fn labels(&self) -> Vec<String> {
        self.loki_labels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for l in self.labels() {
            if l.starts_with(|c: char| c.is_ascii_digit()) || l == "service" || l == "level" {
                return Err(ConfigError::invalid(
                    "loki_labels",
                    format!("{l:?} cannot be a label name here"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_loki_names_and_validated() {
        let s = LokiSettings {
            loki_labels: "region, k8s.namespace,".into(),
        };
        assert_eq!(s.labels(), vec!["region", "k8s_namespace"]);
        assert!(s.validate().is_ok());
        let bad = LokiSettings {
            loki_labels: "level".into(),
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("loki_labels")
        );
    }
}
