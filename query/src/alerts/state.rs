//! Alert state of one rule, and its transitions at each evaluation, with Prometheus's semantics:
//! an active element is `pending` until it has been active for `for`, then `firing`; one no
//! longer active is dropped if pending, resolved if firing (and its resolve sent, then re-sent
//! for [`KEEP_RESOLVED`]). Pure: the evaluator persists [`RuleState`] in NATS KV.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a resolved alert is kept (and its resolve re-sent), as Prometheus does.
pub const KEEP_RESOLVED: chrono::Duration = chrono::Duration::minutes(15);

pub type LabelSet = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertPhase {
    Pending,
    Firing,
    Inactive,
}

impl AlertPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertPhase::Pending => "pending",
            AlertPhase::Firing => "firing",
            AlertPhase::Inactive => "inactive",
        }
    }
}

/// One alert (a rule's label set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub phase: AlertPhase,
    pub value: f64,
    /// Became active (start of pending).
    pub active_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Last sent to Alertmanager.
    pub last_sent: Option<DateTime<Utc>>,
}

impl Alert {
    /// Whether Alertmanager should hear of it now (Prometheus's `needsSending`).
    pub fn needs_sending(&self, now: DateTime<Utc>, resend: chrono::Duration) -> bool {
        if self.phase == AlertPhase::Pending {
            return false;
        }
        match (self.last_sent, self.resolved_at) {
            (None, _) => true,
            (Some(sent), Some(resolved)) if resolved > sent => true,
            (Some(sent), _) => sent + resend <= now,
        }
    }
}

/// An active element of an evaluation: labels (the rule's included) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub value: f64,
}

/// A rule's alerts by label set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Key: the label set as text (`{a="1",b="2"}`).
    pub alerts: BTreeMap<String, Alert>,
}

/// The key of a label set.
pub fn fingerprint(labels: &LabelSet) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

impl RuleState {
    /// Applies one evaluation's result at `now`.
    pub fn apply(&mut self, active: Vec<Active>, for_: chrono::Duration, now: DateTime<Utc>) {
        let mut seen = std::collections::BTreeSet::new();
        for a in active {
            let key = fingerprint(&a.labels);
            seen.insert(key.clone());
            match self.alerts.get_mut(&key) {
                Some(alert) if alert.phase != AlertPhase::Inactive => {
                    alert.value = a.value;
                    alert.annotations = a.annotations;
                }
                _ => {
                    self.alerts.insert(
                        key,
                        Alert {
                            labels: a.labels,
                            annotations: a.annotations,
                            phase: AlertPhase::Pending,
                            value: a.value,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            last_sent: None,
                        },
                    );
                }
            }
        }
        self.alerts.retain(|key, alert| {
            if seen.contains(key) {
                return true;
            }
            match alert.phase {
                AlertPhase::Pending => false,
                AlertPhase::Firing => {
                    alert.phase = AlertPhase::Inactive;
                    alert.resolved_at = Some(now);
                    true
                }
                AlertPhase::Inactive => alert.resolved_at.is_some_and(|r| now - r < KEEP_RESOLVED),
            }
        });
        for alert in self.alerts.values_mut() {
            if alert.phase == AlertPhase::Pending && now - alert.active_at >= for_ {
                alert.phase = AlertPhase::Firing;
                alert.fired_at = Some(now);
            }
        }
    }

    pub fn firing(&self) -> usize {
        self.alerts
            .values()
            .filter(|a| a.phase == AlertPhase::Firing)
            .count()
    }

    /// The rule's state as `/api/v1/rules` shows it: its most advanced alert's.
    pub fn phase(&self) -> AlertPhase {
        let phases: Vec<AlertPhase> = self.alerts.values().map(|a| a.phase).collect();
        if phases.contains(&AlertPhase::Firing) {
            AlertPhase::Firing
        } else if phases.contains(&AlertPhase::Pending) {
            AlertPhase::Pending
        } else {
            AlertPhase::Inactive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn active(service: &str, v: f64) -> Active {
        Active {
            labels: [
                ("alertname".into(), "A".into()),
                ("service".into(), service.into()),
            ]
            .into(),
            annotations: [("summary".into(), format!("{v}"))].into(),
            value: v,
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved_and_forgotten() {
        let mut s = RuleState::default();
        let for_ = chrono::Duration::seconds(3);
        let resend = chrono::Duration::seconds(60);
        s.apply(vec![active("api", 5.0)], for_, at(0));
        let a = s.alerts.values().next().unwrap();
        assert_eq!(a.phase, AlertPhase::Pending);
        assert!(!a.needs_sending(at(0), resend));
        s.apply(vec![active("api", 6.0)], for_, at(2));
        assert_eq!(s.phase(), AlertPhase::Pending);
        s.apply(vec![active("api", 7.0)], for_, at(3));
        let a = s.alerts.values_mut().next().unwrap();
        assert_eq!(
            (a.phase, a.value, a.fired_at),
            (AlertPhase::Firing, 7.0, Some(at(3)))
        );
        assert_eq!(a.active_at, at(0));
        assert_eq!(a.annotations["summary"], "7");
        assert!(a.needs_sending(at(3), resend));
        a.last_sent = Some(at(3));
        assert!(!a.needs_sending(at(62), resend));
        assert!(a.needs_sending(at(63), resend));
        assert_eq!(s.firing(), 1);
        s.apply(vec![], for_, at(70));
        let a = s.alerts.values().next().unwrap();
        assert_eq!(
            (a.phase, a.resolved_at),
            (AlertPhase::Inactive, Some(at(70)))
        );
        assert!(
            a.needs_sending(at(70), resend),
            "the resolve is sent at once"
        );
        s.apply(vec![], for_, at(70 + 15 * 60));
        assert!(s.alerts.is_empty());
    }

    #[test]
    fn pending_that_stops_is_dropped_and_a_new_activation_starts_over() {
        let mut s = RuleState::default();
        let for_ = chrono::Duration::seconds(10);
        s.apply(vec![active("api", 1.0), active("web", 1.0)], for_, at(0));
        s.apply(vec![active("web", 1.0)], for_, at(5));
        assert_eq!(s.alerts.len(), 1);
        s.apply(vec![active("api", 1.0), active("web", 1.0)], for_, at(10));
        let phases: Vec<_> = s
            .alerts
            .values()
            .map(|a| (a.labels["service"].clone(), a.phase))
            .collect();
        assert_eq!(
            phases,
            vec![
                ("api".into(), AlertPhase::Pending),
                ("web".into(), AlertPhase::Firing)
            ]
        );
        // Resolved, then active again: a new alert, pending from now.
        s.apply(vec![active("api", 1.0)], for_, at(11));
        s.apply(vec![active("api", 1.0), active("web", 1.0)], for_, at(12));
        let web = &s.alerts[&fingerprint(&active("web", 1.0).labels)];
        assert_eq!((web.phase, web.active_at), (AlertPhase::Pending, at(12)));
    }

    #[test]
    fn zero_for_fires_at_once_and_state_round_trips() {
        let mut s = RuleState::default();
        s.apply(vec![active("api", 1.0)], chrono::Duration::zero(), at(0));
        assert_eq!(s.phase(), AlertPhase::Firing);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<RuleState>(&json).unwrap(), s);
    }
}
