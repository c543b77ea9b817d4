//! logjet-bench: measures the pipeline end to end on this machine and prints a table.
//!
//! It starts its own nats-server and redis-server on free ports, runs the release binaries of
//! the services as separate processes (so each one's RSS is its own), and drives them with a
//! load generator. `scripts/bench.sh` builds everything and runs it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use logjet_tests::bench::lines::{self, LineKind};
use logjet_tests::bench::phases::pct;
use logjet_tests::bench::stack::{spawn_service, wait_counted, wait_ready};
use logjet_tests::bench::{compare, parser, phases};
use logjet_tests::servers::{NatsServer, RedisServer};
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(about = "End-to-end benchmark of logjet on this machine")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Events sent as NDJSON batches of 1,000.
    #[arg(long, default_value_t = 1_000_000)]
    ndjson_events: u64,
    /// Events sent one per POST.
    #[arg(long, default_value_t = 200_000)]
    single_events: u64,
    /// Connections for the one-event-per-POST run.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections for the NDJSON run.
    #[arg(long, default_value_t = 8)]
    batch_connections: usize,
    /// Processor replicas.
    #[arg(long, default_value_t = 1)]
    processors: usize,
    /// Rate of the latency run, events/s.
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    /// Duration of the latency run, seconds.
    #[arg(long, default_value_t = 20)]
    latency_secs: u64,
    /// Messages published in the raw JetStream ceiling run (1,000 lines each).
    #[arg(long, default_value_t = 1000)]
    raw_messages: u64,
    /// Requests per query latency measurement.
    #[arg(long, default_value_t = 200)]
    query_samples: usize,
    /// Events per shippers' protocol run (batches of 1,000), and for its NDJSON baseline.
    #[arg(long, default_value_t = 200_000)]
    protocol_events: u64,
    /// Shippers' protocols to run (comma-separated; default: all), e.g. to profile one of them.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(PROTOCOLS))]
    protocols: Vec<String>,
    /// Binaries of another build (e.g. the previous main commit), run beside ours in the same run
    /// for the per-process CPU table; both are reported, and the ratio.
    #[arg(long)]
    baseline_bin_dir: Option<PathBuf>,
    /// Events per NDJSON phase of the per-process CPU table.
    #[arg(long, default_value_t = 300_000)]
    compare_events: u64,
    /// Events per one-event-per-POST phase of the per-process CPU table.
    #[arg(long, default_value_t = 50_000)]
    compare_single_events: u64,
    /// Only the per-process CPU table (the comparison), not the rest of the bench.
    #[arg(long)]
    compare_only: bool,
    /// Only the realistic lines in the per-process CPU table (not the padded row too).
    #[arg(long)]
    compare_realistic_only: bool,
    /// Events over 24 h for the Loki `query_range` latencies (0: skip them).
    #[arg(long, default_value_t = 1_000_000)]
    loki_events: u64,
    /// Requests per Loki query latency measurement.
    #[arg(long, default_value_t = 50)]
    loki_samples: usize,
    /// Only the Loki `query_range` latencies, not the rest of the bench.
    #[arg(long)]
    loki_only: bool,
}

/// Latencies (ms, sorted) of `n` sequential requests.
async fn latencies(
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

/// A line of the bench's default kind: realistic (see [`logjet_tests::bench::lines`]).
fn line(i: u64, service: &str) -> String {
    lines::realistic(i, service)
}

struct Row {
    name: String,
    value: String,
    target: String,
}

fn row(name: &str, value: String, target: &str) -> Row {
    Row {
        name: name.into(),
        value,
        target: target.into(),
    }
}

async fn ndjson_run(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    events: u64,
    conns: usize,
    base: u64,
) -> (f64, f64) {
    let batches = events / 1000;
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..16u64)
            .map(|b| {
                (0..1000)
                    .map(|i| line(b * 1000 + i, &format!("svc-{}", b % 4)) + "\n")
                    .collect::<String>()
                    .into()
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, bodies, next) = (
            http.clone(),
            format!("{ingest}/logs"),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(bodies[(b % 16) as usize].clone())
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
    let sent = start.elapsed().as_secs_f64();
    let done = wait_counted(http, query, base + batches * 1000).await;
    let e2e = (batches * 1000) as f64 / (done - start).as_secs_f64();
    (e2e, (batches * 1000) as f64 / sent)
}

async fn single_run(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    events: u64,
    conns: usize,
    base: u64,
) -> (f64, Vec<f64>) {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, next) = (http.clone(), format!("{ingest}/logs"), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return lat;
                }
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(line(i, "single"))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 202);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("sender"));
    }
    let done = wait_counted(http, query, base + events).await;
    lat.sort_by(f64::total_cmp);
    (events as f64 / (done - start).as_secs_f64(), lat)
}

