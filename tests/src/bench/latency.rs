//! The latencies `logjet-bench` reports: a query's, and sent → queryable under a steady load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench::lines;

/// Latencies (ms, sorted) of `n` sequential requests.
pub async fn latencies(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
    n: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = http.request(method.clone(), url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let t = Instant::now();
        let r = req.send().await.expect("query");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let _ = r.bytes().await;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// What the sent→queryable run measured, per marker, sorted.
pub struct QueryableLatency {
    /// POST → found by a query, ms.
    pub total: Vec<f64>,
    /// POST → 202, ms: the ingest and JetStream share of `total`.
    pub post: Vec<f64>,
    /// The slowest marker's (POST, total), ms, so a stall can be placed.
    pub slowest: (f64, f64),
}

/// Steady load before the first marker (see [`latency_run`]).
const WARM_UP: Duration = Duration::from_secs(3);

/// Background load at `rate` events/s; markers every 100 ms, each polled until queryable.
pub async fn latency_run(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    rate: u64,
    secs: u64,
) -> (QueryableLatency, u64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (http, url, stop, sent) = (
            http.clone(),
            format!("{ingest}/logs"),
            stop.clone(),
            sent.clone(),
        );
        tokio::spawn(async move {
            // 100 batches per second of rate/100 events.
            let per = (rate / 100).max(1);
            let body: bytes::Bytes = (0..per)
                .map(|i| lines::realistic(i, "steady") + "\n")
                .collect::<String>()
                .into();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (http, url, body, sent) =
                    (http.clone(), url.clone(), body.clone(), sent.clone());
                tokio::spawn(async move {
                    let r = http
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await;
                    if matches!(r, Ok(ref r) if r.status() == 202) {
                        sent.fetch_add(per, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    // Warm up before the first marker: a marker's query asks for the last 2 s, and until Redis
    // holds that much (a fresh stack, the first seconds), the part below Redis's oldest event is
    // read from the stream as well — ~100 ms per query on this machine, which made the first
    // markers the whole p99 of a run (2026-11-30: every marker over 60 ms at 5 ms of linger was
    // one of the first 2 s). A running deployment's Redis holds the last hour.
    tokio::time::sleep(WARM_UP).await;
    let mut samples = Vec::new();
    let mut posts = Vec::new();
    let mut slowest = (0.0, 0.0);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let token = format!("marker-{}-{n}", std::process::id());
        let since = chrono::Utc::now() - chrono::Duration::seconds(2);
        let t = Instant::now();
        let r = http
            .post(format!("{ingest}/logs"))
            .header("content-type", "application/json")
            .body(json!({"service": "steady", "message": token}).to_string())
            .send()
            .await
            .expect("marker");
        assert_eq!(r.status(), 202);
        let post_ms = t.elapsed().as_secs_f64() * 1000.0;
        posts.push(post_ms);
        loop {
            let q: Value = http
                .post(format!("{query}/logs/query"))
                .json(&json!({"service": "steady", "contains": token, "since": since.to_rfc3339(), "limit": 1}))
                .send()
                .await
                .expect("query")
                .json()
                .await
                .expect("query json");
            if q["events"].as_array().is_some_and(|e| !e.is_empty()) {
                let total = t.elapsed().as_secs_f64() * 1000.0;
                if total > slowest.1 {
                    slowest = (post_ms, total);
                }
                samples.push(total);
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "marker never became queryable"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    samples.sort_by(f64::total_cmp);
    posts.sort_by(f64::total_cmp);
    let latency = QueryableLatency {
        total: samples,
        post: posts,
        slowest,
    };
    (latency, sent.load(Ordering::Relaxed) + n)
}
