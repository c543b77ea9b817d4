//! Configuration of query's alert rule evaluation (docs/observability.md, "Alerts").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, positive_duration};

/// Alert settings (query). Rules are evaluated only when `alert_rules` names a file or a
/// directory; one query replica at a time evaluates them (a lease in NATS KV).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertSettings {
    /// A rule file (YAML, Prometheus/Loki ruler format) or a directory of them (`*.yml`,
    /// `*.yaml`); empty: no alerting.
    pub alert_rules: String,
    /// Alertmanager base URLs, comma-separated (`http://alertmanager:9093`); each receives every
    /// notification. Empty: alerts are evaluated and listed but not sent.
    pub alertmanager_url: String,
    /// How often a firing alert is sent again (Prometheus's `--rules.alert.resend-delay`).
    #[serde(with = "humantime_serde")]
    pub alert_resend_delay: Duration,
    /// How long the evaluator's lease lasts without renewal; another replica takes over after.
    #[serde(with = "humantime_serde")]
    pub alert_lease_ttl: Duration,
    /// A group's `interval` when it sets none.
    #[serde(with = "humantime_serde")]
    pub alert_default_interval: Duration,
    /// Base of each alert's `generatorURL` (the dashboard or Grafana Explore); empty: the
    /// query service's own `/api/v1/rules`.
    pub alert_external_url: String,
    /// Max age of the NATS KV bucket `logjet_alerts` (state not rewritten for this long is
    /// dropped: rules since removed).
    #[serde(with = "humantime_serde")]
    pub alert_state_ttl: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            alert_rules: String::new(),
            alertmanager_url: String::new(),
            alert_resend_delay: Duration::from_secs(60),
            alert_lease_ttl: Duration::from_secs(15),
            alert_default_interval: Duration::from_secs(60),
            alert_external_url: String::new(),
            alert_state_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

impl AlertSettings {
    /// The Alertmanager URLs, without a trailing `/`.
    pub fn alertmanagers(&self) -> Vec<String> {
        self.alertmanager_url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_string())
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for u in self.alertmanagers() {
            super::validate_url("alertmanager_url", &u, &["http", "https"])?;
        }
        positive_duration("alert_resend_delay", self.alert_resend_delay)?;
        positive_duration("alert_default_interval", self.alert_default_interval)?;
        if self.alert_lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "alert_lease_ttl",
                "must be at least 1s (it is renewed every third of it)",
            ));
        }
        if self.alert_state_ttl < self.alert_resend_delay * 4 {
            return Err(ConfigError::invalid(
                "alert_state_ttl",
                "must be at least 4 × alert_resend_delay (firing state is rewritten at each resend)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_listed_and_validated() {
        let s = AlertSettings {
            alertmanager_url: "http://am-0:9093/, http://am-1:9093".into(),
            ..Default::default()
        };
        assert_eq!(
            s.alertmanagers(),
            vec!["http://am-0:9093", "http://am-1:9093"]
        );
        assert!(s.validate().is_ok());
        let bad = AlertSettings {
            alertmanager_url: "am:9093".into(),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("alertmanager_url")
        );
        let bad = AlertSettings {
            alert_lease_ttl: Duration::from_millis(10),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("alert_lease_ttl")
        );
    }
}
