//! Settings of a public HTTP API (ingest, query): authentication, rate limits, timeouts.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, positive_duration};

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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
