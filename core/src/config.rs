//! Typed configuration, loaded once at start-up: defaults < TOML file < `LOGJET_*` environment.
//!
//! Every service has its own struct; the keys are flat so that a key `nats_url` is the
//! environment variable `LOGJET_NATS_URL`. A bad value stops start-up with an error that names
//! the key; an unknown key in the file is an error too (a typo must not be silently ignored),
//! while an unknown `LOGJET_*` variable is only warned about, because one ConfigMap may carry
//! settings for several services.

//! Each piece has its file below `config/`; this root only declares them and re-exports what
//! the services use (`logjet_core::config::IngestConfig`, …). Sub-modules import their shared
//! pieces from here (`super::positive`), so a new section is one file plus two lines.

mod alerts;
mod api;
mod archive;
mod archive_read;
mod dashboard;
mod ingest;
mod ingest_memory;
mod load;
mod loki;
mod processor;
mod query;
mod redis;
mod stream;
mod validate;

pub use self::redis::{PROCESSOR_REDIS_RESPONSE_TIMEOUT, RedisSentinelSettings, RedisWaitSettings};
pub use alerts::AlertSettings;
pub use api::{ApiSettings, AuthSetting};
pub use archive::{ArchiveSettings, ArchiverConfig};
pub use archive_read::ArchiveReadSettings;
pub use dashboard::{DashboardAuth, DashboardConfig};
pub use ingest::IngestConfig;
pub use ingest_memory::{BudgetSource, IngestMemorySettings, MemoryBudget, parse_size};
pub use load::{
    ConfigError, ENV_CONFIG_FILE, ENV_PREFIX, ServiceConfig, describe, env_name, known_env_vars,
    known_keys, load, load_from, redact_url,
};
pub use loki::LokiSettings;
pub use processor::ProcessorConfig;
pub use query::QueryConfig;
pub use stream::{StreamCompression, StreamSettings};
pub use validate::{DEFAULT_DRAIN_TIMEOUT, validate_nats_url, validate_redis_url};
use validate::{
    between, duration_between, positive, positive_duration, validate_drain_timeout,
    validate_stream_name, validate_url,
};

#[cfg(test)]
mod tests;
