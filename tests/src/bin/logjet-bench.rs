//! logjet-bench: measures the pipeline end to end on this machine and prints a table.
//!
//! It starts its own nats-server and redis-server on free ports, runs the release binaries of
//! the services as separate processes (so each one's RSS is its own), and drives them with a
//! load generator. `scripts/bench.sh` builds everything and runs it.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use logjet_tests::bench::latency::{QueryableLatency, latency_run};
use logjet_tests::bench::lines::{self, LineKind};
use logjet_tests::bench::phases::pct;
use logjet_tests::bench::protocols::{PROTOCOLS, protocol_run};
use logjet_tests::bench::queries::{query_phase, query_rows};
use logjet_tests::bench::report::{Row, print_table, row};
use logjet_tests::bench::stack::{Service, spawn_service, wait_counted, wait_ready};
use logjet_tests::bench::{archive, archive_scale, compare, linger, parser, phases};
use logjet_tests::servers::{NatsServer, RedisServer};

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
    /// Unique events archived by the archive phase (0: no archive phase).
    #[arg(long, default_value_t = 1_000_000)]
    archive_events: u64,
    /// Needle searches timed over the archive.
    #[arg(long, default_value_t = 200)]
    archive_needles: usize,
    /// Only the archive phase.
    #[arg(long)]
    archive_only: bool,
    /// Archive sizes (millions of events) for the needle-at-scale rows, written straight by
    /// the segment writer (empty: skip them).
    #[arg(long, value_delimiter = ',', default_value = "5,20,50")]
    archive_scale: Vec<u64>,
    /// Events per segment of the scale archives (one service each).
    #[arg(long, default_value_t = 250_000)]
    archive_scale_segment_events: u64,
    /// Processor batch linger values (ms) to sweep: sent→queryable at `--latency-rate`, then a
    /// burst for the end-to-end rate, processor CPU and chunks (empty: no sweep).
    #[arg(long, value_delimiter = ',')]
    linger_curve: Vec<u64>,
    /// Only the linger sweep.
    #[arg(long)]
    linger_only: bool,
    /// Events of the last minutes in Redis and the stream beside the scale archives.
    #[arg(long, default_value_t = 200_000)]
    archive_scale_recent_events: u64,
    /// Events over 24 h for the Loki `query_range` latencies (0: skip them).
    #[arg(long, default_value_t = 1_000_000)]
    loki_events: u64,
    /// Requests per Loki query latency measurement.
    #[arg(long, default_value_t = 50)]
    loki_samples: usize,
    /// Only the Loki `query_range` latencies, not the rest of the bench.
    #[arg(long)]
    loki_only: bool,
    /// Only the parser rows (one thread, in this process; seconds).
    #[arg(long)]
    parser_only: bool,
    /// Only print this many of the archive phase's lines (one service), as NDJSON: for the
    /// example `archive_compression`'s `ARCHIVE_NDJSON_DIR`.
    #[arg(long)]
    dump_lines: Option<u64>,
}

/// A line of the bench's default kind: realistic (see [`logjet_tests::bench::lines`]).
fn line(i: u64, service: &str) -> String {
    lines::realistic(i, service)
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
    let start = Instant::now();
    phases::post_batches(http, &format!("{ingest}/logs"), bodies, batches, conns).await;
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
    let start = Instant::now();
    let url = format!("{ingest}/logs");
    let mut lat = phases::post_singles(http, &url, events, conns, |i| line(i, "single"))
        .await
        .expect("one event per POST");
    let done = wait_counted(http, query, base + events).await;
    lat.sort_by(f64::total_cmp);
    (events as f64 / (done - start).as_secs_f64(), lat)
}

