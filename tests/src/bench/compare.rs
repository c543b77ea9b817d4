//! The per-process CPU table: every phase on a fresh pipeline of its own, for this build and,
//! with `--baseline-bin-dir`, for a previous commit's binaries in the same run, so the two are
//! compared on the same machine at the same time (the ratios are what counts: this machine's
//! speed varies from day to day).

use std::path::PathBuf;

use crate::bench::lines::LineKind;
use crate::bench::phases::{self, Phase, pct};
use crate::bench::seed;
use crate::bench::stack::Stack;

/// What to compare.
pub struct Plan {
    pub builds: Vec<(String, PathBuf)>,
    pub processors: usize,
    pub ndjson_events: u64,
    pub batch_connections: usize,
    pub raw_messages: u64,
    /// 0: no one-event-per-POST phases.
    pub single_events: u64,
    pub connections: usize,
    /// The NDJSON phases' lines.
    pub kinds: Vec<LineKind>,
}

/// The processes, in the order the table shows them.
const PROCS: [&str; 6] = [
    "ingest",
    "processor",
    "query",
    "nats-server",
    "redis-server",
    "load generator",
];

fn header() {
    println!(
        "| {:<34} | {:<8} | {:>9} | {:>9} | {:>7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |",
        "phase",
        "build",
        "e2e ev/s",
        "accepted",
        "/ceil",
        "ingest",
        "process.",
        "query",
        "nats",
        "redis",
        "loadgen"
    );
    println!(
        "|{:-<36}|{:-<10}|{:->11}|{:->11}|{:->9}|{:->9}|{:->10}|{:->9}|{:->9}|{:->9}|{:->9}|",
        "", "", "", "", "", "", "", "", "", "", ""
    );
}

fn print_phase(name: &str, build: &str, p: &Phase, ceiling: Option<f64>) {
    let us: Vec<String> = PROCS
        .iter()
        .map(|n| format!("{:.2}", p.usage.us_per_event(n, p.events)))
        .collect();
    println!(
        "| {:<34} | {:<8} | {:>9.0} | {:>9.0} | {:>7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |",
        name,
        build,
        p.e2e,
        p.accepted,
        ceiling.map_or("".into(), |c| format!("{:.1} %", 100.0 * p.e2e / c)),
        us[0],
        us[1],
        us[2],
        us[3],
        us[4],
        us[5]
    );
}

fn print_ratio(name: &str, ours: &Phase, base: &Phase) {
    let r =
        |n: &str| base.usage.us_per_event(n, base.events) / ours.usage.us_per_event(n, ours.events);
    println!(
        "| {:<34} | {:<8} | {:>9} | {:>9} | {:>7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |",
        name,
        "base/our",
        format!("{:.2}×", ours.e2e / base.e2e),
        format!("{:.2}×", ours.accepted / base.accepted),
        "",
        format!("{:.2}×", r("ingest")),
        format!("{:.2}×", r("processor")),
        format!("{:.2}×", r("query")),
        format!("{:.2}×", r("nats-server")),
        format!("{:.2}×", r("redis-server")),
        format!("{:.2}×", r("load generator")),
    );
}

