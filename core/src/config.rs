//! Typed configuration, loaded once at start-up: defaults < TOML file < `LOGJET_*` environment.
//!
//! Every service has its own struct; the keys are flat so that a key `nats_url` is the
//! environment variable `LOGJET_NATS_URL`. A bad value stops start-up with an error that names
//! the key; an unknown key in the file is an error too (a typo must not be silently ignored),
//! while an unknown `LOGJET_*` variable is only warned about, because one ConfigMap may carry
//! settings for several services.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::telemetry::LogFormat;

mod alerts;
mod archive;
mod archive_read;
mod dashboard;
mod ingest_memory;
mod loki;
pub use alerts::AlertSettings;
pub use archive::{ArchiveSettings, ArchiverConfig};
pub use archive_read::ArchiveReadSettings;
pub use dashboard::{DashboardAuth, DashboardConfig};
pub use ingest_memory::{BudgetSource, IngestMemorySettings, MemoryBudget, parse_size};
pub use loki::LokiSettings;

pub const ENV_PREFIX: &str = "LOGJET_";
/// Path of the optional TOML file; also taken from `--config`.
pub const ENV_CONFIG_FILE: &str = "LOGJET_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}` (env {env}): {problem}")]
    Invalid {
        key: String,
        env: String,
        problem: String,
    },
    #[error("config file {path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("config: {0}")]
    Load(String),
}

impl ConfigError {
    pub fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            env: env_name(key),
            problem: problem.into(),
        }
    }
}

/// `nats_url` → `LOGJET_NATS_URL`
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Implemented by each service's config struct.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default {
    /// Checks what types alone cannot; the error names the key.
    fn validate(&self) -> Result<(), ConfigError>;
    /// `log_format`: how the binary logs (`crate::service::run` starts logging with it).
    fn log_format(&self) -> LogFormat;
    /// `drain_timeout`: how long the service may take to stop after SIGTERM, whatever its
    /// dependencies do (`crate::service::ServeOptions::drain_timeout`).
    fn drain_timeout(&self) -> Duration;
}

/// Loads from the process environment and the file named by `--config`/`LOGJET_CONFIG`.
pub fn load<T: ServiceConfig>(file: Option<&Path>) -> Result<T, ConfigError> {
    let from_env = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
    let file = file.map(Path::to_path_buf).or(from_env);
    load_from(file.as_deref(), std::env::vars())
}

/// Loads from explicit sources; what [`load`] does, but testable.
pub fn load_from<T: ServiceConfig>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let known = known_keys::<T>();
    let defaults = config::Config::try_from(&T::default())
        .map_err(|e| ConfigError::Load(format!("defaults: {e}")))?;
    let mut builder = config::Config::builder().add_source(defaults);
    // What the file and the environment set, to name the key of a bad value.
    let mut provided: Vec<(String, String)> = Vec::new();

    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let table: toml_keys::Table = toml_keys::parse(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            problem: e,
        })?;
        for (key, value) in table {
            provided.push((key.clone(), value));
            if !known.contains(&key) {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    problem: format!("unknown key `{key}` (known: {})", known.join(", ")),
                });
            }
        }
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }

    let mut env_map = config::Map::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name == ENV_CONFIG_FILE {
            continue;
        }
        let key = key.to_ascii_lowercase();
        if known.contains(&key) {
            provided.push((key.clone(), value.clone()));
            env_map.insert(format!("{ENV_PREFIX}{key}"), value);
        } else {
            tracing::warn!(variable = %name, "ignoring unknown LOGJET_* variable for this service");
        }
    }
    builder = builder.add_source(
        config::Environment::with_prefix("LOGJET")
            .prefix_separator("_")
            .try_parsing(true)
            .source(Some(env_map)),
    );

    let built = builder
        .build()
        .map_err(|e| map_config_error(e, &provided))?;
    let cfg: T = built
        .try_deserialize()
        .map_err(|e| map_config_error(e, &provided))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The flat keys a config struct knows, from its serialised defaults.
