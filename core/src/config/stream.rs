//! The LOGS stream's settings, shared by every service that may create it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, between, validate_stream_name};

/// `LOGJET_STREAM_COMPRESSION`: how nats-server stores the stream's message blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamCompression {
    /// S2 on sealed blocks (nats-server 2.10+; older servers ignore it): ~6× less disk for
    /// log lines, for nats-server CPU (docs/archive.md, "The stream").
    #[default]
    S2,
    None,
}

/// Settings of the LOGS stream, shared by every service that may create it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Stream name.
    pub stream: String,
    /// Events older than this are dropped from the stream and refused at ingest.
    #[serde(with = "humantime_serde")]
    pub stream_max_age: Duration,
    /// Upper bound of the stream's size on disk, bytes; old messages are discarded first.
    pub stream_max_bytes: i64,
    pub stream_replicas: usize,
    /// Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate.
    #[serde(with = "humantime_serde")]
    pub stream_duplicate_window: Duration,
    /// Compression of the stream's blocks on the server (every service that manages the
    /// stream must agree, or each start switches it).
    pub stream_compression: StreamCompression,
    /// Dead-letter stream for payloads that can never be parsed.
    pub dlq_stream: String,
    /// This service creates the streams and brings them to these settings. `false`: it only
    /// waits for them to exist (a NATS user without stream-admin rights: ingest in the
    /// manifests, docs/security.md).
    pub manage_streams: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            stream: "LOGS".into(),
            stream_max_age: Duration::from_secs(24 * 3600),
            stream_max_bytes: 10 * 1024 * 1024 * 1024,
            stream_replicas: 1,
            stream_duplicate_window: Duration::from_secs(120),
            stream_compression: StreamCompression::S2,
            dlq_stream: "LOGS_DLQ".into(),
            manage_streams: true,
        }
    }
}

impl StreamSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        validate_stream_name("stream", &self.stream)?;
        validate_stream_name("dlq_stream", &self.dlq_stream)?;
        if self.stream_max_age < Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                "stream_max_age",
                "must be at least 1m",
            ));
        }
        if self.stream_max_bytes == 0 || self.stream_max_bytes < -1 {
            return Err(ConfigError::invalid(
                "stream_max_bytes",
                "must be a positive byte count, or -1 for unlimited",
            ));
        }
        between("stream_replicas", self.stream_replicas, 1, 5)?;
        if self.stream_duplicate_window.is_zero()
            || self.stream_duplicate_window > self.stream_max_age
        {
            return Err(ConfigError::invalid(
                "stream_duplicate_window",
                "must be positive and not longer than stream_max_age",
            ));
        }
        Ok(())
    }
}
