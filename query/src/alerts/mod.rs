//! Alert rules evaluated by logjet itself (docs/observability.md, "Alerts").
//!
//! `rules` loads and validates the rule files, `lease` elects the one replica that evaluates
//! (NATS KV), `evaluate` runs each group on schedule, `state` holds Prometheus's pending/firing
//! semantics, `notify` posts to Alertmanager, `api` serves `/api/v1/rules` and `/api/v1/alerts`.
//! Alert state lives in the KV bucket [`BUCKET`], so a restart or a new leader carries on.

pub mod api;
pub mod evaluate;
pub mod lease;
pub mod notify;
pub mod rules;
pub mod state;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Store};
use chrono::{DateTime, Utc};
use logjet_core::config::AlertSettings;
use prometheus::{IntCounter, IntGauge};
use tokio_util::sync::CancellationToken;

use evaluate::RuleHealth;
use lease::Lease;
use notify::Notifier;
use rules::Group;
use state::RuleState;

/// The NATS KV bucket of the lease and the alert state.
pub const BUCKET: &str = "logjet_alerts";

/// Alerting's metrics; registered whether or not rules are configured.
#[derive(Clone)]
pub struct AlertMetrics {
    pub evaluations: IntCounter,
    pub evaluation_failures: IntCounter,
    pub firing: IntGauge,
    pub notifications: IntCounter,
    pub notification_failures: IntCounter,
    pub leader: IntGauge,
}

