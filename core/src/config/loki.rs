//! Configuration of query's Loki-compatible read API.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Loki API settings (query).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LokiSettings {
    /// Event fields that are stream labels besides `service` and `level`, comma-separated
    /// (`region,env`): selectable in `{…}` and listed by `/loki/api/v1/labels`. Dots become
    /// `_` as in Loki label names (`k8s.namespace` → `k8s_namespace`).
    pub loki_labels: String,
    /// A `count_over_time`/`rate` of a selector over `service` and `level` alone whose range
    /// holds more events than this is answered from the per-minute counters instead of reading
    /// the events (docs/observability.md: an event stamped exactly on a minute then counts in the
    /// next window). 0: always from the counters when they can answer.
    pub loki_counted_above: u64,
}

impl Default for LokiSettings {
    fn default() -> Self {
        LokiSettings {
            loki_labels: String::new(),
            // About 20 ms of reading events: below it the exact answer costs nothing noticeable.
            loki_counted_above: 10_000,
        }
    }
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
            ..LokiSettings::default()
        };
        assert_eq!(s.labels(), vec!["region", "k8s_namespace"]);
        assert!(s.validate().is_ok());
        let bad = LokiSettings {
            loki_labels: "level".into(),
            ..LokiSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("loki_labels")
        );
    }
}
