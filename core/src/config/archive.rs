//! Configuration of the archive tier: the settings archiver and query share, and the
//! archiver's own config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ConfigError, DEFAULT_DRAIN_TIMEOUT, ServiceConfig, StreamSettings, between, positive,
    positive_duration, validate_drain_timeout, validate_nats_url, validate_stream_name,
};
use crate::archive::{ArchiveUrl, RetentionRules};
use crate::telemetry::LogFormat;

/// Where the archive is and how long it keeps events (archiver and query).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveSettings {
    /// `s3://bucket/prefix`, `file:///abs/path`, `file://relative/path` or `off`.
    pub archive_url: String,
    /// A default and per-service rules, first match wins: `7d`, `payments=30d,debug-*=1d,7d`.
    pub retention_rules: String,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            archive_url: "file://.data/archive".into(),
            retention_rules: "7d".into(),
        }
    }
}

impl ArchiveSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.archive_url()?;
        self.retention_rules()?;
        Ok(())
    }

    /// The parsed `archive_url`.
    pub fn archive_url(&self) -> Result<ArchiveUrl, ConfigError> {
        self.archive_url
            .parse()
            .map_err(|e: crate::archive::ArchiveUrlError| {
                ConfigError::invalid("archive_url", e.to_string())
            })
    }

    /// The parsed `retention_rules`.
    pub fn retention_rules(&self) -> Result<RetentionRules, ConfigError> {
        self.retention_rules
            .parse()
            .map_err(|e: crate::archive::RetentionError| {
                ConfigError::invalid("retention_rules", e.to_string())
            })
    }
}

