//! The `/loki/api/v1/…` handlers: thin, over [`super::read`], [`super::eval`] and
//! [`super::json`]. Routes and their Grafana callers are listed in docs/observability.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value as Json, json};

use logjet_core::keys::Bucket;

use super::counts::CounterPlan;
use super::error::LokiError;
use super::eval::{self, RangeInput, Steps};
use super::json::{self, Stats};
use super::logql::{self, Expr, LogExpr, MetricExpr};
use super::params::Params;
use super::pipeline::{CompiledLog, Labels};
use super::read::{Want, read};
use crate::{AppState, stats};

type Answer = Result<axum::Json<Json>, LokiError>;

/// The Loki routes (under the query service's guard and request limits).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/query", get(query))
        .route("/loki/api/v1/query_range", get(query_range))
        .route("/loki/api/v1/labels", get(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series))
        .route("/loki/api/v1/index/stats", get(index_stats))
        .route("/loki/api/v1/index/volume", get(index_volume))
        .route("/loki/api/v1/patterns", get(patterns))
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected_field_values),
        )
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
}

/// Loki's `/ready`: plain text, no key needed (a probe).
pub fn ready_router() -> Router<AppState> {
    Router::new().route("/ready", get(ready))
}

fn field_labels(st: &AppState) -> Vec<String> {
    st.cfg.loki.labels()
}

fn compile(st: &AppState, l: &LogExpr) -> Result<CompiledLog, LokiError> {
    Ok(CompiledLog::compile(l, &field_labels(st))?)
}

/// Grafana marks its supporting queries (`X-Query-Tags: Source=logvolhist|logsample`).
fn note_tags(headers: &HeaderMap, endpoint: &str, q: &str) {
    let tags = headers
        .get("x-query-tags")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::debug!(endpoint, query = q, tags, "loki query");
}

fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A parameter that must be a log query (a selector, maybe with a pipeline).
fn log_param(st: &AppState, q: &str) -> Result<CompiledLog, LokiError> {
    match logql::parse(q)? {
        Expr::Log(l) => compile(st, &l),
        Expr::Metric(_) => Err(LokiError::bad(format!(
            "{q}: a stream selector is needed here, not a metric query"
        ))),
    }
}

/// Every event: a selector-less log query.
fn all_events(st: &AppState) -> Result<CompiledLog, LokiError> {
    compile(
        st,
        &LogExpr {
            selector: vec![],
            pipeline: vec![],
        },
    )
}

/// The log query of an optional `query` parameter, else every event.
fn optional_selector(st: &AppState, p: &Params) -> Result<CompiledLog, LokiError> {
    match p.get("query") {
        Some(q) => log_param(st, q),
        None => all_events(st),
    }
}

