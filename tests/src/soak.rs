//! The chaos soak: steady load through two ingests while processors are SIGKILLed, NATS and Redis
//! are restarted and an ingest is SIGTERMed; at the end every acknowledged event must be counted
//! exactly once. Used by `scripts/soak.sh` (10 minutes at 20,000 events/s) and by a short run in
//! the test suite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::servers::{NatsServer, RedisServer, free_port};

#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub bin_dir: PathBuf,
    pub duration: Duration,
    /// Events per second, sent as batches of `batch` events.
    pub rate: u64,
    pub batch: u64,
    pub processors: usize,
    /// A random processor is SIGKILLed (and replaced) this often.
    pub kill_every: Duration,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            bin_dir: PathBuf::from("target/release"),
            duration: Duration::from_secs(600),
            rate: 20_000,
            batch: 100,
            processors: 3,
            kill_every: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    pub sent: u64,
    pub acknowledged: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub lost: u64,
    /// Responses ≥ 500 by status, and connection errors (retried on the other ingest).
    pub errors: BTreeMap<String, u64>,
    pub processor_kills: u64,
    pub rebuild_events: u64,
    /// Service → (RSS at start, RSS at end), MB.
    pub rss: BTreeMap<String, (f64, f64)>,
    pub log: Vec<String>,
}

impl SoakReport {
    pub fn print(&self) {
        println!();
        println!("logjet soak");
        for l in &self.log {
            println!("  {l}");
        }
        println!();
        println!("| {:<34} | {:>14} |", "measure", "value");
        println!("|{:-<36}|{:->16}|", "", "");
        for (k, v) in [
            ("sent", self.sent),
            ("acknowledged (202)", self.acknowledged),
            ("counted", self.counted),
            ("duplicates", self.duplicates),
            ("lost", self.lost),
            ("processors SIGKILLed", self.processor_kills),
            ("events re-applied by rebuild", self.rebuild_events),
        ] {
            println!("| {k:<34} | {v:>14} |");
        }
        for (code, n) in &self.errors {
            println!("| {:<34} | {n:>14} |", format!("errors: {code}"));
        }
        for (svc, (start, end)) in &self.rss {
            println!(
                "| {:<34} | {:>14} |",
                format!("RSS {svc} start → end (MB)"),
                format!("{start:.1} → {end:.1}")
            );
        }
    }
}

struct Proc {
    name: String,
    url: String,
    child: Child,
    rss_start: f64,
}

fn rss_mb(child: &Child) -> f64 {
    let Some(pid) = child.id() else { return 0.0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn spawn(bin_dir: &Path, name: &str, binary: &str, env: &[(&str, String)]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(bin_dir.join(binary));
    cmd.env("LOGJET_LISTEN", format!("127.0.0.1:{port}"))
        .env("LOGJET_AUTH", "off")
        .env("LOGJET_RATE_LIMIT_PER_SECOND", "0")
        .env("LOGJET_LOG_FORMAT", "json")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "starting {}: {e} (build it: cargo build --bins)",
            bin_dir.join(binary).display()
        )
    });
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await;
    let rss_start = rss_mb(&child);
    Proc {
        name: name.to_string(),
        url,
        child,
        rss_start,
    }
}

async fn wait_ready(url: &str) {
    let http = crate::http_client();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} not ready");
}

fn sigterm(child: &Child) {
    if let Some(pid) = child.id() {
        // A test harness: std has no safe call for this (signals, sysconf, clock_gettime).
        #[allow(unsafe_code)]
        // SAFETY: sending a signal to a child we own.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM)
        };
    }
}

