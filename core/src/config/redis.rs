//! Where Redis is: one address (`redis_url`), or the master of a Sentinel-watched group, and how
//! many replicas must hold a processor's writes before it acknowledges them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, positive_duration};

/// Redis through Sentinel (processor and query). With `redis_sentinels` empty, `redis_url` is
/// the server. Otherwise the master named `redis_master_name` is asked of these Sentinels, and
/// asked again after a connection error (a failover); `redis_url` then gives only the
/// credentials, database and TLS (`rediss`) for the master and the Sentinels, its host is not
/// used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSentinelSettings {
    /// Sentinels, comma-separated `host:port` (`redis-0.redis-headless:26379,…`).
    pub redis_sentinels: String,
    /// The name the Sentinels monitor the master under (`sentinel monitor <name> …`).
    pub redis_master_name: String,
}

impl Default for RedisSentinelSettings {
    fn default() -> Self {
        RedisSentinelSettings {
            redis_sentinels: String::new(),
            redis_master_name: "logjet".into(),
        }
    }
}

impl RedisSentinelSettings {
    /// The Sentinels as `(host, port)`; empty when Redis is one address.
    pub fn sentinels(&self) -> Vec<(String, u16)> {
        self.redis_sentinels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let (host, port) = s.rsplit_once(':')?;
                Some((
                    host.trim_matches(['[', ']']).to_string(),
                    port.parse().ok()?,
                ))
            })
            .collect()
    }

    /// `redis_url` is the other half: with Sentinels it must be a TCP URL (its credentials and
    /// TLS apply to the master).
    pub fn validate(&self, redis_url: &str) -> Result<(), ConfigError> {
        let entries: Vec<&str> = self
            .redis_sentinels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for e in &entries {
            let ok = e
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(ConfigError::invalid(
                    "redis_sentinels",
                    format!("{e:?} is not host:port"),
                ));
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        if self.redis_master_name.trim().is_empty() || self.redis_master_name.contains(' ') {
            return Err(ConfigError::invalid(
                "redis_master_name",
                "must be the name the Sentinels monitor, without spaces",
            ));
        }
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(ConfigError::invalid(
                "redis_url",
                "must be redis:// or rediss:// when redis_sentinels is set (it gives the \
                 master's credentials and TLS)",
            ));
        }
        Ok(())
    }
}

/// The processor's durability requirement (docs/operations.md, "Redis failover").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisWaitSettings {
    /// Replicas that must have a batch's writes (Redis `WAIT`) before its messages are acked;
    /// 0 acks once the master has them. With fewer replicas answering in time, the batch is
    /// nak'ed and redelivered (applying it again is a no-op).
    pub redis_wait_replicas: u32,
    /// How long `WAIT` waits for them.
    #[serde(with = "humantime_serde")]
    pub redis_wait_timeout: Duration,
}

impl Default for RedisWaitSettings {
    fn default() -> Self {
        RedisWaitSettings {
            redis_wait_replicas: 0,
            redis_wait_timeout: Duration::from_secs(1),
        }
    }
}

/// The processor's Redis response timeout: a `WAIT` must end well within it.
pub const PROCESSOR_REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisWaitSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.redis_wait_replicas > 16 {
            return Err(ConfigError::invalid(
                "redis_wait_replicas",
                "must be at most 16",
            ));
        }
        positive_duration("redis_wait_timeout", self.redis_wait_timeout)?;
        if self.redis_wait_timeout + Duration::from_secs(1) > PROCESSOR_REDIS_RESPONSE_TIMEOUT {
            return Err(ConfigError::invalid(
                "redis_wait_timeout",
                format!(
                    "must be at most {}s (Redis commands time out after {}s)",
                    PROCESSOR_REDIS_RESPONSE_TIMEOUT.as_secs() - 1,
                    PROCESSOR_REDIS_RESPONSE_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels(list: &str) -> RedisSentinelSettings {
        RedisSentinelSettings {
            redis_sentinels: list.into(),
            ..RedisSentinelSettings::default()
        }
    }

    #[test]
    fn sentinel_list_is_parsed_and_checked() {
        let s = sentinels(" a:26379, b.x:1 ,");
        assert_eq!(
            s.sentinels(),
            vec![("a".to_string(), 26379), ("b.x".to_string(), 1)]
        );
        assert!(s.validate("redis://:pw@ignored:6379").is_ok());
        assert!(sentinels("").validate("unix:///tmp/r.sock").is_ok());
        let err = sentinels("a:26379,b").validate("redis://x").unwrap_err();
        assert!(err.to_string().contains("LOGJET_REDIS_SENTINELS"), "{err}");
        let err = sentinels("a:0").validate("redis://x").unwrap_err();
        assert!(err.to_string().contains("\"a:0\""), "{err}");
        let err = sentinels("a:1").validate("unix:///r.sock").unwrap_err();
        assert!(err.to_string().contains("LOGJET_REDIS_URL"), "{err}");
        let mut s = sentinels("a:1");
        s.redis_master_name = " ".into();
        let err = s.validate("redis://x").unwrap_err();
        assert!(
            err.to_string().contains("LOGJET_REDIS_MASTER_NAME"),
            "{err}"
        );
    }

    #[test]
    fn wait_must_end_before_the_response_timeout() {
        let mut w = RedisWaitSettings::default();
        assert!(w.validate().is_ok());
        w.redis_wait_timeout = Duration::from_secs(5);
        let err = w.validate().unwrap_err();
        assert!(
            err.to_string().contains("LOGJET_REDIS_WAIT_TIMEOUT"),
            "{err}"
        );
        w.redis_wait_timeout = Duration::ZERO;
        assert!(w.validate().is_err());
        w = RedisWaitSettings {
            redis_wait_replicas: 17,
            ..RedisWaitSettings::default()
        };
        let err = w.validate().unwrap_err();
        assert!(
            err.to_string().contains("LOGJET_REDIS_WAIT_REPLICAS"),
            "{err}"
        );
    }
}