pub fn known_keys<T: ServiceConfig>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The environment variables a config struct knows (`LOGJET_*`).
pub fn known_env_vars<T: ServiceConfig>() -> Vec<String> {
    known_keys::<T>().iter().map(|k| env_name(k)).collect()
}

/// Turns the config crate's error into one that names the key. Its message usually says
/// "... for key `x`"; inside flattened sections it does not, and then the key whose given value
/// the message quotes is the culprit.
fn map_config_error(e: config::ConfigError, provided: &[(String, String)]) -> ConfigError {
    let msg = e.to_string();
    if let Some(start) = msg.find("for key `") {
        let rest = &msg[start + 9..];
        if let Some(end) = rest.find('`') {
            let key = rest[..end].trim_start_matches("logjet_").to_string();
            let problem = msg[..start].trim().to_string();
            return ConfigError::invalid(&key, problem);
        }
    }
    let problem = msg.trim_start_matches("config: ").to_string();
    for (key, value) in provided {
        if !value.is_empty()
            && (msg.contains(&format!("`{value}`")) || msg.contains(&format!("\"{value}\"")))
        {
            return ConfigError::invalid(key, problem);
        }
    }
    ConfigError::Load(msg)
}

/// Top-level keys of a TOML document, for the unknown-key check.
mod toml_keys {
    /// Top-level keys and their values as text.
    pub type Table = Vec<(String, String)>;

    pub fn parse(text: &str) -> Result<Table, String> {
        let value: config::Value = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| e.to_string())?
            .cache;
        match value.kind {
            config::ValueKind::Table(t) => {
                Ok(t.into_iter().map(|(k, v)| (k, v.to_string())).collect())
            }
            _ => Ok(Vec::new()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

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
    /// Dead-letter stream for payloads that can never be parsed.
    pub dlq_stream: String,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            stream: "LOGS".into(),
            stream_max_age: Duration::from_secs(24 * 3600),
            stream_max_bytes: 10 * 1024 * 1024 * 1024,
            stream_replicas: 1,
            stream_duplicate_window: Duration::from_secs(120),
            dlq_stream: "LOGS_DLQ".into(),
        }
    }
}

impl StreamSettings {
    fn validate(&self) -> Result<(), ConfigError> {
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
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::invalid(
                "stream_replicas",
                "must be between 1 and 5",
            ));
        }
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

fn validate_stream_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{name:?} is not a valid JetStream name (letters, digits, _ and -)"),
        ))
    }
}

fn validate_url(key: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ConfigError::invalid(
            key,
            format!("{url:?} is not a URL (expected {}://host:port)", schemes[0]),
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(ConfigError::invalid(
            key,
            format!("scheme {scheme:?} is not one of {}", schemes.join(", ")),
        ));
    }
    if rest.is_empty() {
        return Err(ConfigError::invalid(key, "missing host"));
    }
    Ok(())
}

pub fn validate_nats_url(key: &str, url: &str) -> Result<(), ConfigError> {
    // A comma-separated list of servers is allowed.
    for u in url.split(',') {
        validate_url(key, u.trim(), &["nats", "tls", "ws", "wss"])?;
    }
    Ok(())
}

pub fn validate_redis_url(key: &str, url: &str) -> Result<(), ConfigError> {
    validate_url(key, url, &["redis", "rediss", "redis+unix", "unix"])
}

fn positive(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::invalid(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// The default of every service's `drain_timeout`. Kubernetes' `terminationGracePeriodSeconds`
/// must exceed the preStop pause plus this (kustomize/base, tests/tests/drain_deadlines.rs).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

fn validate_drain_timeout(d: Duration) -> Result<(), ConfigError> {
    if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
        return Err(ConfigError::invalid(
            "drain_timeout",
            "must be between 100ms and 10m",
        ));
    }
    Ok(())
}

fn positive_duration(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(key, "must be longer than 0s"))
    } else {
        Ok(())
    }
}

/// `LOGJET_AUTH`: `on` (the default) or `off` (local development only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSetting {
    #[default]
    On,
    Off,
}