/// Runs the soak and returns what it saw.
pub async fn run(opts: SoakOptions) -> SoakReport {
    let mut report = SoakReport::default();
    let started = Instant::now();
    let mut nats = NatsServer::start().await;
    let mut redis = RedisServer::start().await;
    let nats_env = ("LOGJET_NATS_URL", nats.url());
    let redis_env = ("LOGJET_REDIS_URL", redis.url());
    let ingests = Arc::new(Mutex::new(vec![
        spawn(
            &opts.bin_dir,
            "ingest-a",
            "logjet-ingest",
            std::slice::from_ref(&nats_env),
        )
        .await,
        spawn(
            &opts.bin_dir,
            "ingest-b",
            "logjet-ingest",
            std::slice::from_ref(&nats_env),
        )
        .await,
    ]));
    let query = spawn(
        &opts.bin_dir,
        "query",
        "logjet-query",
        &[nats_env.clone(), redis_env.clone()],
    )
    .await;
    let mut processors = Vec::new();
    for i in 0..opts.processors {
        processors.push(
            spawn(
                &opts.bin_dir,
                &format!("processor-{i}"),
                "logjet-processor",
                &[nats_env.clone(), redis_env.clone()],
            )
            .await,
        );
    }
    let mut rss: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for p in ingests
        .lock()
        .await
        .iter()
        .chain([&query])
        .chain(processors.iter())
    {
        rss.insert(p.name.clone(), (p.rss_start, 0.0));
    }

    // The load: batches with idempotency keys, retried (on the other ingest) until acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors: Arc<std::sync::Mutex<BTreeMap<String, u64>>> = Arc::default();
    let urls: Arc<std::sync::Mutex<Vec<String>>> = Arc::new(std::sync::Mutex::new(
        ingests.lock().await.iter().map(|p| p.url.clone()).collect(),
    ));
    let http = crate::http_builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let batches_per_sec = (opts.rate / opts.batch).max(1);
    let loader = {
        let (stop, sent, acked, errors, urls, http) = (
            stop.clone(),
            sent.clone(),
            acked.clone(),
            errors.clone(),
            urls.clone(),
            http.clone(),
        );
        let batch = opts.batch;
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / batches_per_sec));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let inflight = Arc::new(tokio::sync::Semaphore::new(256));
            let mut n = 0u64;
            let mut tasks = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    break;
                };
                n += 1;
                let body: String = (0..batch)
                    .map(|i| format!("{{\"service\":\"soak-{}\",\"level\":\"{}\",\"message\":\"soak batch {n} event {i}\"}}\n", n % 5, ["info", "warn", "error"][(i % 3) as usize]))
                    .collect();
                sent.fetch_add(batch, Ordering::SeqCst);
                let (acked, errors, urls, http) =
                    (acked.clone(), errors.clone(), urls.clone(), http.clone());
                tasks.push(tokio::spawn(async move {
                    let key = format!("soak-{n}");
                    let mut attempt = 0u64;
                    loop {
                        let url = {
                            let u = urls.lock().unwrap();
                            u[((n + attempt) % u.len() as u64) as usize].clone()
                        };
                        attempt += 1;
                        let r = http
                            .post(format!("{url}/logs"))
                            .header("content-type", "application/x-ndjson")
                            .header("idempotency-key", &key)
                            .body(body.clone())
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == 202 => {
                                acked.fetch_add(batch, Ordering::SeqCst);
                                break;
                            }
                            Ok(r) => {
                                let code = r.status().as_u16();
                                if code >= 500 {
                                    *errors
                                        .lock()
                                        .unwrap()
                                        .entry(format!("HTTP {code}"))
                                        .or_default() += 1;
                                }
                            }
                            Err(_) => {
                                *errors
                                    .lock()
                                    .unwrap()
                                    .entry("connection error".into())
                                    .or_default() += 1
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(100 * attempt.min(10))).await;
                    }
                    drop(permit);
                }));
                tasks.retain(|t| !t.is_finished());
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    // Chaos.
    let total = opts.duration;
    let mut next_kill = opts.kill_every;
    let mut did_nats = false;
    let mut did_redis = false;
    let mut did_ingest = false;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let log = |report: &mut SoakReport, msg: String| {
        report
            .log
            .push(format!("{:>6.1}s  {msg}", started.elapsed().as_secs_f64()));
    };
    let load_start = Instant::now();
    while load_start.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = load_start.elapsed();
        if t >= next_kill && !processors.is_empty() {
            next_kill += opts.kill_every;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % processors.len() as u64) as usize;
            let mut victim = processors.remove(i);
            let rss_end = rss_mb(&victim.child);
            let _ = victim.child.start_kill(); // SIGKILL
            let _ = victim.child.wait().await;
            rss.entry(victim.name.clone()).and_modify(|r| r.1 = rss_end);
            report.processor_kills += 1;
            log(&mut report, format!("SIGKILL {}", victim.name));
            let name = format!("processor-r{}", report.processor_kills);
            let p = spawn(
                &opts.bin_dir,
                &name,
                "logjet-processor",
                &[nats_env.clone(), redis_env.clone()],
            )
            .await;
            rss.insert(name.clone(), (p.rss_start, 0.0));
            processors.push(p);
        }
        if !did_nats && t >= total.mul_f64(0.3) {
            did_nats = true;
            log(&mut report, "restart nats-server (same store)".into());
            nats.restart().await;
        }
        if !did_redis && t >= total.mul_f64(0.5) {
            did_redis = true;
            log(
                &mut report,
                "restart redis-server (empty: no persistence)".into(),
            );
            redis.restart().await;
            let out = Command::new(opts.bin_dir.join("logjet-processor"))
                .arg("rebuild")
                .env("LOGJET_NATS_URL", nats.url())
                .env("LOGJET_REDIS_URL", redis.url())
                .env("RUST_LOG", "error")
                .output()
                .await
                .expect("rebuild runs");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                out.status.success(),
                "rebuild failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            report.rebuild_events = text
                .split(", ")
                .find_map(|part| {
                    part.strip_suffix(" events applied")
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(0);
            log(
                &mut report,
                format!("rebuilt Redis from the stream: {}", text.trim()),
            );
        }
        if !did_ingest && t >= total.mul_f64(0.7) {
            did_ingest = true;
            let mut ing = ingests.lock().await;
            let end = rss_mb(&ing[0].child);
            rss.entry(ing[0].name.clone()).and_modify(|r| r.1 = end);
            log(
                &mut report,
                "SIGTERM ingest-a (traffic continues through ingest-b)".into(),
            );
            // Clients learn of the second ingest only: as a load balancer would, once the first
            // one's readiness fails.
            sigterm(&ing[0].child);
            let _ = tokio::time::timeout(Duration::from_secs(30), ing[0].child.wait()).await;
            urls.lock().unwrap().retain(|u| *u != ing[0].url);
            let a = spawn(
                &opts.bin_dir,
                "ingest-a2",
                "logjet-ingest",
                std::slice::from_ref(&nats_env),
            )
            .await;
            rss.insert(a.name.clone(), (a.rss_start, 0.0));
            urls.lock().unwrap().push(a.url.clone());
            ing[0] = a;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let _ = loader.await;

    // Drain: the consumer's lag reaches zero, then the counts settle.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut counted = 0;
    let mut last_change = Instant::now();
    loop {
        let s: serde_json::Value = match http
            .get(format!("{}/stats/summary", query.url))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        let n = s["total"].as_u64().unwrap_or(counted);
        if n != counted {
            counted = n;
            last_change = Instant::now();
        }
        let acked_now = acked.load(Ordering::SeqCst);
        if counted == acked_now && last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
        if Instant::now() > deadline
            || (counted >= acked_now && last_change.elapsed() > Duration::from_secs(40))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.sent = sent.load(Ordering::SeqCst);
    report.acknowledged = acked.load(Ordering::SeqCst);
    report.counted = counted;
    report.duplicates = counted.saturating_sub(report.acknowledged);
    report.lost = report.acknowledged.saturating_sub(counted);
    report.errors = errors.lock().unwrap().clone();
    for p in ingests
        .lock()
        .await
        .iter()
        .chain([&query])
        .chain(processors.iter())
    {
        let end = rss_mb(&p.child);
        rss.entry(p.name.clone()).and_modify(|r| r.1 = end);
    }
    report.rss = rss;
    report
}
