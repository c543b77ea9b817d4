//! The processor's batch path alone, on one thread, for a profiler.
//!
//! Builds `--messages` canonical NDJSON messages of 1,000 realistic lines each (as ingest would
//! publish them), then, in [`apply_all`], runs what the processor does with them in batches of
//! `--batch` messages: decode every message, plan the batch, and apply it to a real
//! redis-server (started on a free port unless `--redis-url` names one) through the processor's
//! own `Aggregator`. The lines are the benchmark's (`tests/src/bench/lines.rs`, included here by
//! path so both measure the same lines without this crate depending on the tests). The set-up is outside [`apply_all`], so a profiler can count that function
//! only; the instruction count of one run is repeatable under load, unlike a wall-clock time:
//!
//! ```text
//! cargo build --release -p logjet-processor --example profile_batch
//! valgrind --tool=callgrind --toggle-collect='*apply_all*' \
//!     target/release/examples/profile_batch --messages 64
//! ```
//!
//! Without a profiler it prints the wall time per event of [`apply_all`], for a rough look.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::Parser;
use logjet_core::parse::{BodyFormat, ParseOptions, parse_body};
use logjet_core::subject::headers;
use logjet_processor::aggregate::{Aggregator, Applied, MessageEvents, PlanSettings, plan_batch};
use logjet_processor::decode::{self, MessageMeta};

#[path = "../../tests/src/bench/lines.rs"]
#[allow(dead_code)]
#[allow(unreachable_pub)] // its items are `pub` for the tests crate
mod lines;
use lines::LineKind;

#[derive(Parser, Debug)]
#[command(about = "The processor's decode/plan/apply path on one thread, for a profiler")]
struct Args {
    /// Messages of 1,000 lines.
    #[arg(long, default_value_t = 64)]
    messages: u64,
    /// Messages per batch (a fetch of 2 MiB holds about 7 of these ~300 KB messages).
    #[arg(long, default_value_t = 7)]
    batch: usize,
    /// The padded lines instead of the realistic ones.
    #[arg(long)]
    padded: bool,
    /// A Redis to apply to (else a `redis-server` from PATH is started on a free port).
    #[arg(long)]
    redis_url: Option<String>,
}

struct Message {
    seq: u64,
    subject: String,
    headers: async_nats::HeaderMap,
    published: DateTime<Utc>,
    payload: Bytes,
}

/// Canonical NDJSON of a 1,000-line body, as ingest publishes it (one service per body here).
fn canonical(body: &[u8], received: DateTime<Utc>) -> Bytes {
    let parsed = parse_body(body, BodyFormat::Ndjson, &ParseOptions::new(received));
    assert!(parsed.rejects.is_empty(), "bench lines parse");
    let mut out = Vec::with_capacity(body.len() + parsed.events.len() * 40);
    for ev in &parsed.events {
        serde_json::to_writer(&mut out, ev).expect("an event serialises");
        out.push(b'\n');
    }
    out.into()
}

fn messages(args: &Args, base: DateTime<Utc>) -> Vec<Message> {
    let kind = if args.padded {
        LineKind::Padded
    } else {
        LineKind::Realistic
    };
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::FORMAT, headers::FORMAT_CANONICAL);
    (0..args.messages)
        .map(|m| {
            // Four services, messages 5 ms apart.
            let service = format!("svc-{}", m % 4);
            let published = base + Duration::from_millis(5 * m);
            Message {
                seq: m + 1,
                subject: format!("logs.{service}"),
                headers: h.clone(),
                published,
                payload: canonical(&kind.body(m * 1000, &service), published),
            }
        })
        .collect()
}

/// What the processor does with the messages, batch by batch (`Worker::process` without the
/// NATS side: acks, dead letters, metrics). Not `async`: the body of an `async fn` is inlined
/// into its caller's future, and a profiler could no longer count this function alone.
#[inline(never)]
fn apply_all(
    rt: &tokio::runtime::Runtime,
    msgs: &[Message],
    batch: usize,
    aggregator: &Aggregator,
    settings: &PlanSettings,
    now: DateTime<Utc>,
) -> Applied {
    let mut total = Applied::default();
    for group in msgs.chunks(batch) {
        let decoded: Vec<_> = group
            .iter()
            .map(|m| {
                let meta = MessageMeta {
                    subject: &m.subject,
                    headers: Some(&m.headers),
                    published: m.published,
                    max_age: settings.retention,
                };
                (m.seq, decode::decode(&m.payload, &meta))
            })
            .collect();
        let inputs: Vec<MessageEvents<'_>> = decoded
            .iter()
            .map(|(seq, d)| MessageEvents {
                seq: *seq,
                events: &d.events,
            })
            .collect();
        let planned = plan_batch(&inputs, settings, now);
        let applied = rt
            .block_on(aggregator.apply_batch(&planned))
            .expect("redis applies the batch");
        total.fresh_messages += applied.fresh_messages;
        total.fresh_events += applied.fresh_events;
        total.already_applied += applied.already_applied;
    }
    total
}

/// A throw-away redis-server on a free loopback port, killed on drop.
struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    fn start() -> anyhow::Result<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?;
        Ok(RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = match &args.redis_url {
        Some(_) => None,
        None => Some(RedisServer::start()?),
    };
    let url = match (&args.redis_url, &server) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.url.clone(),
        (None, None) => unreachable!("a server is started when no url is given"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let aggregator = rt.block_on(async {
        let conn = logjet_core::store::connect_lazy(&url, Duration::from_secs(30))?;
        let aggregator = Aggregator::new(conn);
        // The server may still be starting.
        let mut tries = 0;
        while let Err(e) = aggregator.ping().await {
            tries += 1;
            anyhow::ensure!(tries < 100, "redis at {url}: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<Aggregator, anyhow::Error>(aggregator)
    })?;
    let base = Utc::now();
    let msgs = messages(&args, base);
    let settings = PlanSettings {
        // A stream id of its own, so a reused Redis sees fresh messages.
        stream_id: format!("PROFILE-{}", base.timestamp_nanos_opt().unwrap_or_default()),
        retention: Duration::from_secs(24 * 3600),
        recent_retention: Duration::from_secs(3600),
    };
    let now = base + Duration::from_secs(1);
    let start = Instant::now();
    let applied = apply_all(&rt, &msgs, args.batch, &aggregator, &settings, now);
    let took = start.elapsed();
    let events = args.messages * 1000;
    anyhow::ensure!(
        applied.fresh_events == events,
        "applied {applied:?}, expected {events} fresh events"
    );
    println!(
        "{} events in batches of {} messages: {:.2} µs/event wall",
        events,
        args.batch,
        took.as_secs_f64() * 1e6 / events as f64
    );
    Ok(())
}
