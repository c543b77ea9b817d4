//! Configuration of `logjet-processor`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ConfigError, DEFAULT_DRAIN_TIMEOUT, RedisSentinelSettings, RedisWaitSettings, ServiceConfig,
    StreamSettings, between, positive_duration, validate_drain_timeout, validate_nats_url,
    validate_redis_url, validate_stream_name,
};
use crate::telemetry::LogFormat;

/// `logjet-processor`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// Threads of the async runtime. One by default: a replica applies one batch at a time, so
    /// more threads only move its buffers between threads, where the allocator cannot reuse
    /// them at once (the bench's peak RSS 42 MB with two, 27 MB with one, and 4 % less CPU per
    /// event: docs/benchmarks.md). Scale with replicas.
    pub worker_threads: usize,
    pub nats_url: String,
    pub redis_url: String,
    #[serde(flatten)]
    pub redis_sentinel: RedisSentinelSettings,
    #[serde(flatten)]
    pub redis_wait: RedisWaitSettings,
    #[serde(flatten)]
    pub stream: StreamSettings,
    /// Durable consumer shared by every replica.
    pub consumer: String,
    /// Messages fetched and applied together: one Redis round trip per batch. This is one
    /// replica's in-flight window.
    pub fetch_batch: usize,
    /// Bytes of messages buffered and applied at once; bounds memory when messages are big.
    pub fetch_max_bytes: usize,
    /// How long a fetch waits for messages before returning what it has.
    #[serde(with = "humantime_serde")]
    pub fetch_expires: Duration,
    /// How long a small batch waits for more messages before it is applied: fewer, larger
    /// Redis chunks at low and steady rates, which is what keeps searches fast (a search probes
    /// every chunk's Bloom filter). At 10,000 ev/s (docs/benchmarks.md, the linger curve):
    /// 20 ms gives sent→queryable p99 34 ms and 3.7 chunks per 1,000 events; 0 gives 14 ms but
    /// 10.8 chunks (the bench's needle search ~5× slower), 50 ms 66 ms and 1.9 chunks.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Unacknowledged messages the consumer hands out across all replicas.
    pub max_ack_pending: i64,
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    pub max_deliver: i64,
    /// Delay before a nak'ed message (transient failure) is delivered again.
    #[serde(with = "humantime_serde")]
    pub nak_delay: Duration,
    /// How long recent events stay searchable in Redis.
    #[serde(with = "humantime_serde")]
    pub recent_retention: Duration,
    /// How often consumer lag is read.
    #[serde(with = "humantime_serde")]
    pub lag_interval: Duration,
    /// After SIGTERM, the service stops within this: in-flight requests still waiting on a
    /// dependency are answered 503 just before it, unfinished work is left for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            listen: "0.0.0.0:9100".parse().expect("static address"),
            log_format: LogFormat::Json,
            worker_threads: 1,
            nats_url: "nats://127.0.0.1:4222".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_sentinel: RedisSentinelSettings::default(),
            redis_wait: RedisWaitSettings::default(),
            stream: StreamSettings::default(),
            consumer: "processor".into(),
            fetch_batch: 256,
            fetch_max_bytes: 2 * 1024 * 1024,
            fetch_expires: Duration::from_millis(500),
            batch_linger: Duration::from_millis(20),
            max_ack_pending: 20_000,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            nak_delay: Duration::from_secs(2),
            recent_retention: Duration::from_secs(3600),
            lag_interval: Duration::from_secs(2),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl ServiceConfig for ProcessorConfig {
    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn worker_threads(&self) -> Option<usize> {
        Some(self.worker_threads)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_nats_url("nats_url", &self.nats_url)?;
        validate_redis_url("redis_url", &self.redis_url)?;
        self.redis_sentinel.validate(&self.redis_url)?;
        self.redis_wait.validate()?;
        self.stream.validate()?;
        validate_stream_name("consumer", &self.consumer)?;
        between("worker_threads", self.worker_threads, 1, 256)?;
        between("fetch_batch", self.fetch_batch, 1, 10_000)?;
        if self.fetch_max_bytes < 1024 * 1024 {
            return Err(ConfigError::invalid(
                "fetch_max_bytes",
                "must be at least 1 MiB (one NATS message)",
            ));
        }
        positive_duration("fetch_expires", self.fetch_expires)?;
        if self.batch_linger > Duration::from_secs(1) {
            return Err(ConfigError::invalid("batch_linger", "must be at most 1s"));
        }

        if self.max_ack_pending < self.fetch_batch as i64 {
            return Err(ConfigError::invalid(
                "max_ack_pending",
                "must be at least fetch_batch, or no replica can fetch a full batch",
            ));
        }
        positive_duration("ack_wait", self.ack_wait)?;
        if self.max_deliver < 2 {
            return Err(ConfigError::invalid(
                "max_deliver",
                "must be at least 2, or a crash would lose the message",
            ));
        }
        positive_duration("recent_retention", self.recent_retention)?;
        if self.recent_retention > self.stream.stream_max_age {
            return Err(ConfigError::invalid(
                "recent_retention",
                "must not exceed stream_max_age",
            ));
        }
        positive_duration("lag_interval", self.lag_interval)?;
        validate_drain_timeout(self.drain_timeout)
    }
}
