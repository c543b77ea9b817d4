//! logjet-dashboard-bench: the dashboard's bundle size and how fast it paints, on this machine,
//! and how the live tail holds up at thousands of lines a second. Prints a table.
//!
//! It starts NATS, Redis and the services in-process (as the system tests do), the dashboard
//! server pointed at them and at `dashboard/dist`, and headless Chromium (Debian's `chromium`
//! and `chromium-driver`) over loopback. `scripts/bench.sh` runs it with `--build`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use logjet_tests::browser::Browser;
use logjet_tests::dashboard;
use logjet_tests::platform::Platform;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Dashboard bundle size, first meaningful paint and live-tail load in Chromium")]
struct Args {
    /// Build the bundle first (scripts/build-dashboard.sh).
    #[arg(long)]
    build: bool,
    /// The bundle.
    #[arg(long)]
    dist: Option<PathBuf>,
    /// Page loads measured, each in a fresh browser profile (cold cache).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Lines per second sent while the live tail is open.
    #[arg(long, default_value_t = 5000)]
    tail_rate: u64,
    /// Seconds of that load.
    #[arg(long, default_value_t = 5)]
    tail_secs: u64,
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The file in `dir` whose name ends in `ext` (not `.gz`), and its size raw and gzip'ed.
fn sizes(dir: &Path, ext: &str) -> (String, u64, u64) {
    for e in std::fs::read_dir(dir).expect("read dist").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(ext) {
            let raw = e.metadata().map(|m| m.len()).unwrap_or(0);
            let gz = std::fs::metadata(dir.join(format!("{name}.gz")))
                .map(|m| m.len())
                .unwrap_or(0);
            return (name, raw, gz);
        }
    }
    panic!("no *{ext} in {}", dir.display());
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Navigation timings of the page that is open, once its first data has rendered.
async fn page_timings(b: &Browser) -> Value {
    b.wait_js(
        "the first data render",
        "return document.body.getAttribute('data-ready') === '1';",
        Duration::from_secs(30),
    )
    .await;
    b.eval(
        "const nav = performance.getEntriesByType('navigation')[0];
         const fcp = performance.getEntriesByName('first-contentful-paint')[0];
         const data = performance.getEntriesByName('logjet-first-data')[0];
         return {
           ttfb: nav.responseStart,
           dcl: nav.domContentLoadedEventEnd,
           fcp: fcp ? fcp.startTime : null,
           data: data.startTime,
           bytes: performance.getEntriesByType('resource').reduce((s, r) => s + (r.transferSize || 0), nav.transferSize || 0),
         };",
    )
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    logjet_core::archive::install_tls_provider();
    let args = Args::parse();
    if args.build {
        let status = std::process::Command::new(root().join("scripts/build-dashboard.sh"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run scripts/build-dashboard.sh");
        assert!(status.success(), "scripts/build-dashboard.sh failed");
    }
    let dist = match args.dist {
        Some(d) => d,
        None => dashboard::dist_dir(),
    };
    let mut rows = Vec::new();

    // --- bundle ---------------------------------------------------------------------------
    let (wasm, wasm_raw, wasm_gz) = sizes(&dist, ".wasm");
    let (_, js_raw, js_gz) = sizes(&dist, ".js");
    let (_, css_raw, css_gz) = sizes(&dist, ".css");
    eprintln!("dashboard-bench: bundle {wasm}");
    rows.push(row(
        "wasm, gzip (raw)",
        format!("{} ({})", kib(wasm_gz), kib(wasm_raw)),
        "<= 400 KB",
    ));
    rows.push(row(
        "js + css, gzip (raw)",
        format!("{} ({})", kib(js_gz + css_gz), kib(js_raw + css_raw)),
        "",
    ));

    // --- a platform with some data, the dashboard in front of it ----------------------------
    eprintln!("dashboard-bench: starting the platform");
    let p = Platform::start(1).await;
    let services = ["api", "billing", "worker", "search", "auth"];
    let levels = ["info", "info", "info", "warn", "error", "debug"];
    let mut sent = 0u64;
    for round in 0..4 {
        let body: String = (0..500)
            .map(|i| {
                json!({
                    "service": services[i % services.len()],
                    "level": levels[i % levels.len()],
                    "message": format!("request {round}-{i} took {} ms", i % 97),
                })
                .to_string()
                    + "\n"
            })
            .collect();
        let r = p.post("application/x-ndjson", body).await;
        assert_eq!(r.status(), 202);
        sent += 500;
    }
    p.wait_for_total(sent, Duration::from_secs(30)).await;
    let dash = dashboard::start(dashboard::config(&p.query_url(), &dist)).await;
    let url = format!("http://{}/", dash.addr);
    p.wait_ready(&format!("http://{}", dash.addr)).await;

    // --- first meaningful paint, cold and warm ---------------------------------------------
    eprintln!("dashboard-bench: {} page loads in Chromium", args.runs);
    let (mut cold_fmp, mut cold_fcp, mut warm_fmp) = (Vec::new(), Vec::new(), Vec::new());
    let mut transfer = 0.0;
    for _ in 0..args.runs.max(1) {
        let b = Browser::start(1280, 800).await;
        b.goto(&url).await;
        let t = page_timings(&b).await;
        cold_fmp.push(t["data"].as_f64().unwrap_or(f64::NAN));
        cold_fcp.push(t["fcp"].as_f64().unwrap_or(f64::NAN));
        transfer = t["bytes"].as_f64().unwrap_or(0.0);
        b.client.refresh().await.expect("reload");
        let t = page_timings(&b).await;
        warm_fmp.push(t["data"].as_f64().unwrap_or(f64::NAN));
        b.close().await;
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    rows.push(row(
        "bytes transferred, first load",
        kib(transfer as u64),
        "",
    ));
    rows.push(row(
        "first contentful paint, cold (median)",
        format!("{:.0} ms", median(&mut cold_fcp.clone())),
        "",
    ));
    rows.push(row(
        "first meaningful paint, cold (median / max)",
        format!(
            "{:.0} / {:.0} ms",
            median(&mut cold_fmp.clone()),
            max(&cold_fmp)
        ),
        "<= 1000 ms",
    ));
    rows.push(row(
        "first meaningful paint, reload (median)",
        format!("{:.0} ms", median(&mut warm_fmp.clone())),
        "<= 1000 ms",
    ));

    // --- the live tail under load -----------------------------------------------------------
    eprintln!(
        "dashboard-bench: live tail at {} lines/s for {} s",
        args.tail_rate, args.tail_secs
    );
    let b = Browser::start(1280, 800).await;
    b.goto(&format!("{url}?view=tail&service=flood")).await;
    b.wait_attr(
        "[data-testid=tail-status]",
        "data-state",
        "streaming",
        Duration::from_secs(15),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The page's own view of its responsiveness: how late a 50 ms timer fires.
    b.eval(
        "window.__lag = [];
         let due = performance.now() + 50;
         const tick = () => { const now = performance.now(); window.__lag.push(now - due); due = now + 50; setTimeout(tick, 50); };
         setTimeout(tick, 50);",
    )
    .await;
    let batch = (args.tail_rate / 10).max(1);
    let start = Instant::now();
    let mut tail_sent = 0u64;
    let total_batches = args.tail_secs * 10;
    for n in 0..total_batches {
        let body: String = (0..batch)
            .map(|i| {
                json!({"service": "flood", "level": levels[(i % 6) as usize], "message": format!("flood line {n}-{i}")})
                    .to_string()
                    + "\n"
            })
            .collect();
        let r = p.post("application/x-ndjson", body).await;
        assert_eq!(r.status(), 202);
        tail_sent += batch;
        let next = Duration::from_millis(100 * (n + 1));
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Let the stream drain, then read what the page saw.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = 0u64;
    while Instant::now() < deadline {
        received = b
            .eval("return Number((document.querySelector('[data-testid=tail-status]').textContent.match(/([\\d,]+) lines received/) || [0, '0'])[1].replace(/,/g, ''));")
            .await
            .as_u64()
            .unwrap_or(0);
        if received >= tail_sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let page = b
        .eval(
            "const lag = window.__lag.slice().sort((a, b) => a - b);
             return {
               rows: document.querySelectorAll('#tail-list li.tl').length,
               kept: Number(document.querySelector('[data-testid=tail-status]').getAttribute('data-kept')),
               p50: lag[Math.floor(lag.length * 0.5)] || 0,
               p99: lag[Math.floor(lag.length * 0.99)] || 0,
               max: lag[lag.length - 1] || 0,
               state: document.querySelector('[data-testid=tail-status]').getAttribute('data-state'),
             };",
        )
        .await;
    // Responsive: a click is answered at once even now.
    let t = Instant::now();
    b.click("[data-testid=tail-toggle]").await;
    b.wait_attr(
        "[data-testid=tail-status]",
        "data-state",
        "paused",
        Duration::from_secs(5),
    )
    .await;
    let click_ms = t.elapsed().as_secs_f64() * 1000.0;
    b.close().await;
    rows.push(row(
        "tail: lines sent / shown as received",
        format!(
            "{} / {} ({:.0}/s)",
            tail_sent,
            received,
            tail_sent as f64 / send_secs
        ),
        "5000/s",
    ));
    rows.push(row(
        "tail: lines kept / rows in the DOM (following)",
        format!("{} / {}", page["kept"], page["rows"]),
        "1000 kept",
    ));
    rows.push(row(
        "tail: 50 ms timer lateness p50 / p99 / max",
        format!(
            "{:.0} / {:.0} / {:.0} ms",
            page["p50"].as_f64().unwrap_or(0.0),
            page["p99"].as_f64().unwrap_or(0.0),
            page["max"].as_f64().unwrap_or(0.0)
        ),
        "",
    ));
    rows.push(row(
        "tail: Pause click to paused (WebDriver)",
        format!("{click_ms:.0} ms"),
        "",
    ));
    dash.stop().await;

    println!();
    println!("logjet dashboard on this machine (loopback, headless Chromium)");
    println!();
    println!("| {:<46} | {:>24} | {:>10} |", "measure", "value", "target");
    println!("|{:-<48}|{:->26}|{:->12}|", "", "", "");
    for r in rows {
        println!("| {:<46} | {:>24} | {:>10} |", r.name, r.value, r.target);
    }
}
