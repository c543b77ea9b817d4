//! The archive tier's rows of `logjet-bench` (issue 14, docs/archive.md): archiver throughput
//! and CPU per event, compression against the NDJSON sent, and needle-search latency over the
//! archive.
//!
//! A pipeline of its own: nats-server, redis-server, ingest, then `events` unique realistic
//! lines (batches of 1,000, four services) into the stream with no archiver running; then one
//! archiver works the backlog off alone (its time and CPU are the archiver's only), and query
//! searches the archive for request ids that occur once (Redis is empty and every message is
//! archived, so only the archive answers).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench::cpu::cpu_secs;
use crate::bench::lines;
use crate::bench::phases::pct;
use crate::bench::stack::{spawn_service, wait_ready};
use crate::servers::{NatsServer, RedisServer};

/// The archive phase's settings.
pub struct Plan {
    pub events: u64,
    pub conns: usize,
    pub needles: usize,
}

/// One row of the bench's table: measure, value, target.
pub type Row = (String, String, String);

fn service(batch: u64) -> String {
    format!("svc-{}", batch % 4)
}

/// The unique request id of event `i` (as [`lines::realistic`] writes it).
fn request_id(i: u64) -> String {
    let v: Value = serde_json::from_str(&lines::realistic(i, &service(i / 1000))).expect("line");
    v["request_id"].as_str().expect("request_id").to_string()
}

/// A counter or gauge of a Prometheus text page, summed over its series.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Bytes and number of the files under `dir` (those ending in `.ext` when given).
pub(super) fn files_under(dir: &Path, ext: Option<&str>) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)) {
                bytes += e.metadata().map_or(0, |m| m.len());
                files += 1;
            }
        }
    }
    (bytes, files)
}

/// Sends `events` unique lines through ingest; returns the NDJSON bytes sent.
async fn load(http: &reqwest::Client, ingest: &str, events: u64, conns: usize) -> u64 {
    let batches = events.div_ceil(1000);
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, next, sent) = (
            http.clone(),
            format!("{ingest}/logs"),
            next.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let svc = service(b);
                let body: String = (b * 1000..((b + 1) * 1000).min(events))
                    .map(|i| lines::realistic(i, &svc) + "\n")
                    .collect();
                sent.fetch_add(body.len() as u64, Ordering::Relaxed);
                super::stack::post_ndjson_accepted(&http, &url, body).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    sent.load(Ordering::Relaxed)
}

