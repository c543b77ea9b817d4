//! The whole pipeline in one test process: real NATS and Redis, ingest, N processors and query
//! running in-process on port 0, each stoppable on its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use logjet_core::config::{ApiSettings, AuthSetting, IngestConfig, ProcessorConfig, QueryConfig};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::servers::{NatsServer, RedisServer};

/// A service running in this process.
pub struct Svc {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl Svc {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful: cancel and wait.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
    }

    /// Abrupt: the task is dropped wherever it is, nothing acked or flushed.
    pub fn abort(self) {
        self.handle.abort();
    }
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("static address")
}

/// Tests talk to the services without keys (the auth tests set their own) and unthrottled.
pub fn open_api() -> ApiSettings {
    ApiSettings {
        auth: AuthSetting::Off,
        rate_limit_per_second: 0,
        ..ApiSettings::default()
    }
}

pub fn ingest_config(nats: &str) -> IngestConfig {
    IngestConfig {
        listen: local(),
        nats_url: nats.to_string(),
        api: open_api(),
        ..IngestConfig::default()
    }
}

pub fn processor_config(nats: &str, redis: &str) -> ProcessorConfig {
    ProcessorConfig {
        listen: local(),
        nats_url: nats.to_string(),
        redis_url: redis.to_string(),
        ack_wait: Duration::from_secs(3),
        nak_delay: Duration::from_millis(300),
        fetch_expires: Duration::from_millis(500),
        lag_interval: Duration::from_millis(500),
        ..ProcessorConfig::default()
    }
}

pub fn query_config(nats: &str, redis: &str) -> QueryConfig {
    QueryConfig {
        listen: local(),
        nats_url: nats.to_string(),
        redis_url: redis.to_string(),
        api: open_api(),
        // Tests that read an archive set their own.
        archive: logjet_core::config::ArchiveSettings {
            archive_url: "off".into(),
            ..Default::default()
        },
        ..QueryConfig::default()
    }
}

pub async fn start_ingest(cfg: IngestConfig) -> Svc {
    let svc = logjet_ingest::Ingest::build(cfg)
        .await
        .expect("ingest builds");
    let addr = svc.local_addr();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        svc.run(token).await.expect("ingest runs");
    });
    Svc {
        addr,
        shutdown,
        handle,
    }
}

pub async fn start_processor(cfg: ProcessorConfig) -> Svc {
    let svc = logjet_processor::Processor::build(cfg)
        .await
        .expect("processor builds");
    let addr = svc.local_addr();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        svc.run(token).await.expect("processor runs");
    });
    Svc {
        addr,
        shutdown,
        handle,
    }
}

pub async fn start_query(cfg: QueryConfig) -> Svc {
    let svc = logjet_query::QueryService::build(cfg)
        .await
        .expect("query builds");
    let addr = svc.local_addr();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move {
        svc.run(token).await.expect("query runs");
    });
    Svc {
        addr,
        shutdown,
        handle,
    }
}

/// NATS, Redis, ingest, processors and query.
pub struct Platform {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub ingest: Svc,
    pub query: Svc,
    pub processors: Vec<Svc>,
    pub http: reqwest::Client,
}

impl Platform {
    pub async fn start(processors: usize) -> Platform {
        Platform::start_with(processors, false).await
    }

    /// `persistent_redis`: Redis keeps its data across a kill and restart.
    pub async fn start_with(processors: usize, persistent_redis: bool) -> Platform {
        Platform::start_configured(processors, persistent_redis, |_| {}).await
    }

    /// [`Platform::start_with`], with ingest's config changed by `ingest`.
    pub async fn start_configured(
        processors: usize,
        persistent_redis: bool,
        ingest: impl FnOnce(&mut IngestConfig),
    ) -> Platform {
        crate::init_logging();
        let nats = NatsServer::start().await;
        let redis = if persistent_redis {
            RedisServer::start_persistent().await
        } else {
            RedisServer::start().await
        };
        let mut ingest_cfg = ingest_config(&nats.url());
        ingest(&mut ingest_cfg);
        let ingest = start_ingest(ingest_cfg).await;
        let query = start_query(query_config(&nats.url(), &redis.url())).await;
        let mut p = Platform {
            nats,
            redis,
            ingest,
            query,
            processors: Vec::new(),
            http: crate::http_client(),
        };
        for _ in 0..processors {
            p.add_processor().await;
        }
        p.wait_ready(&p.ingest.url()).await;
        p
    }

    pub fn processor_config(&self) -> ProcessorConfig {
        processor_config(&self.nats.url(), &self.redis.url())
    }

    pub async fn add_processor(&mut self) {
        self.add_processor_with(self.processor_config()).await;
    }

    pub async fn add_processor_with(&mut self, cfg: ProcessorConfig) {
        let svc = start_processor(cfg).await;
        self.wait_ready(&svc.url()).await;
        self.processors.push(svc);
    }

    pub async fn wait_ready(&self, base: &str) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("{base} not ready after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn ingest_url(&self) -> String {
        self.ingest.url()
    }

    pub fn query_url(&self) -> String {
        self.query.url()
    }

    pub async fn summary(&self) -> Value {
        self.http
            .get(format!("{}/stats/summary", self.query_url()))
            .send()
            .await
            .expect("summary request")
            .json()
            .await
            .expect("summary json")
    }

    /// Waits until the summary counts `total` events (and stays there), failing on overshoot.
    pub async fn wait_for_total(&self, total: u64, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let s = self.summary().await;
            let n = s["total"].as_u64().unwrap_or(0);
            assert!(
                n <= total,
                "counted {n} events, more than the {total} sent: {s}"
            );
            if n == total {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("counted {n} of {total} events after {timeout:?}: {s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn query(&self, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/logs/query", self.query_url()))
            .json(&body)
            .send()
            .await
            .expect("query request");
        assert!(r.status().is_success(), "query failed: {}", r.status());
        r.json().await.expect("query json")
    }

    /// POSTs a body to ingest.
    pub async fn post(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/logs", self.ingest_url()))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("post /logs")
    }

    /// One series' value summed over every processor's /metrics.
    pub async fn processors_metric(&self, series: &str) -> u64 {
        let mut sum = 0;
        for svc in &self.processors {
            sum += metric(&self.http, &svc.url(), series).await;
        }
        sum
    }

    pub async fn nats_client(&self) -> async_nats::Client {
        async_nats::connect(self.nats.url())
            .await
            .expect("nats connect")
    }
}

/// A metric sample's name and labels, parsed from `name{k="v",...}` (labels optional).
fn parse_series(series: &str) -> (String, Vec<(String, String)>) {
    let (name, rest) = series.split_once('{').unwrap_or((series, ""));
    let labels = rest
        .trim_end_matches('}')
        .split("\",")
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim_matches('"').to_string()))
        })
        .collect();
    (name.to_string(), labels)
}

/// Sum of the samples of `series` (a name, optionally with `{label="value",...}` that must all
/// match) in a service's /metrics; 0 when there is none.
pub async fn metric(http: &reqwest::Client, base: &str, series: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text");
    metric_in(&text, series)
}

/// [`metric`] of a /metrics page already fetched (to compare two scrapes).
pub fn metric_in(text: &str, series: &str) -> u64 {
    let (want_name, want_labels) = parse_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = parse_series(series);
            let matches = name == want_name && want_labels.iter().all(|w| labels.contains(w));
            matches.then(|| value.parse::<f64>().unwrap_or(0.0) as u64)
        })
        .sum()
}
