//! Sending alerts to Alertmanager's API v2: `POST /api/v2/alerts` with a JSON array, to every
//! configured Alertmanager (they deduplicate among themselves).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::state::{Alert, AlertPhase, LabelSet};

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Postable {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What Alertmanager is told of `a` at `now`: a firing alert ends at `valid_for` from now unless
/// re-sent (so one whose evaluator died resolves by itself), a resolved one at its resolve time.
pub fn postable(
    a: &Alert,
    now: DateTime<Utc>,
    valid_for: chrono::Duration,
    generator_url: &str,
) -> Postable {
    let ends_at = match (a.phase, a.resolved_at) {
        (AlertPhase::Inactive, Some(r)) => r,
        _ => now + valid_for,
    };
    Postable {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: rfc3339(a.fired_at.unwrap_or(a.active_at)),
        ends_at: rfc3339(ends_at),
        generator_url: generator_url.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("alertmanager {url}: {problem}")]
pub struct NotifyError {
    pub url: String,
    pub problem: String,
}

#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl Notifier {
    pub fn new(urls: Vec<String>) -> Notifier {
        // reqwest here is built on rustls without a default provider (core's `archive`).
        logjet_core::archive::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Notifier { http, urls }
    }

    pub fn is_configured(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Posts `alerts` to every Alertmanager; `Ok` if at least one took them (they share
    /// notifications in a cluster), else the first error.
    pub async fn send(&self, alerts: &[Postable]) -> Result<(), NotifyError> {
        if alerts.is_empty() || self.urls.is_empty() {
            return Ok(());
        }
        let mut first_err = None;
        let mut any_ok = false;
        for base in &self.urls {
            let url = format!("{base}/api/v2/alerts");
            let result = self.http.post(&url).json(alerts).send().await;
            let err = match result {
                Ok(r) if r.status().is_success() => {
                    any_ok = true;
                    continue;
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    format!("{status}: {}", body.chars().take(300).collect::<String>())
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(alertmanager = %base, error = %err, "sending alerts failed");
            first_err.get_or_insert(NotifyError {
                url: base.clone(),
                problem: err,
            });
        }
        match (any_ok, first_err) {
            (false, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firing_ends_ahead_and_resolved_ends_at_resolve() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut a = Alert {
            labels: [("alertname".into(), "A".into())].into(),
            annotations: [("summary".into(), "s".into())].into(),
            phase: AlertPhase::Firing,
            value: 1.0,
            active_at: t0,
            fired_at: Some(t0 + chrono::Duration::seconds(5)),
            resolved_at: None,
            last_sent: None,
        };
        let now = t0 + chrono::Duration::seconds(10);
        let p = postable(
            &a,
            now,
            chrono::Duration::seconds(240),
            "http://q/api/v1/rules",
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["startsAt"], "2023-11-14T22:13:25.000Z");
        assert_eq!(json["endsAt"], "2023-11-14T22:17:30.000Z");
        assert_eq!(json["generatorURL"], "http://q/api/v1/rules");
        assert_eq!(json["labels"]["alertname"], "A");
        a.phase = AlertPhase::Inactive;
        a.resolved_at = Some(now);
        assert_eq!(
            postable(&a, now, chrono::Duration::seconds(240), "").ends_at,
            "2023-11-14T22:13:30.000Z"
        );
    }
}
