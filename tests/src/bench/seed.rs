//! The seed-style API (`tests/seed_api/seed_api.py`: FastAPI, uvicorn with 2 workers, a pydantic
//! model, redis-py asyncio LPUSH; what the platform logjet replaces ran) under the same
//! one-event-per-POST load as logjet's phase, so the bench says how many times logjet's rate it
//! is in the same run (issue 17: ≥ 6×). Its venv ($LOGJET_TOOLS/seedapi) is installed by
//! `scripts/bench.sh`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::cpu::cpu_secs;
use crate::bench::lines::LineKind;
use crate::bench::phases::post_singles;
use crate::servers::{RedisServer, free_port};

/// What the seed-style API did under the load.
pub struct SeedPhase {
    pub events: u64,
    /// Events answered per second (202 after its LPUSH: all it does).
    pub accepted: f64,
    /// Latencies, ms, sorted.
    pub latencies: Vec<f64>,
    /// CPU µs per event of the uvicorn processes (master and workers) and of redis-server.
    pub api_us: f64,
    pub redis_us: f64,
}

/// The uvicorn master and its worker processes.
fn process_tree(master: u32) -> Vec<u32> {
    let mut pids = vec![master];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(master) {
            pids.push(pid);
        }
    }
    pids
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_secs(*p)).sum()
}

/// Stops uvicorn as an operator would (SIGTERM: the master stops its workers).
struct Uvicorn(Child);

impl Drop for Uvicorn {
    fn drop(&mut self) {
        // A bench tool: std has no safe call to send SIGTERM.
        #[allow(unsafe_code)]
        // SAFETY: kill(2) with a pid this process spawned and still owns (not yet reaped).
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// Runs `events` realistic events one per POST over `conns` concurrent requests of `client`
/// against the seed-style API, after a warm-up of 2,000.
pub async fn run(client: &reqwest::Client, events: u64, conns: usize) -> Result<SeedPhase, String> {
    let uvicorn = crate::tools::tools_dir().join("seedapi/bin/uvicorn");
    if !uvicorn.exists() {
        return Err(format!(
            "{} is missing (./scripts/bench.sh installs it)",
            uvicorn.display()
        ));
    }
    let redis = RedisServer::start().await;
    let port = free_port();
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seed_api");
    let child = Command::new(&uvicorn)
        .args(["seed_api:app", "--app-dir"])
        .arg(&app_dir)
        .args(["--workers", "2", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--no-access-log", "--log-level", "warning"])
        .env("REDIS_URL", redis.url())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", uvicorn.display()))?;
    let api = Uvicorn(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = client.get(format!("{base}/health")).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the seed-style API did not answer /health within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("{base}/logs");
    let line = |i: u64| LineKind::Realistic.line(i, "seed");
    post_singles(client, &url, 2000, conns, line).await?;
    let pids = process_tree(api.0.id());
    let redis_pid = redis.pid().ok_or("redis-server has no pid")?;
    let (api_before, redis_before) = (cpu_of(&pids), cpu_secs(redis_pid).unwrap_or(0.0));
    let start = Instant::now();
    let mut latencies = post_singles(client, &url, events, conns, line).await?;
    let secs = start.elapsed().as_secs_f64();
    let us = |cpu: f64| cpu * 1e6 / events as f64;
    let phase = SeedPhase {
        events,
        accepted: events as f64 / secs,
        latencies: {
            latencies.sort_by(f64::total_cmp);
            latencies
        },
        api_us: us(cpu_of(&pids) - api_before),
        redis_us: us(cpu_secs(redis_pid).unwrap_or(0.0) - redis_before),
    };
    drop(api);
    Ok(phase)
}
