//! The services as release-binary processes for the benchmark, and the waits on them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::bench::cpu::Watched;
use crate::servers::{NatsServer, RedisServer, free_port};

pub struct Service {
    pub name: &'static str,
    pub url: String,
    pub child: Child,
}

impl Service {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn peak_rss_mb(&self) -> f64 {
        let Some(pid) = self.child.id() else {
            return 0.0;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

pub async fn spawn_service(
    bin_dir: &Path,
    name: &'static str,
    binary: &str,
    env: &[(&str, String)],
) -> Service {
    let port = free_port();
    let mut cmd = Command::new(bin_dir.join(binary));
    cmd.env("LOGJET_LISTEN", format!("127.0.0.1:{port}"))
        // The benchmark measures the pipeline, not the rate limiter.
        .env("LOGJET_AUTH", "off")
        .env("LOGJET_RATE_LIMIT_PER_SECOND", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Ok(extra) = std::env::var("BENCH_SERVICE_ENV") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "starting {}: {e} (run scripts/bench.sh, it builds them)",
            bin_dir.join(binary).display()
        )
    });
    Service {
        name,
        url: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// POSTs one NDJSON body to ingest's `url`; anything but 202 fails the bench with ingest's answer.
pub async fn post_ndjson_accepted(http: &reqwest::Client, url: &str, body: String) {
    let r = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
}

pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{url} not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn total(http: &reqwest::Client, query: &str) -> u64 {
    let r: Value = http
        .get(format!("{query}/stats/summary"))
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("summary json");
    r["total"].as_u64().unwrap_or(0)
}

/// Waits until the summary shows `target` events; returns when it did.
pub async fn wait_counted(http: &reqwest::Client, query: &str, target: u64) -> Instant {
    let start = Instant::now();
    loop {
        let n = total(http, query).await;
        assert!(n <= target, "counted {n} > {target}: duplicates");
        if n == target {
            return Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {n} of {target} counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A whole pipeline of its own: nats-server, redis-server, ingest, query and `processors`
/// processors from `bin_dir`.
pub struct Stack {
    pub nats: NatsServer,
    pub redis: RedisServer,
    /// ingest, query, then the processors.
    pub services: Vec<Service>,
}

impl Stack {
    pub async fn start(http: &reqwest::Client, bin_dir: &Path, processors: usize) -> Stack {
        let nats = NatsServer::start().await;
        let redis = RedisServer::start().await;
        let services = start_services(http, bin_dir, &nats, &redis, processors, &[]).await;
        Stack {
            nats,
            redis,
            services,
        }
    }

    pub fn ingest(&self) -> &str {
        &self.services[0].url
    }

    pub fn query(&self) -> &str {
        &self.services[1].url
    }

    /// Every process of the pipeline and the load generator (this process).
    pub fn watched(&self) -> Watched {
        let mut w = Watched::default();
        for s in &self.services {
            w.add(s.name, s.pid());
        }
        w.add("nats-server", self.nats.pid());
        w.add("redis-server", self.redis.pid());
        w.add("load generator", Some(std::process::id()));
        w
    }
}

pub async fn start_services(
    http: &reqwest::Client,
    bin_dir: &Path,
    nats: &NatsServer,
    redis: &RedisServer,
    processors: usize,
    processor_env: &[(&str, String)],
) -> Vec<Service> {
    let (nats_url, redis_url) = (nats.url(), redis.url());
    let mut services = vec![
        spawn_service(
            bin_dir,
            "ingest",
            "logjet-ingest",
            &[("LOGJET_NATS_URL", nats_url.clone())],
        )
        .await,
        spawn_service(
            bin_dir,
            "query",
            "logjet-query",
            &[
                ("LOGJET_REDIS_URL", redis_url.clone()),
                ("LOGJET_NATS_URL", nats_url.clone()),
            ],
        )
        .await,
    ];
    for _ in 0..processors {
        services.push(
            spawn_service(
                bin_dir,
                "processor",
                "logjet-processor",
                &[
                    &[
                        ("LOGJET_NATS_URL", nats_url.clone()),
                        ("LOGJET_REDIS_URL", redis_url.clone()),
                    ],
                    processor_env,
                ]
                .concat(),
            )
            .await,
        );
    }
    for s in &services {
        wait_ready(http, &s.url).await;
    }
    services
}
