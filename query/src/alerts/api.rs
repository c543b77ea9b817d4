//! `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus's JSON shapes. Any replica
//! answers: alert state is read from the KV bucket the evaluator writes; evaluation health is
//! the evaluating replica's own (others say `unknown`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::state::{AlertPhase, RuleState};
use super::{Alerting, load_state};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"status": "error", "errorType": "unavailable", "error": message});
    (status, axum::Json(body)).into_response()
}

/// Every rule's state, `None` while the bucket is not open yet.
async fn states(a: &Alerting) -> Result<Vec<Vec<RuleState>>, String> {
    let Some(kv) = a.kv.get() else {
        return Err("alert state not available yet (NATS KV)".into());
    };
    let mut out = Vec::new();
    for g in &a.groups {
        let mut rules = Vec::new();
        for r in &g.rules {
            rules.push(load_state(kv, &g.name, &r.name).await?.0);
        }
        out.push(rules);
    }
    Ok(out)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus prints alert values.
pub fn go_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

fn alert_json(s: &RuleState) -> Vec<Value> {
    s.alerts
        .values()
        .filter(|a| a.phase != AlertPhase::Inactive)
        .map(|a| {
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "state": a.phase.as_str(),
                "activeAt": a.active_at.to_rfc3339_opts(SecondsFormat::Nanos, true),
                "value": go_float(a.value),
            })
        })
        .collect()
}

async fn rules(State(st): State<AppState>) -> Response {
    let Some(a) = st.alerts.as_ref() else {
        return axum::Json(json!({"status": "success", "data": {"groups": []}})).into_response();
    };
    let states = match states(a).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let health = a.health();
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "0001-01-01T00:00:00Z".to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Nanos, true),
        )
    };
    let groups: Vec<Value> = a
        .groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let gh = health.get(gi).cloned().unwrap_or_default();
            let rules: Vec<Value> = g
                .rules
                .iter()
                .enumerate()
                .map(|(ri, r)| {
                    let h = gh.rules.get(ri).cloned().unwrap_or_default();
                    let s = &states[gi][ri];
                    let health = match (&h.last_evaluation, &h.last_error) {
                        (None, _) => "unknown",
                        (Some(_), None) => "ok",
                        (Some(_), Some(_)) => "err",
                    };
                    let mut rule = json!({
                        "state": s.phase().as_str(),
                        "name": r.name,
                        "query": r.query(),
                        "duration": r.for_.as_secs_f64(),
                        "keepFiringFor": 0,
                        "labels": r.labels,
                        "annotations": r.annotations,
                        "alerts": alert_json(s),
                        "health": health,
                        "evaluationTime": h.evaluation_secs,
                        "lastEvaluation": ts(h.last_evaluation),
                        "type": "alerting",
                    });
                    if let Some(e) = &h.last_error {
                        rule["lastError"] = json!(e);
                    }
                    rule
                })
                .collect();
            json!({
                "name": g.name,
                "file": g.file,
                "interval": g.interval.as_secs_f64(),
                "limit": 0,
                "rules": rules,
                "evaluationTime": gh.evaluation_secs,
                "lastEvaluation": ts(gh.last_evaluation),
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"groups": groups}})).into_response()
}

async fn alerts(State(st): State<AppState>) -> Response {
    let Some(a) = st.alerts.as_ref() else {
        return axum::Json(json!({"status": "success", "data": {"alerts": []}})).into_response();
    };
    match states(a).await {
        Ok(states) => {
            let alerts: Vec<Value> = states.iter().flatten().flat_map(alert_json).collect();
            axum::Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_print_as_go_does() {
        assert_eq!(super::go_float(1.0), "1e+00");
        assert_eq!(super::go_float(15.0), "1.5e+01");
        assert_eq!(super::go_float(0.025), "2.5e-02");
        assert_eq!(super::go_float(f64::NAN), "NaN");
    }
}