/// Runs every phase for every build and prints the table. The e2e and accepted columns of the
/// ratio rows are ours / baseline (higher is better); the CPU columns baseline / ours (higher
/// is better: how many times less CPU per event this build spends).
pub async fn run(http: &reqwest::Client, plan: &Plan) {
    let h1 = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .http1_only()
        .build()
        .expect("http/1.1 client");
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    println!();
    println!(
        "CPU µs per event per process (from /proc/<pid>/stat over each phase), {} processor(s); builds: {}",
        plan.processors,
        plan.builds
            .iter()
            .map(|(n, d)| format!("{n} = {}", d.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    header();
    for &kind in &plan.kinds {
        let mut results = Vec::new();
        for (build, dir) in &plan.builds {
            eprintln!("bench: compare {build}: NDJSON {} lines", kind.name());
            let stack = Stack::start(http, dir, plan.processors).await;
            let ceiling = phases::raw_ceiling(&stack.nats, plan.raw_messages, kind).await;
            let p = phases::ndjson(
                http,
                &stack,
                kind,
                plan.ndjson_events,
                plan.batch_connections,
            )
            .await;
            let name = format!("NDJSON ×1000, {} lines", kind.name());
            print_phase(&name, build, &p, Some(ceiling));
            println!(
                "| {:<34} | {:<8} | {:>9.0} | {:>9} | {:>7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |",
                "  raw JetStream ceiling, same stack",
                build,
                ceiling,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                ""
            );
            results.push(p);
        }
        if results.len() == 2 {
            print_ratio(
                &format!("  ratio, {} lines", kind.name()),
                &results[0],
                &results[1],
            );
        }
    }
    let protocols = if plan.single_events == 0 {
        vec![]
    } else {
        vec![("HTTP/1.1 keep-alive", &h1), ("h2c", &h2c)]
    };
    for (proto, client) in protocols {
        let mut results = Vec::new();
        for (build, dir) in &plan.builds {
            eprintln!("bench: compare {build}: one event per POST, {proto}");
            let stack = Stack::start(http, dir, plan.processors).await;
            let p = match phases::single(
                client,
                http,
                &stack,
                LineKind::Realistic,
                plan.single_events,
                plan.connections,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    println!("| 1 per POST, {proto} | {build} | FAILED: {e} |");
                    continue;
                }
            };
            let name = format!("1 per POST, {proto}, p99 {:.1} ms", pct(&p.latencies, 0.99));
            print_phase(&name, build, &p, None);
            results.push(p);
        }
        if results.len() == 2 {
            print_ratio(&format!("  ratio, {proto}"), &results[0], &results[1]);
        }
        if proto == "HTTP/1.1 keep-alive"
            && let Some(ours) = results.first()
        {
            seed_rows(client, ours, plan).await;
        }
    }
}

/// The seed-style API under the same load as our HTTP/1.1 phase, and logjet's ratio to it.
async fn seed_rows(client: &reqwest::Client, ours: &Phase, plan: &Plan) {
    eprintln!("bench: compare: the seed-style API, one event per POST");
    match seed::run(client, plan.single_events, plan.connections).await {
        Err(e) => println!("| seed-style API: not run: {e} |"),
        Ok(s) => {
            let blank = "";
            println!(
                "| {:<34} | {:<8} | {:>9.0} | {:>9.0} | {:>7} | {:>7.2} | {:>8} | {:>7} | {:>7} | {:>7.2} | {:>7} |",
                format!(
                    "1 per POST, seed-style, p99 {:.1} ms",
                    pct(&s.latencies, 0.99)
                ),
                "FastAPI",
                s.accepted,
                s.accepted,
                blank,
                s.api_us,
                blank,
                blank,
                blank,
                s.redis_us,
                blank
            );
            let all_ours: f64 = PROCS[..5]
                .iter()
                .map(|n| ours.usage.us_per_event(n, ours.events))
                .sum();
            println!(
                "| {:<34} | {:<8} | {:>9} | {:>9} | {:>7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} |",
                "  logjet / seed-style (CPU: theirs/ours)",
                "ratio",
                format!("{:.2}×", ours.e2e / s.accepted),
                format!("{:.2}×", ours.accepted / s.accepted),
                blank,
                format!(
                    "{:.2}×",
                    s.api_us / ours.usage.us_per_event("ingest", ours.events)
                ),
                blank,
                blank,
                blank,
                blank,
                blank
            );
            println!(
                "  seed-style: its API's (uvicorn master + 2 workers) CPU in the ingest column; per event in all: seed-style {:.1} µs (API + redis), logjet {:.1} µs (ingest, processor, query, nats, redis)",
                s.api_us + s.redis_us,
                all_ours
            );
        }
    }
}