/// `logjet-archiver`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiverConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub nats_url: String,
    #[serde(flatten)]
    pub stream: StreamSettings,
    /// Durable consumer shared by every archiver replica (never the processors').
    pub consumer: String,
    #[serde(flatten)]
    pub archive: ArchiveSettings,
    /// A segment is cut this long after its first message at the latest (wall clock).
    #[serde(with = "humantime_serde")]
    pub segment_max_age: Duration,
    /// …or when it holds this many events…
    pub segment_max_events: u64,
    /// …or this many bytes of canonical NDJSON.
    pub segment_max_bytes: u64,
    /// Where open segments are spooled (Parquet files being written); the system's temporary
    /// directory when unset.
    pub spool_dir: Option<PathBuf>,
    /// Memory all open segments may buffer together; past it the largest is cut early.
    pub max_buffered_bytes: u64,
    /// Messages fetched at once.
    pub fetch_batch: usize,
    /// Unacknowledged messages the consumer hands out across all replicas: messages of open
    /// segments count until their segment is committed, so a replica cuts early as it nears
    /// its share.
    pub max_ack_pending: i64,
    /// Redelivery timeout; progress acks keep open segments' messages held, so it only has to
    /// cover one upload.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Deliveries before JetStream gives a message up; -1 (the default) never does: archiving
    /// fails only while the store is down, and then the message must wait, not be dropped.
    pub max_deliver: i64,
    /// First and longest wait between upload retries (doubling in between).
    #[serde(with = "humantime_serde")]
    pub upload_retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub upload_retry_max: Duration,
    /// How often a replica deletes segments past retention.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// A segment object without an index object is deleted once it is this old (an upload
    /// whose commit never happened).
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// After SIGTERM, the service stops within this: open segments are published if the store
    /// answers in time, otherwise left unacknowledged for redelivery.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        ArchiverConfig {
            listen: "0.0.0.0:9101".parse().expect("static address"),
            log_format: LogFormat::Json,
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: StreamSettings::default(),
            consumer: "archiver".into(),
            archive: ArchiveSettings::default(),
            segment_max_age: Duration::from_secs(300),
            segment_max_events: 1_000_000,
            segment_max_bytes: 256 << 20,
            spool_dir: None,
            max_buffered_bytes: 512 << 20,
            fetch_batch: 1_000,
            max_ack_pending: 100_000,
            ack_wait: Duration::from_secs(60),
            max_deliver: -1,
            upload_retry_min: Duration::from_millis(200),
            upload_retry_max: Duration::from_secs(30),
            retention_interval: Duration::from_secs(600),
            orphan_grace: Duration::from_secs(3600),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl ArchiverConfig {
    /// The spool directory to use.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

impl ServiceConfig for ArchiverConfig {
    fn log_format(&self) -> LogFormat {
        self.log_format
    }

    fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_nats_url("nats_url", &self.nats_url)?;
        self.stream.validate()?;
        validate_stream_name("consumer", &self.consumer)?;
        if self.consumer == "processor" {
            return Err(ConfigError::invalid(
                "consumer",
                "must not be the processors' consumer: sharing it would split the stream between processors and archivers",
            ));
        }
        self.archive.validate()?;
        if !self.archive.archive_url()?.is_enabled() {
            return Err(ConfigError::invalid(
                "archive_url",
                "the archiver needs an archive (s3://bucket/prefix or file://dir), not `off`",
            ));
        }
        positive_duration("segment_max_age", self.segment_max_age)?;
        if self.segment_max_age + self.ack_wait >= self.stream.stream_max_age {
            return Err(ConfigError::invalid(
                "segment_max_age",
                "plus ack_wait must stay below stream_max_age, or a crash could lose messages the stream no longer holds",
            ));
        }
        positive("segment_max_events", self.segment_max_events)?;
        if !(1 << 20..=4 << 30).contains(&self.segment_max_bytes) {
            return Err(ConfigError::invalid(
                "segment_max_bytes",
                "must be between 1 MiB and 4 GiB",
            ));
        }
        if self
            .spool_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid("spool_dir", "must not be empty"));
        }
        if self.max_buffered_bytes < 64 << 20 {
            return Err(ConfigError::invalid(
                "max_buffered_bytes",
                "must be at least 64 MiB (an open segment buffers up to two row groups)",
            ));
        }
        between("fetch_batch", self.fetch_batch, 1, 10_000)?;
        if self.max_ack_pending < self.fetch_batch as i64 {
            return Err(ConfigError::invalid(
                "max_ack_pending",
                "must be at least fetch_batch, or no replica can fetch a full batch",
            ));
        }
        if self.ack_wait < Duration::from_secs(10) {
            return Err(ConfigError::invalid(
                "ack_wait",
                "must be at least 10s (it covers one segment upload)",
            ));
        }
        if self.max_deliver != -1 && self.max_deliver < 2 {
            return Err(ConfigError::invalid(
                "max_deliver",
                "must be -1 (unlimited) or at least 2, or a crash would lose the message",
            ));
        }
        positive_duration("upload_retry_min", self.upload_retry_min)?;
        if self.upload_retry_max < self.upload_retry_min {
            return Err(ConfigError::invalid(
                "upload_retry_max",
                "must be at least upload_retry_min",
            ));
        }
        positive_duration("retention_interval", self.retention_interval)?;
        if self.orphan_grace < Duration::from_secs(600) {
            return Err(ConfigError::invalid(
                "orphan_grace",
                "must be at least 10m, far longer than one upload and its commit",
            ));
        }
        validate_drain_timeout(self.drain_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_from;
    use super::*;
    use crate::config::QueryConfig;

    fn load(pairs: &[(&str, &str)]) -> Result<ArchiverConfig, String> {
        load_from::<ArchiverConfig>(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .map_err(|e| e.to_string())
    }

    /// The error names the key (and its variable).
    fn refused(pairs: &[(&str, &str)], key: &str) -> String {
        let e = load(pairs).unwrap_err();
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(&super::super::env_name(key)),
            "expected {key} in: {e}"
        );
        e
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9101");
        assert_eq!(c.consumer, "archiver");
        assert_eq!(c.archive.archive_url, "file://.data/archive");
        assert_eq!(
            c.archive.archive_url().unwrap(),
            ArchiveUrl::Local(".data/archive".into())
        );
        assert_eq!(
            c.archive.retention_rules().unwrap().for_service("x"),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(c.segment_max_age, Duration::from_secs(300));
        assert_eq!(c.segment_max_events, 1_000_000);
        assert_eq!(c.segment_max_bytes, 256 << 20);
        assert_eq!(c.max_deliver, -1);
        assert_eq!(c.spool_dir(), std::env::temp_dir());
        let keys = super::super::known_keys::<ArchiverConfig>();
        for k in [
            "archive_url",
            "retention_rules",
            "stream_max_age",
            "orphan_grace",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
    }

    #[test]
    fn environment_overrides() {
        let c = load(&[
            ("LOGJET_ARCHIVE_URL", "s3://logs/prod"),
            ("LOGJET_RETENTION_RULES", "payments=30d,7d"),
            ("LOGJET_SEGMENT_MAX_AGE", "2m"),
            ("LOGJET_SPOOL_DIR", "/var/spool/logjet"),
            ("LOGJET_MAX_DELIVER", "10"),
        ])
        .unwrap();
        assert!(matches!(
            c.archive.archive_url().unwrap(),
            ArchiveUrl::S3 { .. }
        ));
        assert_eq!(
            c.archive.retention_rules().unwrap().for_service("payments"),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(c.segment_max_age, Duration::from_secs(120));
        assert_eq!(c.spool_dir(), PathBuf::from("/var/spool/logjet"));
        assert_eq!(c.max_deliver, 10);
    }

    #[test]
    fn archive_url_is_checked() {
        let e = refused(&[("LOGJET_ARCHIVE_URL", "ftp://x")], "archive_url");
        assert!(e.contains("scheme"), "{e}");
        let e = refused(&[("LOGJET_ARCHIVE_URL", "off")], "archive_url");
        assert!(e.contains("needs an archive"), "{e}");
    }

    #[test]
    fn retention_rules_are_checked() {
        let e = refused(
            &[("LOGJET_RETENTION_RULES", "payments=30d")],
            "retention_rules",
        );
        assert!(e.contains("no default"), "{e}");
    }

    #[test]
    fn consumer_is_not_the_processors() {
        refused(&[("LOGJET_CONSUMER", "processor")], "consumer");
        refused(&[("LOGJET_CONSUMER", "a.b")], "consumer");
    }

    #[test]
    fn segment_bounds() {
        refused(&[("LOGJET_SEGMENT_MAX_AGE", "0s")], "segment_max_age");
        refused(
            &[
                ("LOGJET_SEGMENT_MAX_AGE", "1h"),
                ("LOGJET_STREAM_MAX_AGE", "1h"),
            ],
            "segment_max_age",
        );
        refused(&[("LOGJET_SEGMENT_MAX_EVENTS", "0")], "segment_max_events");
        refused(&[("LOGJET_SEGMENT_MAX_BYTES", "1000")], "segment_max_bytes");
        refused(
            &[("LOGJET_SEGMENT_MAX_BYTES", "8589934592")],
            "segment_max_bytes",
        );
        refused(&[("LOGJET_SPOOL_DIR", "")], "spool_dir");
        refused(
            &[("LOGJET_MAX_BUFFERED_BYTES", "1048576")],
            "max_buffered_bytes",
        );
    }

    #[test]
    fn consumer_settings() {
        refused(&[("LOGJET_FETCH_BATCH", "0")], "fetch_batch");
        refused(&[("LOGJET_FETCH_BATCH", "20000")], "fetch_batch");
        refused(&[("LOGJET_MAX_ACK_PENDING", "10")], "max_ack_pending");
        refused(&[("LOGJET_ACK_WAIT", "2s")], "ack_wait");
        refused(&[("LOGJET_MAX_DELIVER", "1")], "max_deliver");
        refused(&[("LOGJET_MAX_DELIVER", "-2")], "max_deliver");
        refused(&[("LOGJET_NATS_URL", "http://x")], "nats_url");
        refused(&[("LOGJET_STREAM_REPLICAS", "9")], "stream_replicas");
    }

    #[test]
    fn upload_retention_and_orphans() {
        refused(&[("LOGJET_UPLOAD_RETRY_MIN", "0s")], "upload_retry_min");
        refused(
            &[
                ("LOGJET_UPLOAD_RETRY_MIN", "5s"),
                ("LOGJET_UPLOAD_RETRY_MAX", "1s"),
            ],
            "upload_retry_max",
        );
        refused(&[("LOGJET_RETENTION_INTERVAL", "0s")], "retention_interval");
        refused(&[("LOGJET_ORPHAN_GRACE", "5m")], "orphan_grace");
    }

    #[test]
    fn query_reads_the_archive_settings_too() {
        let env = |pairs: &[(&str, &str)]| {
            load_from::<QueryConfig>(
                None,
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            )
        };
        let q = env(&[("LOGJET_AUTH", "off")]).unwrap();
        assert_eq!(q.archive, ArchiveSettings::default());
        let q = env(&[("LOGJET_AUTH", "off"), ("LOGJET_ARCHIVE_URL", "off")]).unwrap();
        assert!(!q.archive.archive_url().unwrap().is_enabled());
        let e = env(&[("LOGJET_AUTH", "off"), ("LOGJET_RETENTION_RULES", "x=1d")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOGJET_RETENTION_RULES"), "{e}");
        let e = env(&[("LOGJET_AUTH", "off"), ("LOGJET_ARCHIVE_URL", "gs://b")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOGJET_ARCHIVE_URL"), "{e}");
    }
}
