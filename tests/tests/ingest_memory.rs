//! Ingest's memory budget under a burst of large bodies (issue 15, point 2): many concurrent
//! gzip bodies of about 1 MiB against a budget of 4 MiB that holds only a few → some are answered 503
//! with `Retry-After` and a JSON error, the bytes reserved never exceed the budget, and every
//! event of every 202 is counted exactly once by the processors. Real nats-server and
//! redis-server; ingest, processor and query in this process.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use logjet_tests::platform::{Platform, metric};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const BUDGET: u64 = 4 * MIB;
const CLIENTS: usize = 24;
const BODIES_PER_CLIENT: usize = 3;
/// Events per body; with ~2 KiB messages a body is about 1 MiB once decompressed (small, so
/// that the debug-build processor counts them quickly; the container test sends 16 MiB ones).
const EVENTS_PER_BODY: usize = 500;

/// A gzip NDJSON body of [`EVENTS_PER_BODY`] events, different for each (client, body).
fn body(client: usize, n: usize) -> Vec<u8> {
    let mut nd = String::new();
    for i in 0..EVENTS_PER_BODY {
        // Varied text (not one repeated byte) so gzip compresses it like real logs, not 1000:1.
        let words: String = (0..200)
            .map(|w| {
                format!(
                    "w{:x} ",
                    (client * 7919 + n * 104_729 + i * 31 + w * 17) % 4099
                )
            })
            .collect();
        nd.push_str(
            &json!({"service": "memtest", "level": "info", "message": words, "seq": i}).to_string(),
        );
        nd.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(nd.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[derive(Default)]
struct Outcomes {
    accepted_events: AtomicU64,
    accepted_requests: AtomicU64,
    over_budget: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_large_bodies_is_held_to_the_budget_and_every_accepted_event_counted() {
    let p = Platform::start_configured(1, false, |c| {
        c.memory.ingest_memory_budget = format!("{}", BUDGET);
        c.max_body_bytes = 2 * MIB as usize;
        c.max_concurrent_requests = 1024;
    })
    .await;
    let http = reqwest::Client::new();
    let ingest = p.ingest_url();
    assert_eq!(
        metric(&http, &ingest, "logjet_ingest_memory_budget_bytes").await,
        BUDGET
    );
    let sample = body(0, 0);
    assert!(sample.len() < MIB as usize, "{} bytes", sample.len());

    // Sample the bytes in flight while the burst runs.
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (running, peak, http, ingest) =
            (running.clone(), peak.clone(), http.clone(), ingest.clone());
        tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                let n = metric(&http, &ingest, "logjet_ingest_memory_in_flight_bytes").await;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let out = Arc::new(Outcomes::default());
    let bodies: Vec<Vec<Vec<u8>>> = (0..CLIENTS)
        .map(|c| (0..BODIES_PER_CLIENT).map(|n| body(c, n)).collect())
        .collect();
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for client_bodies in bodies {
        let (http, url, out, start) = (
            http.clone(),
            format!("{ingest}/logs"),
            out.clone(),
            start.clone(),
        );
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for b in client_bodies {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .header("content-encoding", "gzip")
                    .body(b)
                    .send()
                    .await
                    .expect("ingest answers (no reset connection)");
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").cloned();
                let body: Value = r.json().await.expect("a JSON body");
                match status {
                    202 => {
                        let n = body["accepted"].as_u64().unwrap();
                        assert_eq!(n, EVENTS_PER_BODY as u64, "{body}");
                        out.accepted_events.fetch_add(n, Ordering::SeqCst);
                        out.accepted_requests.fetch_add(1, Ordering::SeqCst);
                    }
                    503 => {
                        assert_eq!(retry_after.expect("Retry-After on a 503"), "2");
                        let error = body["error"].as_str().unwrap_or_default();
                        assert!(error.contains("memory budget is full"), "{body}");
                        out.over_budget.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    running.store(false, Ordering::SeqCst);
    sampler.await.unwrap();

    let accepted = out.accepted_events.load(Ordering::SeqCst);
    let requests = out.accepted_requests.load(Ordering::SeqCst);
    let refused = out.over_budget.load(Ordering::SeqCst);
    eprintln!(
        "{requests} bodies accepted ({accepted} events), {refused} answered 503, peak reserved {} of {BUDGET} bytes",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(requests + refused, (CLIENTS * BODIES_PER_CLIENT) as u64);
    assert!(refused > 0, "the burst never met the budget");
    assert!(requests > 0, "nothing was accepted");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0 && peak <= BUDGET, "peak {peak} of {BUDGET}");
    let rejected = metric(&http, &ingest, "logjet_ingest_memory_rejected_total").await;
    assert_eq!(rejected, refused);
    assert_eq!(
        metric(&http, &ingest, "logjet_ingest_memory_in_flight_bytes").await,
        0
    );

    // Every accepted event counted, exactly.
    let summary = p.wait_for_total(accepted, Duration::from_secs(300)).await;
    assert_eq!(summary["by_service"]["memtest"].as_u64(), Some(accepted));
}
