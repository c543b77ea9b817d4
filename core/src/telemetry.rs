//! Structured logging set-up shared by every binary.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// `LOGJET_LOG_FORMAT`: `json` for machines (the default), `pretty` for people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

/// Installs the global subscriber. The level filter comes from `RUST_LOG` (default `info`).
/// Safe to call more than once (tests start several services in one process): later calls are
/// no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).try_init(),
    };
    let _ = result;
}