async fn query(State(st): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Answer {
    let started = Instant::now();
    let p = Params::from_query(raw.as_deref());
    let q = p.query()?;
    note_tags(&headers, "query", q);
    let t = p.time("time", now_ns())?;
    match logql::parse(q)? {
        Expr::Log(_) => Err(LokiError::bad(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        Expr::Metric(m) => {
            let (v, mut stats) = eval_metric(&st, &m, vec![t]).await?;
            stats.secs = started.elapsed().as_secs_f64();
            Ok(axum::Json(json::instant(&v, t, stats)))
        }
    }
}

async fn query_range(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let started = Instant::now();
    let p = Params::from_query(raw.as_deref());
    let q = p.query()?;
    note_tags(&headers, "query_range", q);
    let (start, end) = p.range(Utc::now())?;
    match logql::parse(q)? {
        Expr::Log(l) => {
            let limit = p.limit()?;
            let forward = p.forward()?;
            let log = compile(&st, &l)?;
            let want = if forward {
                Want::All
            } else {
                Want::Newest(limit)
            };
            let r = read(&st, &log, start, end, want).await?;
            let mut entries = r.entries;
            if forward {
                entries.reverse();
            }
            entries.truncate(limit);
            let stats = Stats {
                lines: r.scanned,
                bytes: r.bytes,
                returned: entries.len() as u64,
                secs: started.elapsed().as_secs_f64(),
            };
            Ok(axum::Json(json::streams(&entries, stats)))
        }
        Expr::Metric(m) => {
            let step = p.step(start, end)?;
            // Points at multiples of `step` (Loki's `align_queries_with_step`).
            let first = start - start.rem_euclid(step);
            let last = end - end.rem_euclid(step);
            let steps: Vec<i64> = (0..)
                .map(|i| first + i * step)
                .take_while(|t| *t <= last)
                .collect();
            let (v, mut stats) = eval_metric(&st, &m, steps.clone()).await?;
            stats.secs = started.elapsed().as_secs_f64();
            Ok(axum::Json(json::matrix(&v, &steps, stats)))
        }
    }
}

/// Reads what each range aggregation of `m` needs and evaluates it at `steps`.
pub(crate) async fn eval_metric(
    st: &AppState,
    m: &MetricExpr,
    steps: Vec<i64>,
) -> Result<(eval::Value, Stats), LokiError> {
    let mut stats = Stats::default();
    let mut inputs = Vec::new();
    let (Some(first), Some(last)) = (steps.first().copied(), steps.last().copied()) else {
        return Ok((eval::Value::Vector(BTreeMap::new()), stats));
    };
    for (func, l, range) in m.range_inputs() {
        let log = compile(st, l)?;
        if let Some(plan) = CounterPlan::new(func, &log, range, &steps) {
            let (events, series) = counted(st, &plan, &steps).await?;
            if events > st.cfg.loki.loki_counted_above {
                inputs.push(RangeInput::Series(series));
                continue;
            }
        }
        let range_ns = i64::try_from(range.as_nanos()).unwrap_or(i64::MAX);
        let r = read(
            st,
            &log,
            first.saturating_sub(range_ns),
            last + 1,
            Want::All,
        )
        .await?;
        stats.lines += r.scanned;
        stats.bytes += r.bytes;
        inputs.push(RangeInput::Entries(r.entries));
    }
    let v = eval::eval(m, &Steps(steps), &mut inputs.into_iter());
    Ok((v, stats))
}

/// A range aggregation's series from the per-minute counters (Redis's, and before its
/// retention the archive's segment counts, as `/stats/timeseries` reads them), and how many
/// events its windows hold: few enough, and reading them gives the exact answer instead.
async fn counted(
    st: &AppState,
    plan: &CounterPlan,
    steps: &[i64],
) -> Result<(u64, BTreeMap<Labels, Vec<Option<f64>>>), LokiError> {
    let minutes = plan.minutes(steps);
    let tiers = crate::handlers::StatsTiers::of(st, plan.service());
    let archive = tiers.archive(st, Utc::now());
    let hashes = crate::retry_once(&st.redis, || async {
        Ok(stats::bucket_hashes(
            &st.redis.conn,
            Bucket::M1,
            &minutes,
            plan.service(),
            archive,
        )
        .await?)
    })
    .await?;
    Ok(plan.series(steps, &minutes, &hashes))
}

async fn labels(State(st): State<AppState>) -> Answer {
    let mut names: BTreeSet<String> = ["service".to_string(), "level".to_string()].into();
    names.extend(field_labels(&st));
    Ok(axum::Json(json::success(names)))
}

async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let name = if name == "detected_level" {
        "level".to_string()
    } else {
        name
    };
    if name == "service" && p.get("query").is_none() {
        let s = crate::retry_once(&st.redis, || async {
            Ok(crate::stats::services(
                &st.redis.conn,
                Utc::now(),
                st.cfg.retention,
                logjet_core::parse::DEFAULT_MAX_FUTURE,
            )
            .await?)
        })
        .await?;
        let names: BTreeSet<String> = s.services.into_iter().map(|s| s.name).collect();
        return Ok(axum::Json(json::success(names)));
    }
    let (start, end) = p.range(Utc::now())?;
    let log = optional_selector(&st, &p)?;
    let r = read(&st, &log, start, end, Want::Sample).await?;
    let values: BTreeSet<&str> = r
        .entries
        .iter()
        .filter_map(|e| e.labels.get(&name).map(String::as_str))
        .collect();
    Ok(axum::Json(json::success(values)))
}

async fn series(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let (start, end) = p.range(Utc::now())?;
    let matches = p.all("match[]");
    let matches = if matches.is_empty() {
        p.all("match")
    } else {
        matches
    };
    if matches.is_empty() {
        return Err(LokiError::bad("at least one match[] argument is required"));
    }
    let mut out: BTreeSet<Labels> = BTreeSet::new();
    for m in matches {
        let log = log_param(&st, m)?;
        let r = read(&st, &log, start, end, Want::Sample).await?;
        out.extend(r.entries.into_iter().map(|e| e.labels));
    }
    Ok(axum::Json(json::success(out)))
}

async fn index_stats(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let (start, end) = p.range(Utc::now())?;
    let log = log_param(&st, p.query()?)?;
    let r = read(&st, &log, start, end, Want::Sample).await?;
    let streams: BTreeSet<&Labels> = r.entries.iter().map(|e| &e.labels).collect();
    let bytes: usize = r.entries.iter().map(|e| e.line.len()).sum();
    // logjet has no Loki chunks: `chunks` is 0.
    Ok(axum::Json(json!({
        "streams": streams.len(),
        "chunks": 0,
        "entries": r.entries.len(),
        "bytes": bytes,
    })))
}

async fn index_volume(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let (start, end) = p.range(Utc::now())?;
    let q = p.query()?;
    let log = log_param(&st, q)?;
    let limit = p.limit()?;
    let target: Vec<String> = match p.get("targetLabels") {
        Some(t) => t.split(',').map(|s| s.trim().to_string()).collect(),
        None => log.selector.iter().map(|m| m.name.clone()).collect(),
    };
    let r = read(&st, &log, start, end, Want::Sample).await?;
    let mut volume: BTreeMap<Labels, u64> = BTreeMap::new();
    for e in &r.entries {
        let key: Labels = e
            .labels
            .iter()
            .filter(|(k, _)| target.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *volume.entry(key).or_default() += e.line.len() as u64;
    }
    let mut rows: Vec<(Labels, u64)> = volume.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(limit);
    let result: Vec<Json> = rows
        .into_iter()
        .map(|(l, v)| json!({"metric": l, "value": [json::seconds(end), v.to_string()]}))
        .collect();
    Ok(axum::Json(json::success(
        json!({"resultType": "vector", "result": result}),
    )))
}

async fn patterns(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let (start, end) = p.range(Utc::now())?;
    let log = log_param(&st, p.query()?)?;
    let rfc = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339();
    let params = crate::patterns::PatternParams {
        service: log.selected("service").map(str::to_string),
        level: log.selected("level").map(str::to_string),
        since: Some(rfc(start)),
        until: Some(rfc(end)),
        limit: Some(p.limit().unwrap_or(50).min(1000)),
    };
    let pq = crate::patterns::PatternQuery::from_params(&params, Utc::now())
        .map_err(|e| LokiError::bad(e.to_string()))?;
    let resp = crate::retry_once(&st.redis, || async {
        Ok(crate::patterns::patterns(&st.redis.conn, &pq).await?)
    })
    .await?;
    let since = chrono::DateTime::parse_from_rfc3339(&resp.since)
        .map(|t| t.timestamp())
        .unwrap_or(start / 1_000_000_000);
    let data: Vec<Json> = resp
        .patterns
        .iter()
        .map(|pat| {
            let samples: Vec<Json> = pat
                .series
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| json!([since + i as i64 * resp.step_secs, c]))
                .collect();
            json!({
                "pattern": pat.template.replace(logjet_core::pattern::WILDCARD, "<_>"),
                "samples": samples,
            })
        })
        .collect();
    Ok(axum::Json(json::success(data)))
}

/// The fields of the selected lines, as `| json` extracts them (for lines that are not JSON,
/// the event's fields), without the stream labels.
async fn sample_fields(
    st: &AppState,
    p: &Params,
) -> Result<BTreeMap<String, BTreeSet<String>>, LokiError> {
    let (start, end) = p.range(Utc::now())?;
    let q = p.query()?;
    let mut l = match logql::parse(q)? {
        Expr::Log(l) => l,
        Expr::Metric(_) => return Err(LokiError::bad("a stream selector is needed here")),
    };
    l.pipeline.push(logql::Stage::Json);
    let log = compile(st, &l)?;
    let r = read(st, &log, start, end, Want::Sample).await?;
    let mut stream: BTreeSet<String> = ["service".to_string(), "level".to_string()].into();
    stream.extend(field_labels(st));
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in r.entries {
        for (k, v) in e.labels {
            if !stream.contains(&k) {
                out.entry(k).or_default().insert(v);
            }
        }
    }
    Ok(out)
}

fn field_type(values: &BTreeSet<String>) -> &'static str {
    if values.iter().all(|v| v.parse::<i64>().is_ok()) {
        "int"
    } else if values.iter().all(|v| v.parse::<f64>().is_ok()) {
        "float"
    } else if values.iter().all(|v| v == "true" || v == "false") {
        "boolean"
    } else {
        "string"
    }
}

async fn detected_fields(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000);
    let fields = sample_fields(&st, &p).await?;
    let list: Vec<Json> = fields
        .iter()
        .take(limit)
        .map(|(k, v)| {
            json!({"label": k, "type": field_type(v), "cardinality": v.len(), "parsers": ["json"]})
        })
        .collect();
    Ok(axum::Json(json!({"fields": list, "limit": limit})))
}

async fn detected_field_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let p = Params::from_query(raw.as_deref());
    let mut fields = sample_fields(&st, &p).await?;
    let values = fields.remove(&name).unwrap_or_default();
    Ok(axum::Json(json!({"values": values})))
}

async fn buildinfo() -> axum::Json<Json> {
    // The Loki API level logjet answers as; the revision says what really answers.
    axum::Json(json!({
        "version": "3.0.0",
        "revision": concat!("logjet-", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

async fn ready(State(st): State<AppState>) -> Response {
    match st.redis.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: redis: {e}\n"),
        )
            .into_response(),
    }
}