/// What the sent→queryable run measured, per marker, sorted.
struct QueryableLatency {
    /// POST → found by a query, ms.
    total: Vec<f64>,
    /// POST → 202, ms: the ingest and JetStream share of `total`.
    post: Vec<f64>,
    /// The slowest marker's (POST, total), ms, so a stall can be placed.
    slowest: (f64, f64),
}

/// Background load at `rate` events/s; markers every 100 ms, each polled until queryable.
async fn latency_run(
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
                .map(|i| line(i, "steady") + "\n")
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

#[tokio::main]
async fn main() {
    logjet_core::archive::install_tls_provider();
    let args = Args::parse();
    let http = logjet_tests::http_builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client");
    let loki_rows = if args.loki_events > 0 {
        eprintln!(
            "bench: Loki query_range latencies ({} events over 24 h)",
            args.loki_events
        );
        logjet_tests::bench::loki::run(
            &http,
            &args.bin_dir,
            args.processors,
            args.loki_events,
            args.loki_samples,
        )
        .await
    } else {
        Vec::new()
    };
    if args.loki_only {
        for (name, value, target) in &loki_rows {
            println!("| {name:<52} | {value:>12} | {target:>10} |");
        }
        return;
    }
    let mut builds = vec![("ours".to_string(), args.bin_dir.clone())];
    if let Some(dir) = &args.baseline_bin_dir {
        builds.push(("baseline".to_string(), dir.clone()));
    }
    compare::run(
        &http,
        &compare::Plan {
            builds,
            processors: args.processors,
            ndjson_events: args.compare_events,
            batch_connections: args.batch_connections,
            raw_messages: args.raw_messages.min(300),
            single_events: args.compare_single_events,
            connections: args.connections,
            kinds: if args.compare_realistic_only {
                vec![LineKind::Realistic]
            } else {
                vec![LineKind::Realistic, LineKind::Padded]
            },
        },
    )
    .await;
    if args.compare_only {
        return;
    }

    eprintln!("bench: starting nats-server and redis-server");
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let nats_url = nats.url();
    let redis_url = redis.url();

    eprintln!("bench: the parser alone, one thread");
    let parse_rates = parser::rates();

    eprintln!(
        "bench: raw JetStream publish ceiling ({} messages × 1,000 lines of 200 B, window 256)",
        args.raw_messages
    );
    let ceiling = phases::raw_ceiling(&nats, args.raw_messages, LineKind::Realistic).await;

    let mut services = vec![
        spawn_service(
            &args.bin_dir,
            "ingest",
            "logjet-ingest",
            &[("LOGJET_NATS_URL", nats_url.clone())],
        )
        .await,
        spawn_service(
            &args.bin_dir,
            "query",
            "logjet-query",
            &[
                ("LOGJET_REDIS_URL", redis_url.clone()),
                ("LOGJET_NATS_URL", nats_url.clone()),
            ],
        )
        .await,
    ];
    for _ in 0..args.processors {
        services.push(
            spawn_service(
                &args.bin_dir,
                "processor",
                "logjet-processor",
                &[
                    ("LOGJET_NATS_URL", nats_url.clone()),
                    ("LOGJET_REDIS_URL", redis_url.clone()),
                ],
            )
            .await,
        );
    }
    for s in &services {
        wait_ready(&http, &s.url).await;
    }
    let ingest = services[0].url.clone();
    let query = services[1].url.clone();

    eprintln!(
        "bench: NDJSON batches of 1,000 ({} events, {} connections)",
        args.ndjson_events, args.batch_connections
    );
    let (nd_e2e, nd_ingest) = ndjson_run(
        &http,
        &ingest,
        &query,
        args.ndjson_events,
        args.batch_connections,
        0,
    )
    .await;
    let base = args.ndjson_events / 1000 * 1000;

    eprintln!(
        "bench: one event per POST ({} events, {} connections)",
        args.single_events, args.connections
    );
    let (single_e2e, lat) = single_run(
        &http,
        &ingest,
        &query,
        args.single_events,
        args.connections,
        base,
    )
    .await;
    let base = base + args.single_events;

    eprintln!(
        "bench: sent→queryable at {} events/s for {} s",
        args.latency_rate, args.latency_secs
    );
    let (q_lat, sent) =
        latency_run(&http, &ingest, &query, args.latency_rate, args.latency_secs).await;
    let _ = wait_counted(&http, &query, base + sent).await;

    eprintln!("bench: query latency with {} events loaded", base + sent);
    let needle = format!("needle-{:x}", std::process::id() as u64 * 7919 + 17);
    let r = http
        .post(format!("{ingest}/logs"))
        .header("content-type", "application/json")
        .body(json!({"service": "svc-1", "level": "error", "message": format!("payment failed for {needle}")}).to_string())
        .send()
        .await
        .expect("needle");
    assert_eq!(r.status(), 202);
    let _ = wait_counted(&http, &query, base + sent + 1).await;
    let summary_lat = latencies(
        &http,
        reqwest::Method::GET,
        &format!("{query}/stats/summary"),
        None,
        args.query_samples,
    )
    .await;
    let ts_lat = latencies(
        &http,
        reqwest::Method::GET,
        &format!("{query}/stats/timeseries?from=1h&step=10s"),
        None,
        args.query_samples,
    )
    .await;
    let pat_lat = latencies(
        &http,
        reqwest::Method::GET,
        &format!("{query}/patterns?since=1h"),
        None,
        args.query_samples,
    )
    .await;
    let needle_body = json!({"contains": needle}).to_string();
    let needle_lat = latencies(
        &http,
        reqwest::Method::POST,
        &format!("{query}/logs/query"),
        Some(&needle_body),
        args.query_samples,
    )
    .await;
    let found: Value = http
        .post(format!("{query}/logs/query"))
        .header("content-type", "application/json")
        .body(needle_body.clone())
        .send()
        .await
        .expect("needle query")
        .json()
        .await
        .expect("needle json");
    assert_eq!(
        found["events"].as_array().map(Vec::len),
        Some(1),
        "needle not found: {found}"
    );

    let mut rows: Vec<Row> = parse_rates
        .iter()
        .map(|(name, rate)| {
            row(
                &format!("parser, one thread: {name} (lines/s)"),
                format!("{rate:.0}"),
                "",
            )
        })
        .collect();
    rows.extend([
        row(
            "JetStream raw publish ceiling (events/s)",
            format!("{ceiling:.0}"),
            "reference",
        ),
        row(
            "e2e NDJSON batches of 1,000 (events/s)",
            format!("{nd_e2e:.0}"),
            ">= 250000",
        ),
        row(
            "  ingest acceptance rate, same run (events/s)",
            format!("{nd_ingest:.0}"),
            "",
        ),
        row(
            "  pipeline / raw ceiling",
            format!("{:.0} %", 100.0 * nd_e2e / ceiling),
            "",
        ),
        row(
            &format!(
                "e2e one event per POST, {} conns (events/s)",
                args.connections
            ),
            format!("{single_e2e:.0}"),
            ">= 20000",
        ),
        row(
            "ingest latency p50 (ms)",
            format!("{:.2}", pct(&lat, 0.5)),
            "",
        ),
        row(
            "ingest latency p99 (ms)",
            format!("{:.2}", pct(&lat, 0.99)),
            "",
        ),
        row(
            &format!("sent→queryable p50 at {} ev/s (ms)", args.latency_rate),
            format!("{:.1}", pct(&q_lat.total, 0.5)),
            "",
        ),
        row(
            &format!("sent→queryable p99 at {} ev/s (ms)", args.latency_rate),
            format!("{:.1}", pct(&q_lat.total, 0.99)),
            "<= 250",
        ),
        row(
            "  of which the marker's POST, p50 / p99 (ms)",
            format!(
                "{:.1} / {:.1}",
                pct(&q_lat.post, 0.5),
                pct(&q_lat.post, 0.99)
            ),
            "",
        ),
        row(
            "  slowest marker: POST / total (ms)",
            format!("{:.1} / {:.1}", q_lat.slowest.0, q_lat.slowest.1),
            "",
        ),
    ]);
    for (name, lat, target) in [
        ("/stats/summary", &summary_lat, "<= 20"),
        ("/stats/timeseries 1 h at 10 s", &ts_lat, "<= 20"),
        ("/patterns 1 h", &pat_lat, "<= 50"),
        ("needle search (one id)", &needle_lat, "<= 50"),
    ] {
        rows.push(row(
            &format!("{name} p50 (ms)"),
            format!("{:.2}", pct(lat, 0.5)),
            "",
        ));
        rows.push(row(
            &format!("{name} p99 (ms)"),
            format!("{:.2}", pct(lat, 0.99)),
            target,
        ));
    }
    rows.push(row(
        "events loaded for the query latencies",
        format!("{}", base + sent + 1),
        ">= 1000000",
    ));
    rows.push(row(
        "needle search: events decoded",
        format!("{}", found["scanned"].as_u64().unwrap_or(0)),
        "",
    ));
    for s in &services {
        rows.push(row(
            &format!("peak RSS {} (MB)", s.name),
            format!("{:.1}", s.peak_rss_mb()),
            "< 60",
        ));
    }

    // The shippers' protocols, after everything above was measured (so RSS and latencies are
    // those of the runs above), each against an NDJSON baseline of the same size.
    let loaded = base + sent + 1;
    let (protocol_rows, _) = protocol_runs(
        &http,
        &ingest,
        &query,
        args.protocol_events,
        args.batch_connections,
        &args.protocols,
        loaded,
    )
    .await;
    rows.extend(protocol_rows);
    rows.extend(loki_rows.iter().map(|(n, v, t)| row(n, v.clone(), t)));

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    println!();
    println!(
        "logjet bench — {} — {} × {cpu}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "processors: {}, all services, NATS, Redis and the load generator on this machine",
        args.processors
    );
    println!();
    println!("| {:<52} | {:>12} | {:>10} |", "measure", "value", "target");
    println!("|{:-<54}|{:->14}|{:->12}|", "", "", "");
    for r in rows {
        println!("| {:<52} | {:>12} | {:>10} |", r.name, r.value, r.target);
    }
    drop(services);
    drop(redis);
    drop(nats);
}

// ---------------------------------------------------------------------------------------------
// The shippers' protocols (docs/shippers.md): the same 1,000-event batches as the NDJSON run,
// in each protocol's encoding, posted the same way, and compared with NDJSON `POST /logs`.

/// One benchmark line's content, shared by every encoding: (service, level, message, status,
/// duration_ms, user).
type Parts = (String, &'static str, String, u64, u64, String);

fn parts(i: u64, service: &str) -> Parts {
    let levels = ["info", "info", "info", "warn", "error", "debug"];
    (
        service.to_string(),
        levels[(i % 6) as usize],
        format!("GET /api/v1/items/{} completed", i % 1000),
        200,
        i % 250,
        format!("u-{}", i % 5000),
    )
}

fn otel_severity(level: &str) -> i32 {
    match level {
        "debug" => 5,
        "warn" => 13,
        "error" => 17,
        _ => 9,
    }
}

/// A batch of 1,000 events in `protocol`'s encoding: (path, content type, body).
fn protocol_body(protocol: &str, batch: u64) -> (&'static str, &'static str, bytes::Bytes) {
    use logjet_ingest::protocols::proto::{
        loki, otlp_collector, otlp_common, otlp_logs, otlp_resource,
    };
    use prost::Message;
    let service = format!("svc-{}", batch % 4);
    let events: Vec<_> = (0..1000u64)
        .map(|i| parts(batch * 1000 + i, &service))
        .collect();
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    match protocol {
        "loki-protobuf" | "loki-json" => {
            // One stream per level (a label), the other fields as structured metadata.
            let mut streams: Vec<(&str, Vec<&Parts>)> = Vec::new();
            for e in &events {
                match streams.iter_mut().find(|(l, _)| *l == e.1) {
                    Some((_, entries)) => entries.push(e),
                    None => streams.push((e.1, vec![e])),
                }
            }
            if protocol == "loki-protobuf" {
                let md = |k: &str, v: String| loki::LabelPairAdapter {
                    name: k.into(),
                    value: v,
                };
                let streams = streams
                    .iter()
                    .map(|(level, entries)| loki::StreamAdapter {
                        labels: format!("{{service_name=\"{service}\", level=\"{level}\"}}"),
                        entries: entries
                            .iter()
                            .map(|(_, _, msg, status, ms, user)| loki::EntryAdapter {
                                timestamp: Some(loki::Timestamp {
                                    seconds: now_ns / 1_000_000_000,
                                    nanos: (now_ns % 1_000_000_000) as i32,
                                }),
                                line: msg.clone(),
                                structured_metadata: vec![
                                    md("status", status.to_string()),
                                    md("duration_ms", ms.to_string()),
                                    md("user", user.clone()),
                                ],
                            })
                            .collect(),
                        hash: 0,
                    })
                    .collect();
                let raw = loki::PushRequest { streams }.encode_to_vec();
                let body = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy");
                ("/loki/api/v1/push", "application/x-protobuf", body.into())
            } else {
                let ts = now_ns.to_string();
                let streams: Vec<Value> = streams
                    .iter()
                    .map(|(level, entries)| {
                        let values: Vec<Value> = entries
                            .iter()
                            .map(|(_, _, msg, status, ms, user)| {
                                json!([ts, msg, {"status": status.to_string(), "duration_ms": ms.to_string(), "user": user}])
                            })
                            .collect();
                        json!({"stream": {"service_name": service, "level": level}, "values": values})
                    })
                    .collect();
                (
                    "/loki/api/v1/push",
                    "application/json",
                    json!({ "streams": streams }).to_string().into(),
                )
            }
        }
        "elasticsearch" => {
            let mut body = String::with_capacity(300_000);
            for (i, _) in events.iter().enumerate() {
                body.push_str("{\"create\":{\"_index\":\"logs-bench-default\"}}\n");
                body.push_str(&line(batch * 1000 + i as u64, &service));
                body.push('\n');
            }
            ("/_bulk", "application/x-ndjson", body.into())
        }
        "otlp-protobuf" | "otlp-json" => {
            let kv = |k: &str, v: otlp_common::any_value::Value| otlp_common::KeyValue {
                key: k.into(),
                value: Some(otlp_common::AnyValue { value: Some(v) }),
                ..Default::default()
            };
            use otlp_common::any_value::Value as V;
            let records = events
                .iter()
                .map(|(_, level, msg, status, ms, user)| otlp_logs::LogRecord {
                    time_unix_nano: now_ns as u64,
                    severity_number: otel_severity(level),
                    body: Some(otlp_common::AnyValue {
                        value: Some(V::StringValue(msg.clone())),
                    }),
                    attributes: vec![
                        kv("status", V::IntValue(*status as i64)),
                        kv("duration_ms", V::IntValue(*ms as i64)),
                        kv("user", V::StringValue(user.clone())),
                    ],
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            if protocol == "otlp-protobuf" {
                let req = otlp_collector::ExportLogsServiceRequest {
                    resource_logs: vec![otlp_logs::ResourceLogs {
                        resource: Some(otlp_resource::Resource {
                            attributes: vec![kv("service.name", V::StringValue(service.clone()))],
                            ..Default::default()
                        }),
                        scope_logs: vec![otlp_logs::ScopeLogs {
                            log_records: records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                (
                    "/v1/logs",
                    "application/x-protobuf",
                    req.encode_to_vec().into(),
                )
            } else {
                let records: Vec<Value> = events
                    .iter()
                    .map(|(_, level, msg, status, ms, user)| {
                        json!({
                            "timeUnixNano": now_ns.to_string(),
                            "severityNumber": otel_severity(level),
                            "body": {"stringValue": msg},
                            "attributes": [
                                {"key": "status", "value": {"intValue": status.to_string()}},
                                {"key": "duration_ms", "value": {"intValue": ms.to_string()}},
                                {"key": "user", "value": {"stringValue": user}},
                            ]
                        })
                    })
                    .collect();
                let req = json!({"resourceLogs": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeLogs": [{"logRecords": records}]
                }]});
                ("/v1/logs", "application/json", req.to_string().into())
            }
        }
        "fluent-bit-msgpack" => {
            use rmpv::Value as Mp;
            let secs = (now_ns / 1_000_000_000) as u32;
            let mut time = secs.to_be_bytes().to_vec();
            time.extend_from_slice(&0u32.to_be_bytes());
            let mut body = Vec::with_capacity(200_000);
            for (svc, level, msg, status, ms, user) in &events {
                let record = Mp::Map(vec![
                    (Mp::from("service"), Mp::from(svc.as_str())),
                    (Mp::from("level"), Mp::from(*level)),
                    (Mp::from("log"), Mp::from(msg.as_str())),
                    (Mp::from("status"), Mp::from(*status)),
                    (Mp::from("duration_ms"), Mp::from(*ms)),
                    (Mp::from("user"), Mp::from(user.as_str())),
                ]);
                let event = Mp::Array(vec![
                    Mp::Array(vec![Mp::Ext(0, time.clone()), Mp::Map(vec![])]),
                    record,
                ]);
                rmpv::encode::write_value(&mut body, &event).expect("msgpack");
            }
            ("/logs", "application/msgpack", body.into())
        }
        _ => {
            let body: String = (0..1000)
                .map(|i| line(batch * 1000 + i, &service) + "\n")
                .collect();
            ("/logs", "application/x-ndjson", body.into())
        }
    }
}

/// Posts `events` (batches of 1,000) of one protocol with `conns` connections; returns (e2e
/// events/s until counted, ingest acceptance events/s).
async fn protocol_run(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    protocol: &'static str,
    events: u64,
    conns: usize,
    base: u64,
) -> (f64, f64) {
    let batches = (events / 1000).max(1);
    let bodies: Arc<Vec<(&'static str, &'static str, bytes::Bytes)>> =
        Arc::new((0..16u64).map(|b| protocol_body(protocol, b)).collect());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, ingest, bodies, next) = (
            http.clone(),
            ingest.to_string(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let (path, ct, body) = &bodies[(b % 16) as usize];
                let r = http
                    .post(format!("{ingest}{path}"))
                    .header("content-type", *ct)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post");
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                // Failures show at the start of every answer (`"errors":true`, `"rejected":[{`,
                // `partialSuccess`); the rest of a bulk answer is only read, as shippers do.
                let head = String::from_utf8_lossy(&body[..body.len().min(96)]);
                assert!(status.is_success(), "{protocol}: {status} {head}");
                assert!(
                    !head.contains("\"errors\":true")
                        && !head.contains("\"rejected\":[{")
                        && !head.contains("partialSuccess"),
                    "{protocol}: {head}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let sent = start.elapsed().as_secs_f64();
    let done = wait_counted(http, query, base + batches * 1000).await;
    let n = (batches * 1000) as f64;
    (n / (done - start).as_secs_f64(), n / sent)
}

const PROTOCOLS: [&str; 6] = [
    "loki-protobuf",
    "loki-json",
    "elasticsearch",
    "otlp-protobuf",
    "otlp-json",
    "fluent-bit-msgpack",
];

/// NDJSON, then each protocol followed by NDJSON again, each with `events`; each protocol is
/// compared with the mean of the NDJSON runs just before and after it, so the machine's drift
/// during the phase (other load, warm-up) counts against neither.
async fn protocol_runs(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    events: u64,
    conns: usize,
    only: &[String],
    mut base: u64,
) -> (Vec<Row>, u64) {
    let per = (events / 1000).max(1) * 1000;
    eprintln!(
        "bench: shippers' protocols, {per} events each in batches of 1,000 ({conns} connections), NDJSON between them"
    );
    let mut run = async |protocol: &'static str| {
        let r = protocol_run(http, ingest, query, protocol, events, conns, base).await;
        base += per;
        r
    };
    let mut before = run("ndjson").await;
    let mut ndjson = vec![before];
    let mut rows = Vec::new();
    for protocol in PROTOCOLS {
        if !only.is_empty() && !only.iter().any(|p| p == protocol) {
            continue;
        }
        let (e2e, accept) = run(protocol).await;
        let after = run("ndjson").await;
        ndjson.push(after);
        let (nd_e2e, nd_accept) = ((before.0 + after.0) / 2.0, (before.1 + after.1) / 2.0);
        rows.push(row(
            &format!("{protocol} (accepted / e2e ev/s)"),
            format!("{accept:.0} / {e2e:.0}"),
            "",
        ));
        rows.push(row(
            &format!("  {protocol} vs NDJSON around it"),
            format!(
                "{:.0} %, {:.0} %",
                100.0 * accept / nd_accept,
                100.0 * e2e / nd_e2e
            ),
            ">= 70 %",
        ));
        before = after;
    }
    let n = ndjson.len() as f64;
    rows.insert(
        0,
        row(
            "NDJSON POST /logs, mean of the runs (accepted / e2e ev/s)",
            format!(
                "{:.0} / {:.0}",
                ndjson.iter().map(|r| r.1).sum::<f64>() / n,
                ndjson.iter().map(|r| r.0).sum::<f64>() / n
            ),
            "reference",
        ),
    );
    (rows, base)
}
