//! Loading: defaults < TOML file < `LOGJET_*` environment, the error that names the key, and
//! the start-up description of a loaded config (secrets redacted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::telemetry::LogFormat;

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
    /// Threads of the service's async runtime; `None`: one per core (tokio's default).
    fn worker_threads(&self) -> Option<usize> {
        None
    }
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
    pub(super) type Table = Vec<(String, String)>;

    pub(super) fn parse(text: &str) -> Result<Table, String> {
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