/// Settings of a public HTTP API: authentication, per-key rate limits, slow-client timeouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    pub auth: AuthSetting,
    /// File of hashed API keys (see `logjet_core::auth`); required when `auth` is `on`.
    pub api_keys_file: Option<PathBuf>,
    /// Requests per second per API key; 0 disables the limit.
    pub rate_limit_per_second: u32,
    /// Requests a key may send at once above its rate.
    pub rate_limit_burst: u32,
    /// Time a client has to send its request headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send its request body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            auth: AuthSetting::On,
            api_keys_file: None,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

impl ApiSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.auth == AuthSetting::On && self.api_keys_file.is_none() {
            return Err(ConfigError::invalid(
                "api_keys_file",
                "required when auth is on (LOGJET_AUTH=off turns authentication off, for local development only)",
            ));
        }
        if self.rate_limit_per_second > 0 && self.rate_limit_burst < self.rate_limit_per_second {
            return Err(ConfigError::invalid(
                "rate_limit_burst",
                "must be at least rate_limit_per_second",
            ));
        }
        positive_duration("header_read_timeout", self.header_read_timeout)?;
        positive_duration("body_read_timeout", self.body_read_timeout)
    }

    /// The keys to check callers against: loads the key file.
    pub fn load_auth(&self) -> Result<crate::auth::Auth, ConfigError> {
        match (self.auth, &self.api_keys_file) {
            (AuthSetting::Off, _) => Ok(crate::auth::Auth::Off),
            (AuthSetting::On, Some(path)) => crate::auth::LiveKeys::load(path)
                .map(crate::auth::Auth::Keys)
                .map_err(|e| ConfigError::invalid("api_keys_file", e.to_string())),
            (AuthSetting::On, None) => Err(ConfigError::invalid(
                "api_keys_file",
                "required when auth is on",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-service configs

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

/// `logjet-processor`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub nats_url: String,
    pub redis_url: String,
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
    /// How long a small batch waits for more messages before it is applied.
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
            nats_url: "nats://127.0.0.1:4222".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            stream: StreamSettings::default(),
            consumer: "processor".into(),
            fetch_batch: 256,
            fetch_max_bytes: 2 * 1024 * 1024,
            fetch_expires: Duration::from_millis(500),
            batch_linger: Duration::from_millis(50),
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

    fn validate(&self) -> Result<(), ConfigError> {
        validate_nats_url("nats_url", &self.nats_url)?;
        validate_redis_url("redis_url", &self.redis_url)?;
        self.stream.validate()?;
        validate_stream_name("consumer", &self.consumer)?;
        if !(1..=10_000).contains(&self.fetch_batch) {
            return Err(ConfigError::invalid(
                "fetch_batch",
                "must be between 1 and 10000",
            ));
        }
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

/// `logjet-query`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryConfig {
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub redis_url: String,
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

/// Keys of a loaded config with their values, for a start-up log line (never secrets).
pub fn describe<T: Serialize>(cfg: &T) -> BTreeMap<String, String> {
    match serde_json::to_value(cfg) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => redact_url(&s),
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `nats://user:secret@host` → `nats://user:***@host` (also for comma-separated lists), so
/// credentials given in a URL never reach a log line.
pub fn redact_url(value: &str) -> String {
    value
        .split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &u[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let masked = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    "***".to_string()
                };
                format!("{}{masked}{}", &u[..scheme_end + 3], &u[at..])
            }
            _ => u.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_design() {
        let c: IngestConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.stream.stream, "LOGS");
        let p: ProcessorConfig = load_from(None, env(&[])).unwrap();
        assert_eq!(p.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(p.consumer, "processor");
        assert_eq!(p.redis_url, "redis://127.0.0.1:6379");
        let q: QueryConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
        assert_eq!(q.listen.to_string(), "0.0.0.0:8001");
        let e = load_from::<QueryConfig>(None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api_keys_file") && e.contains("LOGJET_AUTH=off"),
            "{e}"
        );
        let e = load_from::<IngestConfig>(None, env(&[("LOGJET_AUTH", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth"), "{e}");
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "nats_url = \"nats://file:4222\"\nfetch_batch = 10\nack_wait = \"45s\"\n",
        )
        .unwrap();
        let c: ProcessorConfig = load_from(
            Some(&path),
            env(&[
                ("LOGJET_FETCH_BATCH", "20"),
                ("LOGJET_STREAM_REPLICAS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.nats_url, "nats://file:4222");
        assert_eq!(c.fetch_batch, 20);
        assert_eq!(c.ack_wait, Duration::from_secs(45));
        assert_eq!(c.stream.stream_replicas, 3);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_FETCH_BATCH", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fetch_batch") && e.contains("LOGJET_FETCH_BATCH"),
            "{e}"
        );
        let e = load_from::<IngestConfig>(
            None,
            env(&[("LOGJET_AUTH", "off"), ("LOGJET_NATS_URL", "http://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`nats_url`") && e.contains("scheme"), "{e}");
        let e = load_from::<IngestConfig>(
            None,
            env(&[("LOGJET_AUTH", "off"), ("LOGJET_LISTEN", "nowhere")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_ACK_WAIT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ack_wait"), "{e}");
        let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_MAX_DELIVER", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_deliver"), "{e}");
    }

    #[test]
    fn unknown_file_key_is_an_error_unknown_env_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "nats_ulr = \"nats://x:1\"\n").unwrap();
        let e = load_from::<IngestConfig>(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `nats_ulr`"), "{e}");
        let c = load_from::<IngestConfig>(
            None,
            env(&[("LOGJET_AUTH", "off"), ("LOGJET_QUERY_URL", "http://q")]),
        );
        assert!(c.is_ok());
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("nats://app:s3cret@nats:4222"),
            "nats://app:***@nats:4222"
        );
        assert_eq!(
            redact_url("redis://:pw@redis:6379"),
            "redis://:***@redis:6379"
        );
        assert_eq!(redact_url("rediss://token@r:6380"), "rediss://***@r:6380");
        assert_eq!(
            redact_url("nats://a:1@x:1,nats://b:2@y:2"),
            "nats://a:***@x:1,nats://b:***@y:2"
        );
        assert_eq!(redact_url("nats://nats:4222"), "nats://nats:4222");
        assert_eq!(redact_url("plain text"), "plain text");
    }

    #[test]
    fn every_service_has_a_drain_timeout_and_query_a_body_limit() {
        let q: QueryConfig = load_from(None, env(&[("LOGJET_AUTH", "off")])).unwrap();
        assert_eq!(q.drain_timeout, Duration::from_secs(20));
        assert_eq!(q.max_body_bytes, 1024 * 1024);
        let i: IngestConfig = load_from(
            None,
            env(&[("LOGJET_AUTH", "off"), ("LOGJET_DRAIN_TIMEOUT", "2s")]),
        )
        .unwrap();
        assert_eq!(i.drain_timeout(), Duration::from_secs(2));
        let p: ProcessorConfig =
            load_from(None, env(&[("LOGJET_DRAIN_TIMEOUT", "1500ms")])).unwrap();
        assert_eq!(p.drain_timeout(), Duration::from_millis(1500));
        let d: DashboardConfig = load_from(None, env(&[("LOGJET_DRAIN_TIMEOUT", "10s")])).unwrap();
        assert_eq!(d.drain_timeout(), Duration::from_secs(10));
        for bad in ["0s", "1h"] {
            let e = load_from::<ProcessorConfig>(None, env(&[("LOGJET_DRAIN_TIMEOUT", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("LOGJET_DRAIN_TIMEOUT"), "{e}");
        }
        let e = load_from::<QueryConfig>(
            None,
            env(&[("LOGJET_AUTH", "off"), ("LOGJET_MAX_BODY_BYTES", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_body_bytes"), "{e}");
    }

    #[test]
    fn known_keys_are_flat() {
        let keys = known_keys::<ProcessorConfig>();
        assert!(keys.contains(&"stream_max_age".to_string()));
        assert!(keys.contains(&"consumer".to_string()));
        assert!(known_env_vars::<IngestConfig>().contains(&"LOGJET_NATS_URL".to_string()));
    }
}
