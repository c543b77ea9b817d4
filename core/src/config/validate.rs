//! Checks shared by the config structs; each error names its key.

use std::time::Duration;

use super::ConfigError;

pub(super) fn validate_stream_name(key: &str, name: &str) -> Result<(), ConfigError> {
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

pub(super) fn validate_url(key: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
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

pub(super) fn positive(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::invalid(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// The default of every service's `drain_timeout`. Kubernetes' `terminationGracePeriodSeconds`
/// must exceed the preStop pause plus this (kustomize/base, tests/tests/drain_deadlines.rs).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) fn validate_drain_timeout(d: Duration) -> Result<(), ConfigError> {
    duration_between(
        "drain_timeout",
        d,
        Duration::from_millis(100),
        Duration::from_secs(600),
    )
}

/// `min <= d <= max`, else an error naming `key` and the bounds (`must be between 1s and 7days`).
pub(super) fn duration_between(
    key: &str,
    d: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&d) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ))
    }
}

/// `min <= v <= max`, else an error naming `key` and the bounds (`must be between 1 and 5`).
pub(super) fn between<T>(key: &str, v: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if min <= v && v <= max {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be between {min} and {max}"),
        ))
    }
}

pub(super) fn positive_duration(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(key, "must be longer than 0s"))
    } else {
        Ok(())
    }
}
