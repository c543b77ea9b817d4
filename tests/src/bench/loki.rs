//! Loki `query_range` latencies (issue 16's Benchmarks) on a pipeline of its own: `events`
//! realistic lines of service `x`, timestamps spread evenly over the 24 h range's last 23 h, then
//! - Grafana's log-volume shape, `sum by (level) (count_over_time({service="x"}[1m]))` over
//!   24 h at a 60 s step (1,441 points), goal p99 ≤ 50 ms;
//! - a line-filter log query, `{service="x"} |= "insufficient funds"` over the last hour as
//!   Explore sends it (backward, 1,000 lines), goal p99 ≤ 300 ms.
//!
//! A query that fails (e.g. over the scan budget) is reported with its error, not hidden.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::bench::lines;
use crate::bench::phases::pct;
use crate::bench::stack::{Stack, wait_counted};

const SEC: i64 = 1_000_000_000;

/// One measured query.
pub struct Measured {
    pub name: &'static str,
    pub goal_p99_ms: f64,
    /// Latencies of the successful answers, ms, sorted.
    pub latencies: Vec<f64>,
    /// The first failure's status and message, if any request failed.
    pub failure: Option<String>,
    /// Lines or series the last answer had (a sanity check that the query found something).
    pub results: usize,
}

/// `(measure, value, target)` rows for the bench's table.
pub fn rows(events: u64, load_secs: f64, measured: &[Measured]) -> Vec<(String, String, String)> {
    let mut out = vec![(
        "Loki bench: events over 24 h, service x (loaded in s)".to_string(),
        format!("{events} ({load_secs:.0})"),
        ">= 1000000".to_string(),
    )];
    for m in measured {
        match &m.failure {
            Some(f) => out.push((format!("{} FAILED", m.name), f.clone(), String::new())),
            None => {
                out.push((
                    format!("{} p50 (ms)", m.name),
                    format!("{:.1}", pct(&m.latencies, 0.5)),
                    String::new(),
                ));
                out.push((
                    format!("{} p99 (ms)", m.name),
                    format!("{:.1}", pct(&m.latencies, 0.99)),
                    format!("<= {}", m.goal_p99_ms),
                ));
            }
        }
    }
    out
}

/// A realistic line of service `x` with its timestamp.
fn line_at(i: u64, ts_ns: i64) -> String {
    let ts = chrono::DateTime::from_timestamp_nanos(ts_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    lines::realistic(i, "x").replacen('{', &format!("{{\"ts\":\"{ts}\","), 1)
}

/// Sends `events` lines spread over `[from_ns, to_ns)` in NDJSON batches of 1,000 over 8
/// connections; returns once all are counted.
async fn load(http: &reqwest::Client, stack: &Stack, events: u64, from_ns: i64, to_ns: i64) {
    let gap = (to_ns - from_ns) / events.max(1) as i64;
    let batches = events.div_ceil(1000);
    let url = format!("{}/logs", stack.ingest());
    futures::stream::iter(0..batches)
        .map(|b| {
            let body: String = (b * 1000..((b + 1) * 1000).min(events))
                .map(|i| line_at(i, from_ns + i as i64 * gap) + "\n")
                .collect();
            let (http, url) = (http.clone(), url.clone());
            async move {
                super::stack::post_ndjson_accepted(&http, &url, body).await;
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    wait_counted(http, stack.query(), events).await;
}

async fn measure(
    http: &reqwest::Client,
    query: &str,
    name: &'static str,
    goal_p99_ms: f64,
    params: &[(&str, String)],
    samples: usize,
) -> Measured {
    let mut m = Measured {
        name,
        goal_p99_ms,
        latencies: Vec::with_capacity(samples),
        failure: None,
        results: 0,
    };
    for _ in 0..samples {
        let t = Instant::now();
        let url = reqwest::Url::parse_with_params(
            &format!("{query}/loki/api/v1/query_range"),
            params.iter().map(|(k, v)| (*k, v.as_str())),
        )
        .expect("url");
        let r = http
            .get(url)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("query_range");
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            m.failure = Some(format!(
                "{status} after {ms:.0} ms: {}",
                body["message"].as_str().unwrap_or("")
            ));
            break;
        }
        m.results = body["data"]["result"].as_array().map_or(0, Vec::len);
        m.latencies.push(ms);
    }
    m.latencies.sort_by(f64::total_cmp);
    m
}

/// Loads the events on a pipeline of its own and measures both queries `samples` times each.
pub async fn run(
    http: &reqwest::Client,
    bin_dir: &Path,
    processors: usize,
    events: u64,
    samples: usize,
) -> Vec<(String, String, String)> {
    let stack = Stack::start(http, bin_dir, processors).await;
    let now = chrono::Utc::now().timestamp_nanos_opt().expect("now");
    // Whole minutes, so the 24 h range and its steps are the same for every sample.
    let end = (now - 60 * SEC) / (60 * SEC) * (60 * SEC);
    let start = end - 24 * 3600 * SEC;
    let t = Instant::now();
    // Over the range's last 23 h: ingest refuses events older than its 24 h retention, and the
    // load takes minutes, so the range's first hour would age out while it runs.
    load(http, &stack, events, start + 3600 * SEC, end).await;
    let load_secs = t.elapsed().as_secs_f64();
    let query = stack.query().to_string();
    let metric = measure(
        http,
        &query,
        "Loki sum by (level) (count_over_time [1m]) 24 h, step 60 s",
        50.0,
        &[
            (
                "query",
                r#"sum by (level) (count_over_time({service="x"}[1m]))"#.into(),
            ),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "60000ms".into()),
        ],
        samples,
    )
    .await;
    let filter = measure(
        http,
        &query,
        "Loki {service=\"x\"} |= \"insufficient funds\" 1 h, 1,000 lines",
        300.0,
        &[
            ("query", r#"{service="x"} |= "insufficient funds""#.into()),
            ("start", (end - 3600 * SEC).to_string()),
            ("end", end.to_string()),
            ("limit", "1000".into()),
            ("direction", "backward".into()),
        ],
        samples,
    )
    .await;
    for m in [&metric, &filter] {
        eprintln!(
            "bench: {}: {} samples, {} results in the last answer",
            m.name,
            m.latencies.len(),
            m.results
        );
    }
    rows(events, load_secs, &[metric, filter])
}
