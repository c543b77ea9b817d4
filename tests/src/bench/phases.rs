//! The measured phases of the per-process CPU comparison: the raw JetStream ceiling, NDJSON
//! batches end to end, and one event per POST (HTTP/1.1 keep-alive or h2c). Each phase says
//! events/s and, from `/proc`, the CPU each process spent per event.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::bench::cpu::Usage;
use crate::bench::lines::LineKind;
use crate::bench::stack::{Stack, total, wait_counted};
use crate::servers::NatsServer;

/// What one phase measured.
pub struct Phase {
    pub events: u64,
    /// Sent → counted in Redis, events/s.
    pub e2e: f64,
    /// Sent → answered by ingest, events/s.
    pub accepted: f64,
    /// Latencies of the requests (ms, sorted); one event per POST only.
    pub latencies: Vec<f64>,
    pub usage: Usage,
}

/// `async-nats` publishing 1,000-line messages of `kind` lines to a file-backed stream with 256
/// acks in flight: the broker's ceiling for the pipeline's traffic.
pub async fn raw_ceiling(nats: &NatsServer, messages: u64, kind: LineKind) -> f64 {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = jetstream::new(client);
    let _ = js.delete_stream("BENCHRAW").await;
    js.create_stream(stream::Config {
        name: "BENCHRAW".into(),
        subjects: vec!["benchraw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("bench stream");
    let payload = kind.body(0, "raw");
    let start = Instant::now();
    let mut inflight: FuturesUnordered<
        <jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture,
    > = FuturesUnordered::new();
    for _ in 0..messages {
        if inflight.len() >= 256 {
            inflight.next().await.expect("ack").expect("ack ok");
        }
        let ack = js
            .publish("benchraw.x", payload.clone())
            .await
            .expect("publish");
        inflight.push(ack.into_future());
    }
    while let Some(a) = inflight.next().await {
        a.expect("ack ok");
    }
    let rate = (messages * 1000) as f64 / start.elapsed().as_secs_f64();
    let _ = js.delete_stream("BENCHRAW").await;
    rate
}

/// `events` in NDJSON batches of 1,000 over `conns` connections, until counted.
pub async fn ndjson(
    http: &reqwest::Client,
    stack: &Stack,
    kind: LineKind,
    events: u64,
    conns: usize,
) -> Phase {
    let batches = (events / 1000).max(1);
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..64u64)
            .map(|b| kind.body(b * 1000, &format!("svc-{}", b % 4)))
            .collect(),
    );
    let base = total(http, stack.query()).await;
    let sample = stack.watched().start();
    let start = Instant::now();
    post_batches(
        http,
        &format!("{}/logs", stack.ingest()),
        bodies,
        batches,
        conns,
    )
    .await;
    let sent = start.elapsed().as_secs_f64();
    let n = batches * 1000;
    let done = wait_counted(http, stack.query(), base + n).await;
    let usage = sample.finish();
    Phase {
        events: n,
        e2e: n as f64 / (done - start).as_secs_f64(),
        accepted: n as f64 / sent,
        latencies: Vec::new(),
        usage,
    }
}

/// Posts NDJSON bodies `0..batches` (body `b` is `bodies[b % bodies.len()]`) to `url` over
/// `conns` concurrent connections, each expecting 202; returns when every one was answered.
pub async fn post_batches(
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<bytes::Bytes>>,
    batches: u64,
    conns: usize,
) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, bodies, next) =
            (http.clone(), url.to_string(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(bodies[(b % bodies.len() as u64) as usize].clone())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
}

/// `events` one per POST over `conns` concurrent requests with `client` (HTTP/1.1 keep-alive or
/// h2c prior knowledge), until counted.
pub async fn single(
    client: &reqwest::Client,
    http: &reqwest::Client,
    stack: &Stack,
    kind: LineKind,
    events: u64,
    conns: usize,
) -> Result<Phase, String> {
    let lines: Arc<Vec<String>> = Arc::new((0..4096).map(|i| kind.line(i, "single")).collect());
    let base = total(http, stack.query()).await;
    let sample = stack.watched().start();
    let start = Instant::now();
    let url = format!("{}/logs", stack.ingest());
    let mut lat = post_singles(client, &url, events, conns, move |i| {
        lines[(i % 4096) as usize].clone()
    })
    .await?;
    let sent = start.elapsed().as_secs_f64();
    let done = wait_counted(http, stack.query(), base + events).await;
    let usage = sample.finish();
    lat.sort_by(f64::total_cmp);
    Ok(Phase {
        events,
        e2e: events as f64 / (done - start).as_secs_f64(),
        accepted: events as f64 / sent,
        latencies: lat,
        usage,
    })
}

/// Posts events `0..events`, one JSON line (`line(i)`) per POST, to `url` over `conns`
/// concurrent requests, each expecting 202; returns every request's latency (ms, unsorted), or
/// the first failure (a request error or another status) once every sender has stopped.
pub async fn post_singles(
    client: &reqwest::Client,
    url: &str,
    events: u64,
    conns: usize,
    line: impl Fn(u64) -> String + Clone + Send + 'static,
) -> Result<Vec<f64>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, next, line) =
            (client.clone(), url.to_string(), next.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return Ok(lat);
                }
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(line(i))
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e:?}"))?;
                if r.status() != 202 {
                    return Err(format!("POST {url}: {}", r.status()));
                }
                // Read to the end: an HTTP/2 response dropped unread is a stream the client
                // resets itself, and after 1,024 of those h2 closes the connection with GOAWAY
                // `too_many_internal_resets` (the client's own limit, hyperium/h2#856).
                r.bytes()
                    .await
                    .map_err(|e| format!("POST {url}: reading the answer: {e:?}"))?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::new();
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(format!("sender: {e}"))),
        }
    }
    failure.map_or(Ok(lat), Err)
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