impl AlertMetrics {
    pub fn new(registry: &prometheus::Registry) -> AlertMetrics {
        use logjet_core::metrics::{gauge, register};
        let counter = |name: &str, help: &str| {
            register(registry, IntCounter::new(name, help).expect("valid metric"))
        };
        AlertMetrics {
            evaluations: counter("logjet_alert_evaluations_total", "Alert rule evaluations."),
            evaluation_failures: counter(
                "logjet_alert_evaluation_failures_total",
                "Alert rule evaluations that failed (the rule's alerts are left as they were).",
            ),
            firing: gauge(
                registry,
                "logjet_alerts_firing",
                "Alerts firing, on the evaluating replica.",
            ),
            notifications: counter(
                "logjet_alert_notifications_total",
                "Alerts (firing or resolved) sent to Alertmanager.",
            ),
            notification_failures: counter(
                "logjet_alert_notification_failures_total",
                "Posts to Alertmanager that no Alertmanager accepted (retried at the next evaluation).",
            ),
            leader: gauge(
                registry,
                "logjet_alert_evaluator_leader",
                "1 on the query replica that holds the alert evaluator lease.",
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error("alert state (NATS KV bucket {BUCKET}): {0}")]
    Kv(String),
}

/// Evaluation status of one group, for `/api/v1/rules`.
#[derive(Debug, Clone, Default)]
pub struct GroupHealth {
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_secs: f64,
    pub rules: Vec<RuleHealth>,
    pub firing: usize,
}

/// The loaded rules and what evaluates them.
pub struct Alerting {
    pub groups: Vec<Group>,
    pub kv: tokio::sync::OnceCell<Store>,
    pub lease: Lease,
    pub notifier: Notifier,
    pub metrics: AlertMetrics,
    pub resend_delay: Duration,
    pub lease_ttl: Duration,
    pub state_ttl: Duration,
    pub generator_url: String,
    health: Mutex<Vec<GroupHealth>>,
}

impl Alerting {
    /// Loads the rules (an error names the file, group and rule); `None` when no rules are
    /// configured.
    pub fn load(
        cfg: &AlertSettings,
        listen: std::net::SocketAddr,
        metrics: AlertMetrics,
    ) -> Result<Option<Arc<Alerting>>, AlertsError> {
        if cfg.alert_rules.trim().is_empty() {
            return Ok(None);
        }
        let groups = rules::load(
            Path::new(cfg.alert_rules.trim()),
            cfg.alert_default_interval,
        )?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "query".into());
        let holder = format!(
            "{host}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let base = if cfg.alert_external_url.is_empty() {
            format!("http://{host}:{}", listen.port())
        } else {
            cfg.alert_external_url.trim_end_matches('/').to_string()
        };
        tracing::info!(
            groups = groups.len(),
            rules = groups.iter().map(|g| g.rules.len()).sum::<usize>(),
            "alert rules loaded"
        );
        let health = groups
            .iter()
            .map(|g| GroupHealth {
                rules: vec![RuleHealth::default(); g.rules.len()],
                ..Default::default()
            })
            .collect();
        Ok(Some(Arc::new(Alerting {
            groups,
            kv: tokio::sync::OnceCell::new(),
            lease: Lease::new(holder),
            notifier: Notifier::new(cfg.alertmanagers()),
            metrics,
            resend_delay: cfg.alert_resend_delay,
            lease_ttl: cfg.alert_lease_ttl,
            state_ttl: cfg.alert_state_ttl,
            generator_url: format!("{base}/api/v1/rules"),
            health: Mutex::new(health),
        })))
    }

    /// Opens (or creates) the bucket, retrying until NATS answers, then takes part in the
    /// election and evaluates every group while holding the lease.
    pub fn spawn(self: &Arc<Self>, st: crate::AppState, shutdown: CancellationToken) {
        let a = self.clone();
        tokio::spawn(async move {
            let js =
                logjet_core::jetstream::context(st.tails.client.clone(), Duration::from_secs(5));
            let store = loop {
                match open_bucket(&js, a.state_ttl).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, "alert state bucket unavailable; retrying")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            };
            let _ = a.kv.set(store.clone());
            for gi in 0..a.groups.len() {
                tokio::spawn(evaluate::run_group(
                    st.clone(),
                    a.clone(),
                    gi,
                    shutdown.child_token(),
                ));
            }
            let leader = a.metrics.leader.clone();
            let lease = a.lease.clone();
            let watch = tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    while !shutdown.is_cancelled() {
                        leader.set(lease.is_held() as i64);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            });
            a.lease.clone().run(store, a.lease_ttl, shutdown).await;
            a.metrics.leader.set(0);
            watch.abort();
        });
    }

    /// Sends what needs sending of a rule's alerts and records when.
    async fn send(
        &self,
        s: &mut RuleState,
        group: &str,
        rule: &str,
        now: DateTime<Utc>,
        resend: chrono::Duration,
        valid_for: chrono::Duration,
    ) {
        if !self.notifier.is_configured() {
            return;
        }
        let due: Vec<String> = s
            .alerts
            .iter()
            .filter(|(_, a)| a.needs_sending(now, resend))
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let postables: Vec<notify::Postable> = due
            .iter()
            .filter_map(|k| s.alerts.get(k))
            .map(|a| notify::postable(a, now, valid_for, &self.generator_url))
            .collect();
        match self.notifier.send(&postables).await {
            Ok(()) => {
                self.metrics.notifications.inc_by(postables.len() as u64);
                for k in due {
                    if let Some(a) = s.alerts.get_mut(&k) {
                        a.last_sent = Some(now);
                    }
                }
            }
            Err(e) => {
                self.metrics.notification_failures.inc();
                tracing::warn!(group, rule, error = %e, "alerts not delivered; retried at the next evaluation");
            }
        }
    }

    fn set_health(&self, gi: usize, ri: usize, h: RuleHealth) {
        if let Ok(mut g) = self.health.lock()
            && let Some(slot) = g.get_mut(gi).and_then(|g| g.rules.get_mut(ri))
        {
            *slot = h;
        }
    }

    fn set_group_evaluated(&self, gi: usize, at: DateTime<Utc>, secs: f64) {
        if let Ok(mut g) = self.health.lock()
            && let Some(slot) = g.get_mut(gi)
        {
            slot.last_evaluation = Some(at);
            slot.evaluation_secs = secs;
        }
    }

    /// Records group `gi`'s firing alerts and sets the gauge to the total.
    fn set_firing(&self, gi: usize, n: usize) {
        if let Ok(mut g) = self.health.lock() {
            if let Some(slot) = g.get_mut(gi) {
                slot.firing = n;
            }
            self.metrics
                .firing
                .set(g.iter().map(|g| g.firing).sum::<usize>() as i64);
        }
    }

    pub fn health(&self) -> Vec<GroupHealth> {
        self.health.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

async fn open_bucket(
    js: &async_nats::jetstream::Context,
    max_age: Duration,
) -> Result<Store, String> {
    if let Ok(s) = js.get_key_value(BUCKET).await {
        return Ok(s);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            description: "logjet alert evaluator: lease and alert state".into(),
            history: 1,
            max_age,
            ..Default::default()
        })
        .await;
    match created {
        Ok(s) => Ok(s),
        // Another replica created it meanwhile.
        Err(e) => js.get_key_value(BUCKET).await.map_err(|_| e.to_string()),
    }
}

/// The KV key of a rule's state: names hex-encoded, as KV keys allow few characters.
pub fn state_key(group: &str, rule: &str) -> String {
    let hex: String = format!("{group}\u{0}{rule}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("state.{hex}")
}

/// A rule's stored state (empty if none) and its stored bytes.
pub async fn load_state(
    kv: &Store,
    group: &str,
    rule: &str,
) -> Result<(RuleState, Vec<u8>), String> {
    match kv
        .get(state_key(group, rule))
        .await
        .map_err(|e| e.to_string())?
    {
        None => Ok((RuleState::default(), Vec::new())),
        Some(raw) => match serde_json::from_slice(&raw) {
            Ok(s) => Ok((s, raw.to_vec())),
            Err(e) => {
                tracing::warn!(group, rule, error = %e, "stored alert state unreadable; starting afresh");
                Ok((RuleState::default(), Vec::new()))
            }
        },
    }
}

async fn store_state(kv: &Store, group: &str, rule: &str, raw: Vec<u8>) -> Result<(), String> {
    kv.put(state_key(group, rule), raw.into())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_keys_are_valid_kv_keys_and_distinct() {
        let k = super::state_key("g/1", "A b");
        assert!(
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
            "{k}"
        );
        assert_ne!(super::state_key("a", "bc"), super::state_key("ab", "c"));
    }
}
