//! Configuration of `logjet-ingest`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ApiSettings, ConfigError, DEFAULT_DRAIN_TIMEOUT, IngestMemorySettings, ServiceConfig,
    StreamSettings, positive, positive_duration, validate_drain_timeout, validate_nats_url,
};
use crate::telemetry::LogFormat;

/// `logjet-ingest`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub nats_url: String,
    #[serde(flatten)]
    pub stream: StreamSettings,
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Largest accepted request body after decompression, bytes.
    pub max_body_bytes: usize,
    /// Largest accepted line (or JSON event), bytes.
    pub max_line_bytes: usize,
    /// How long a request may wait for JetStream's acknowledgements before answering 503.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// `Retry-After` sent with a 503.
    pub retry_after_secs: u64,
    /// Requests served at once; more wait in line, briefly, then get 503.
    pub max_concurrent_requests: usize,
    /// Bytes of request bodies held at once (`ingest_memory_budget`, `…_percent`).
    #[serde(flatten)]
    pub memory: IngestMemorySettings,
    /// After SIGTERM, the service stops within this: in-flight requests still waiting on a
    /// dependency are answered 503 just before it, unfinished work is left for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: "0.0.0.0:8000".parse().expect("static address"),
            log_format: LogFormat::Json,
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: StreamSettings::default(),
            api: ApiSettings::default(),
            max_body_bytes: 16 * 1024 * 1024,
            max_line_bytes: crate::parse::MAX_LINE_BYTES,
            publish_timeout: Duration::from_secs(5),
            retry_after_secs: 2,
            max_concurrent_requests: 1024,
            memory: IngestMemorySettings::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl ServiceConfig for IngestConfig {
    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_nats_url("nats_url", &self.nats_url)?;
        self.stream.validate()?;
        self.api.validate()?;
        positive("max_body_bytes", self.max_body_bytes as u64)?;
        positive("max_line_bytes", self.max_line_bytes as u64)?;
        if self.max_line_bytes > self.max_body_bytes {
            return Err(ConfigError::invalid(
                "max_line_bytes",
                "must not exceed max_body_bytes",
            ));
        }
        positive_duration("publish_timeout", self.publish_timeout)?;
        positive(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
        )?;
        self.memory.validate()?;
        validate_drain_timeout(self.drain_timeout)
    }
}
