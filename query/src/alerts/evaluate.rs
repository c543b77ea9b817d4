//! The evaluation loop of one group (on the lease holder only) and what one rule's evaluation
//! finds active: the series of a LogQL metric query, or the templates new in a service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use logjet_core::keys::Bucket;
use tokio_util::sync::CancellationToken;

use super::Alerting;
use super::rules::{Rule, RuleKind, TemplateData, expand};
use super::state::{Active, LabelSet, RuleState};
use crate::AppState;
use crate::loki::eval::Value;
use crate::patterns::{PatternQuery, read_templates};

/// What was found active, and for pattern rules the template texts by `pattern_id`.
async fn active_elements(
    st: &AppState,
    rule: &Rule,
    now: DateTime<Utc>,
) -> Result<Vec<Active>, String> {
    let mut out = Vec::new();
    match &rule.kind {
        RuleKind::LogQl { expr, .. } => {
            let t = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
            let (value, _) = crate::loki::api::eval_metric(st, expr, vec![t])
                .await
                .map_err(|e| e.to_string())?;
            let series: Vec<(LabelSet, f64)> = match value {
                Value::Scalar(v) if v.is_nan() => vec![],
                Value::Scalar(v) => vec![(LabelSet::new(), v)],
                Value::Vector(v) => v
                    .into_iter()
                    .filter_map(|(labels, vals)| Some((labels, vals.first().copied().flatten()?)))
                    .collect(),
            };
            for (labels, value) in series {
                out.push(element(rule, labels, value, "", ""));
            }
        }
        RuleKind::NewPattern {
            service,
            level,
            window,
            baseline,
        } => {
            let minutes = |d: std::time::Duration| (d.as_secs() as i64 + 59) / 60;
            let (window_m, baseline_m) = (minutes(*window), minutes(*baseline));
            let last_minute = Bucket::M1.start(now.timestamp());
            let q = PatternQuery {
                service: Some(service.clone()),
                level: *level,
                first_minute: last_minute - 60 * (window_m + baseline_m - 1),
                last_minute,
                limit: usize::MAX,
            };
            let templates = crate::retry_once(&st.redis, || async {
                Ok(read_templates(&st.redis.conn, &q).await?)
            })
            .await
            .map_err(|e| e.to_string())?;
            let split = baseline_m as usize;
            for t in templates {
                let (before, recent) = t.series.split_at(split.min(t.series.len()));
                let recent: u64 = recent.iter().sum();
                if before.iter().all(|n| *n == 0) && recent > 0 {
                    let mut labels: LabelSet = [
                        ("service".to_string(), service.as_str().to_string()),
                        ("pattern_id".to_string(), t.id.clone()),
                    ]
                    .into();
                    if let Some(l) = level {
                        labels.insert("level".into(), l.as_str().into());
                    }
                    out.push(element(rule, labels, recent as f64, &t.template, &t.sample));
                }
            }
        }
    }
    Ok(out)
}

/// An active element's labels (the series', then the rule's, then `alertname`) and annotations,
/// templates expanded. Pattern alerts carry their template and sample as annotations too.
fn element(rule: &Rule, series: LabelSet, value: f64, template: &str, sample: &str) -> Active {
    let data = TemplateData {
        labels: &series,
        value,
        template,
        sample,
    };
    let mut labels = series.clone();
    for (k, v) in &rule.labels {
        labels.insert(k.clone(), expand(v, &data));
    }
    labels.insert("alertname".into(), rule.name.clone());
    let mut annotations: LabelSet = BTreeMap::new();
    if matches!(rule.kind, RuleKind::NewPattern { .. }) {
        annotations.insert("template".into(), template.to_string());
        annotations.insert("sample".into(), sample.to_string());
    }
    for (k, v) in &rule.annotations {
        annotations.insert(k.clone(), expand(v, &data));
    }
    Active {
        labels,
        annotations,
        value,
    }
}

/// The last evaluation of a rule, for `/api/v1/rules`.
#[derive(Debug, Clone, Default)]
pub struct RuleHealth {
    pub last_error: Option<String>,
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_secs: f64,
}

/// Evaluates group `gi` every `interval` while this replica holds the lease.
pub async fn run_group(st: AppState, a: Arc<Alerting>, gi: usize, shutdown: CancellationToken) {
    let group = &a.groups[gi];
    let mut tick = tokio::time::interval(group.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The lease generation the in-memory state was read in, and the state by rule.
    let mut loaded: Option<u64> = None;
    let mut states: Vec<RuleState> = vec![RuleState::default(); group.rules.len()];
    let mut persisted: Vec<Vec<u8>> = vec![Vec::new(); group.rules.len()];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(kv) = a.kv.get() else { continue };
        if !a.lease.is_held() {
            if loaded.take().is_some() {
                a.set_firing(gi, 0);
            }
            continue;
        }
        let generation = a.lease.generation();
        if loaded != Some(generation) {
            // A new holding: the previous holder may have moved on; read what it left.
            let mut fresh = Vec::with_capacity(group.rules.len());
            let mut ok = true;
            for rule in &group.rules {
                match super::load_state(kv, &group.name, &rule.name).await {
                    Ok((s, raw)) => fresh.push((s, raw)),
                    Err(e) => {
                        tracing::warn!(group = %group.name, error = %e, "reading alert state failed; evaluation skipped");
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                continue;
            }
            (states, persisted) = fresh.into_iter().unzip();
            loaded = Some(generation);
        }
        let started = Instant::now();
        let now = Utc::now();
        let resend = chrono::Duration::from_std(a.resend_delay).unwrap_or(chrono::Duration::MAX);
        let valid_for = chrono::Duration::from_std(4 * a.resend_delay.max(group.interval))
            .unwrap_or(chrono::Duration::MAX);
        let mut firing = 0;
        for (ri, rule) in group.rules.iter().enumerate() {
            let rule_started = Instant::now();
            a.metrics.evaluations.inc();
            let result = active_elements(&st, rule, now).await;
            let mut health = RuleHealth {
                last_error: None,
                last_evaluation: Some(now),
                evaluation_secs: 0.0,
            };
            match result {
                Ok(active) => {
                    let for_ =
                        chrono::Duration::from_std(rule.for_).unwrap_or(chrono::Duration::MAX);
                    states[ri].apply(active, for_, now);
                }
                Err(e) => {
                    // As Prometheus: a failed evaluation changes no alert; firing ones are still
                    // re-sent below so they do not time out in Alertmanager.
                    a.metrics.evaluation_failures.inc();
                    tracing::warn!(group = %group.name, rule = %rule.name, error = %e, "alert rule evaluation failed");
                    health.last_error = Some(e);
                }
            }
            a.send(
                &mut states[ri],
                &group.name,
                &rule.name,
                now,
                resend,
                valid_for,
            )
            .await;
            firing += states[ri].firing();
            health.evaluation_secs = rule_started.elapsed().as_secs_f64();
            a.set_health(gi, ri, health);
            // Still the holder? Then what changed is written for the next one.
            if a.lease.is_held() && a.lease.generation() == generation {
                match serde_json::to_vec(&states[ri]) {
                    Ok(raw) if raw != persisted[ri] => {
                        match super::store_state(kv, &group.name, &rule.name, raw.clone()).await {
                            Ok(()) => persisted[ri] = raw,
                            Err(e) => {
                                tracing::warn!(group = %group.name, rule = %rule.name, error = %e, "writing alert state failed")
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        a.set_firing(gi, firing);
        a.set_group_evaluated(gi, now, started.elapsed().as_secs_f64());
    }
}