pub(super) async fn get_text(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub(super) async fn search(http: &reqwest::Client, query: &str, token: &str) -> (f64, Value) {
    let start = Instant::now();
    let r: Value = http
        .post(format!("{query}/logs/query"))
        // As a search of last week is sent: without `since` only Redis's recent window is read.
        .json(&json!({"contains": token, "limit": 10, "since": "7d"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json");
    (start.elapsed().as_secs_f64() * 1000.0, r)
}

pub async fn run(http: &reqwest::Client, bin_dir: &Path, plan: &Plan) -> Vec<Row> {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().expect("archive dir");
    let spool = tempfile::tempdir().expect("spool dir");
    let archive_url = format!("file://{}", dir.path().display());
    let ingest = spawn_service(
        bin_dir,
        "ingest",
        "logjet-ingest",
        &[("LOGJET_NATS_URL", nats.url())],
    )
    .await;
    wait_ready(http, &ingest.url).await;
    eprintln!(
        "bench: archive — {} unique events into the stream (no archiver yet)",
        plan.events
    );
    let raw = load(http, &ingest.url, plan.events, plan.conns).await;

    eprintln!("bench: archive — one archiver works the backlog off");
    let archiver = spawn_service(
        bin_dir,
        "archiver",
        "logjet-archiver",
        &[
            ("LOGJET_NATS_URL", nats.url()),
            ("LOGJET_ARCHIVE_URL", archive_url.clone()),
            ("LOGJET_SPOOL_DIR", spool.path().display().to_string()),
            // The last open segments are cut by age once the backlog is worked off.
            ("LOGJET_SEGMENT_MAX_AGE", "2s".into()),
        ],
    )
    .await;
    let pid = archiver.pid().expect("archiver pid");
    let start = Instant::now();
    let cpu0 = cpu_secs(pid).unwrap_or(0.0);
    let metrics_url = format!("{}/metrics", archiver.url);
    let text = loop {
        let text = get_text(http, &metrics_url).await;
        let n = metric(&text, "logjet_archiver_events_archived_total") as u64;
        assert!(n <= plan.events, "archived {n} > {} sent", plan.events);
        if n == plan.events {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "only {n} of {} archived",
            plan.events
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid).unwrap_or(cpu0) - cpu0;
    let segments = metric(&text, "logjet_archiver_segments_written_total");
    let canonical_ratio = metric(&text, "logjet_archiver_compression_ratio");
    let (parquet, files) = files_under(&dir.path().join("segments"), Some("parquet"));

    eprintln!("bench: archive — needle searches");
    let query = spawn_service(
        bin_dir,
        "query",
        "logjet-query",
        &[
            ("LOGJET_NATS_URL", nats.url()),
            ("LOGJET_REDIS_URL", redis.url()),
            ("LOGJET_ARCHIVE_URL", archive_url),
        ],
    )
    .await;
    wait_ready(http, &query.url).await;
    // The catalog loads in the background: the first needle is found once it is.
    let first = request_id(plan.events / 2);
    let loaded = Instant::now();
    loop {
        let (_, r) = search(http, &query.url, &first).await;
        if r["events"].as_array().is_some_and(|e| e.len() == 1) {
            break;
        }
        assert!(
            loaded.elapsed() < Duration::from_secs(60),
            "needle never found: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lat = Vec::new();
    let mut decoded = Vec::new();
    for k in 0..plan.needles as u64 {
        // Spread over the whole archive, each a different id.
        let i = (k * 7_919_993 + 12_345) % plan.events;
        let (ms, r) = search(http, &query.url, &request_id(i)).await;
        let found = r["events"].as_array().map_or(0, Vec::len);
        assert_eq!(found, 1, "needle {i}: {r}");
        assert_eq!(r["source"], "archive", "needle {i}: {r}");
        lat.push(ms);
        decoded.push(r["scanned"].as_u64().unwrap_or(0) as f64);
    }
    lat.sort_by(f64::total_cmp);
    decoded.sort_by(f64::total_cmp);
    let m = plan.events as f64 / 1e6;
    let rows = vec![
        (
            format!("archiver throughput, backlog of {m}M events (ev/s)"),
            format!("{:.0}", plan.events as f64 / secs),
            String::new(),
        ),
        (
            "archiver CPU per event (µs)".into(),
            format!("{:.2}", cpu * 1e6 / plan.events as f64),
            String::new(),
        ),
        (
            "archive segments written / Parquet files".into(),
            format!("{segments:.0} / {files}"),
            String::new(),
        ),
        (
            "compression: NDJSON sent / Parquet bytes".into(),
            format!("{:.1}×", raw as f64 / parquet.max(1) as f64),
            ">= 12×".into(),
        ),
        (
            "  archiver's ratio (canonical NDJSON / Parquet)".into(),
            format!("{canonical_ratio:.1}×"),
            String::new(),
        ),
        (
            format!("needle search in the archive, {m}M events, p50 (ms)"),
            format!("{:.1}", pct(&lat, 0.5)),
            String::new(),
        ),
        (
            format!("needle search in the archive, {m}M events, p99 (ms)"),
            format!("{:.1}", pct(&lat, 0.99)),
            "<= 1000".into(),
        ),
        (
            "  events decoded per needle search, p50 / max".into(),
            format!(
                "{:.0} / {:.0}",
                pct(&decoded, 0.5),
                decoded.last().unwrap_or(&0.0)
            ),
            String::new(),
        ),
    ];
    drop((query, archiver, ingest, redis, nats));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_series_by_exact_name() {
        let text = "# HELP x\nlogjet_a_total{r=\"x\"} 2\nlogjet_a_total{r=\"y\"} 3\nlogjet_a_total_more 9\nlogjet_a_total 1\n";
        assert_eq!(metric(text, "logjet_a_total"), 6.0);
    }

    #[test]
    fn request_ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..5000).map(request_id).collect();
        assert_eq!(ids.len(), 5000);
    }
}
