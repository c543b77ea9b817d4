//! The processor's batch linger against latency and cost (issue 17): for each linger value, a
//! pipeline of its own (nats-server, redis-server, ingest, query, one processor with
//! `LOGJET_BATCH_LINGER` set), sent → queryable under a steady 10,000 events/s, then a burst of
//! NDJSON for the end-to-end rate and the processor's CPU per event, and the Redis chunks the
//! events were written as (fewer, larger chunks keep searches cheap).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::bench::cpu::cpu_secs;
use crate::bench::latency::latency_run;
use crate::bench::lines;
use crate::bench::phases::{pct, post_batches};
use crate::bench::stack::{start_services, total, wait_counted};
use crate::servers::{NatsServer, RedisServer};

/// The sweep's settings.
pub struct LingerPlan {
    /// Linger values, ms.
    pub lingers_ms: Vec<u64>,
    /// Steady rate of the latency part, events/s.
    pub rate: u64,
    pub secs: u64,
    /// Events of the burst part (batches of 1,000).
    pub burst_events: u64,
    pub conns: usize,
}

/// One row of the bench's table: measure, value, target.
pub type Row = (String, String, String);

/// Event chunks written so far: the processor's chunk id counter.
async fn chunks_written(redis_url: &str) -> u64 {
    let Ok(client) = redis::Client::open(redis_url) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    redis::cmd("GET")
        .arg(logjet_core::keys::chunk_seq_key())
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

pub async fn run(http: &reqwest::Client, bin_dir: &Path, plan: &LingerPlan) -> Vec<Row> {
    let mut rows = Vec::new();
    for &linger in &plan.lingers_ms {
        eprintln!(
            "bench: linger {linger} ms — sent→queryable at {}/s, then a burst",
            plan.rate
        );
        let nats = NatsServer::start().await;
        let redis = RedisServer::start().await;
        let redis_url = redis.url();
        let linger_env = [("LOGJET_BATCH_LINGER", format!("{linger}ms"))];
        let services = start_services(http, bin_dir, &nats, &redis, 1, &linger_env).await;
        let (ingest, query, processor) = (&services[0], &services[1], &services[2]);
        let (lat, sent) = latency_run(http, &ingest.url, &query.url, plan.rate, plan.secs).await;
        wait_counted(http, &query.url, sent).await;
        let chunks_steady = chunks_written(&redis_url).await;

        let pid = processor.pid().expect("processor pid");
        let cpu0 = cpu_secs(pid).unwrap_or(0.0);
        let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
            (0..16u64)
                .map(|b| lines::LineKind::Realistic.body(b * 1000, &format!("svc-{}", b % 4)))
                .collect(),
        );
        let start = Instant::now();
        let counted = total(http, &query.url).await;
        post_batches(
            http,
            &format!("{}/logs", ingest.url),
            bodies,
            plan.burst_events / 1000,
            plan.conns,
        )
        .await;
        let done = wait_counted(http, &query.url, counted + plan.burst_events / 1000 * 1000).await;
        let e2e = plan.burst_events as f64 / (done - start).as_secs_f64();
        let cpu = cpu_secs(pid).unwrap_or(cpu0) - cpu0;
        let chunks = chunks_written(&redis_url).await;
        rows.push((
            format!(
                "linger {linger} ms: sent→queryable at {}/s, p50 / p99 (ms)",
                plan.rate
            ),
            format!("{:.1} / {:.1}", pct(&lat.total, 0.5), pct(&lat.total, 0.99)),
            "p99 <= 60 at 10k/s".into(),
        ));
        rows.push((
            "  chunks per 1,000 events: steady / burst".into(),
            format!(
                "{:.1} / {:.1}",
                chunks_steady as f64 * 1000.0 / sent.max(1) as f64,
                chunks.saturating_sub(chunks_steady) as f64 * 1000.0
                    / plan.burst_events.max(1) as f64
            ),
            String::new(),
        ));
        rows.push((
            "  burst: e2e ev/s; processor CPU µs/event".into(),
            format!(
                "{e2e:.0}; {:.2}",
                cpu * 1e6 / plan.burst_events.max(1) as f64
            ),
            String::new(),
        ));
        drop((services, redis, nats));
    }
    rows
}