#[tokio::main]
async fn main() {
    logjet_core::archive::install_tls_provider();
    let args = Args::parse();
    if let Some(n) = args.dump_lines {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for i in 0..n {
            writeln!(out, "{}", logjet_tests::bench::lines::realistic(i, "svc-0")).expect("stdout");
        }
        return;
    }
    if args.parser_only {
        for (name, rate) in parser::rates() {
            println!("| parser, one thread: {name} (lines/s) | {rate:.0} |");
        }
        return;
    }
    let http = logjet_tests::http_builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client");
    if !args.linger_curve.is_empty() {
        let plan = linger::LingerPlan {
            lingers_ms: args.linger_curve.clone(),
            rate: args.latency_rate,
            secs: args.latency_secs,
            burst_events: args.compare_events,
            conns: args.batch_connections,
        };
        for (name, value, target) in linger::run(&http, &args.bin_dir, &plan).await {
            println!("| {name:<52} | {value:>12} | {target:>10} |");
        }
        if args.linger_only {
            return;
        }
    }
    let archive_phases = !args.compare_only && !args.loki_only;
    let mut archive_rows = Vec::new();
    if args.archive_events > 0 && archive_phases {
        let plan = archive::Plan {
            events: args.archive_events,
            conns: args.batch_connections,
            needles: args.archive_needles,
        };
        archive_rows = archive::run(&http, &args.bin_dir, &plan).await;
    }
    let sizes: Vec<u64> = args
        .archive_scale
        .iter()
        .filter(|&&m| m > 0)
        .map(|m| m * 1_000_000)
        .collect();
    if !sizes.is_empty() && archive_phases {
        let plan = archive_scale::ScalePlan {
            sizes,
            needles: args.archive_needles,
            segment_events: args.archive_scale_segment_events,
            recent_events: args.archive_scale_recent_events,
        };
        archive_rows.extend(archive_scale::run(&http, &args.bin_dir, &plan).await);
    }
    if args.archive_only {
        for (name, value, target) in archive_rows {
            println!("| {name:<52} | {value:>12} | {target:>10} |");
        }
        return;
    }
    let loki_rows = if args.loki_events > 0 && !args.compare_only && !args.archive_only {
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
    compare_phase(&http, &args).await;
    if args.compare_only {
        return;
    }

    eprintln!("bench: starting nats-server and redis-server");
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;

    eprintln!("bench: the parser alone, one thread");
    let parse_rates = parser::rates();

    eprintln!(
        "bench: raw JetStream publish ceiling ({} messages × 1,000 lines of 200 B, window 256)",
        args.raw_messages
    );
    let ceiling = phases::raw_ceiling(&nats, args.raw_messages, LineKind::Realistic).await;

    let services = start_services(&http, &args, &nats, &redis).await;
    let ingest = services[0].url.clone();
    let query = services[1].url.clone();

    let throughput = throughput_phase(&http, &args, &ingest, &query).await;
    let loaded = throughput.loaded;
    eprintln!("bench: query latency with {loaded} events loaded");
    let queries = query_phase(&http, &ingest, &query, loaded, args.query_samples).await;

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
    rows.extend(throughput_rows(&args, ceiling, &throughput));
    rows.extend(query_rows(&queries, loaded + 1));
    for s in &services {
        rows.push(row(
            &format!("peak RSS {} (MB)", s.name),
            format!("{:.1}", s.peak_rss_mb()),
            "< 60",
        ));
    }

    // The shippers' protocols, after everything above was measured (so RSS and latencies are
    // those of the runs above), each against an NDJSON baseline of the same size.
    let (protocol_rows, _) = protocol_runs(
        &http,
        &ingest,
        &query,
        args.protocol_events,
        args.batch_connections,
        &args.protocols,
        loaded + 1,
    )
    .await;
    rows.extend(protocol_rows);
    rows.extend(archive_rows.iter().map(|(n, v, t)| row(n, v.clone(), t)));
    rows.extend(loki_rows.iter().map(|(n, v, t)| row(n, v.clone(), t)));

    print_table(&rows, args.processors);
    drop(services);
    drop(redis);
    drop(nats);
}

/// The per-process CPU table: our build (and the baseline's, if given) on its own stack.
async fn compare_phase(http: &reqwest::Client, args: &Args) {
    let mut builds = vec![("ours".to_string(), args.bin_dir.clone())];
    if let Some(dir) = &args.baseline_bin_dir {
        builds.push(("baseline".to_string(), dir.clone()));
    }
    compare::run(
        http,
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
}

/// Ingest, query and `args.processors` processors as processes, once ready; ingest first, query
/// second.
async fn start_services(
    http: &reqwest::Client,
    args: &Args,
    nats: &NatsServer,
    redis: &RedisServer,
) -> Vec<Service> {
    let (nats_url, redis_url) = (nats.url(), redis.url());
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
        wait_ready(http, &s.url).await;
    }
    services
}

/// What the NDJSON, one-event-per-POST and sent→queryable runs measured.
struct Throughput {
    nd_e2e: f64,
    nd_ingest: f64,
    single_e2e: f64,
    /// Ingest latencies of the one-event-per-POST run (ms, sorted).
    single_latency: Vec<f64>,
    queryable: QueryableLatency,
    /// Events counted after the three runs.
    loaded: u64,
}

async fn throughput_phase(
    http: &reqwest::Client,
    args: &Args,
    ingest: &str,
    query: &str,
) -> Throughput {
    eprintln!(
        "bench: NDJSON batches of 1,000 ({} events, {} connections)",
        args.ndjson_events, args.batch_connections
    );
    let (nd_e2e, nd_ingest) = ndjson_run(
        http,
        ingest,
        query,
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
    let (single_e2e, single_latency) = single_run(
        http,
        ingest,
        query,
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
    let (queryable, sent) =
        latency_run(http, ingest, query, args.latency_rate, args.latency_secs).await;
    let _ = wait_counted(http, query, base + sent).await;
    Throughput {
        nd_e2e,
        nd_ingest,
        single_e2e,
        single_latency,
        queryable,
        loaded: base + sent,
    }
}

fn throughput_rows(args: &Args, ceiling: f64, t: &Throughput) -> Vec<Row> {
    let (nd_e2e, lat, q_lat) = (t.nd_e2e, &t.single_latency, &t.queryable);
    vec![
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
            format!("{:.0}", t.nd_ingest),
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
            format!("{:.0}", t.single_e2e),
            ">= 20000",
        ),
        row(
            "ingest latency p50 (ms)",
            format!("{:.2}", pct(lat, 0.5)),
            "",
        ),
        row(
            "ingest latency p99 (ms)",
            format!("{:.2}", pct(lat, 0.99)),
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
    ]
}

// ---------------------------------------------------------------------------------------------
// The shippers' protocols (docs/shippers.md), each against an NDJSON baseline of the same size.

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
