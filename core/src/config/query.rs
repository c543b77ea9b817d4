//! Configuration of `logjet-query`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AlertSettings, ApiSettings, ArchiveReadSettings, ArchiveSettings, ConfigError,
    DEFAULT_DRAIN_TIMEOUT, LokiSettings, RedisSentinelSettings, ServiceConfig, positive,
    positive_duration, validate_drain_timeout, validate_nats_url, validate_redis_url,
    validate_stream_name,
};
use crate::telemetry::LogFormat;

/// `logjet-query`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryConfig {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub redis_url: String,
    #[serde(flatten)]
    pub redis_sentinel: RedisSentinelSettings,
    pub nats_url: String,
    pub stream: String,
    #[serde(flatten)]
    pub api: ApiSettings,
    /// The processors' consumer, whose lag `/stats/pipeline` reports.
    pub consumer: String,
    /// Window covered by `/stats/summary` and the longest time series (the stream's max age).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Events one query may decode before it returns what it has with a cursor.
    pub max_scan_events: usize,
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// Live tails open at once.
    pub max_tails: usize,
    /// Events buffered per tail before a client that does not read is dropped.
    pub tail_buffer: usize,
    #[serde(flatten)]
    pub archive: ArchiveSettings,
    #[serde(flatten)]
    pub archive_read: ArchiveReadSettings,
    #[serde(flatten)]
    pub loki: LokiSettings,
    #[serde(flatten)]
    pub alerts: AlertSettings,
    /// Largest accepted request body (a query), bytes; more is refused with 413.
    pub max_body_bytes: usize,
    /// After SIGTERM, the service stops within this: in-flight requests still waiting on a
    /// dependency are answered 503 just before it, unfinished work is left for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            listen: "0.0.0.0:8001".parse().expect("static address"),
            log_format: LogFormat::Json,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_sentinel: RedisSentinelSettings::default(),
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: "LOGS".into(),
            api: ApiSettings::default(),
            consumer: "processor".into(),
            retention: Duration::from_secs(24 * 3600),
            max_scan_events: 500_000,
            query_timeout: Duration::from_secs(10),
            max_concurrent_requests: 256,
            max_tails: 256,
            tail_buffer: 1024,
            archive: ArchiveSettings::default(),
            archive_read: ArchiveReadSettings::default(),
            loki: LokiSettings::default(),
            alerts: AlertSettings::default(),
            max_body_bytes: 1024 * 1024,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl ServiceConfig for QueryConfig {
    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_redis_url("redis_url", &self.redis_url)?;
        self.redis_sentinel.validate(&self.redis_url)?;
        validate_nats_url("nats_url", &self.nats_url)?;
        validate_stream_name("stream", &self.stream)?;
        validate_stream_name("consumer", &self.consumer)?;
        self.api.validate()?;
        positive_duration("retention", self.retention)?;
        positive("max_scan_events", self.max_scan_events as u64)?;
        positive_duration("query_timeout", self.query_timeout)?;
        positive(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
        )?;
        self.archive.validate()?;
        self.archive_read.validate()?;
        self.loki.validate()?;
        self.alerts.validate()?;
        positive("max_body_bytes", self.max_body_bytes as u64)?;
        validate_drain_timeout(self.drain_timeout)
    }
}
