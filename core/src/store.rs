//! Connecting to Redis the same way everywhere.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RedisSentinelSettings;
use crate::outage::OutageTracker;
pub use crate::redis_conn::RedisConn;

/// A connection to `url` alone (no Sentinel), made lazily: see [`RedisConn::connect`].
pub fn connect_lazy(url: &str, response_timeout: Duration) -> redis::RedisResult<RedisConn> {
    RedisConn::connect(url, &RedisSentinelSettings::default(), response_timeout)
}

/// `PING`, for readiness checks.
pub async fn ping(conn: &RedisConn) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
}

/// What a service holds: the connection and the tracker every command's result feeds, the one
/// place Redis outages are logged (see [`crate::outage`]).
#[derive(Clone)]
pub struct Redis {
    pub conn: RedisConn,
    pub status: OutageTracker,
}

impl Redis {
    /// [`RedisConn::connect`] with a tracker.
    pub fn connect(
        url: &str,
        sentinel: &RedisSentinelSettings,
        response_timeout: Duration,
    ) -> redis::RedisResult<Redis> {
        let status = if sentinel.sentinels().is_empty() {
            OutageTracker::new("redis", "Redis", url)
        } else {
            OutageTracker::describing(
                "redis",
                format!(
                    "the Redis master {:?} of Sentinels {}",
                    sentinel.redis_master_name, sentinel.redis_sentinels
                ),
            )
        };
        Ok(Redis {
            conn: RedisConn::connect(url, sentinel, response_timeout)?,
            status,
        })
    }

    /// Feeds a command's result to the tracker and hands it back: a success means Redis is
    /// there, an error that says it is not ([`is_unavailable`]) counts as a failed attempt.
    pub fn observe<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        match &result {
            Ok(_) => self.status.succeeded(),
            Err(e) if is_unavailable(e) => self.status.failed(e),
            Err(_) => {}
        }
        result
    }

    /// `PING`, observed.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        self.observe(ping(&self.conn).await)
    }

    /// Pings every `every` until `shutdown`, so an outage is noticed (and logged once) and its
    /// end too, even while nothing else uses Redis.
    pub fn spawn_watch(&self, every: Duration, shutdown: CancellationToken) {
        let redis = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = redis.ping() => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
    }
}

/// Whether an error says Redis cannot be used right now (unreachable, timing out, loading its
/// data, refusing our credentials), as opposed to a problem with one command.
pub fn is_unavailable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_an_outage_and_is_observed() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Redis::connect(
            &format!("redis://:pw@127.0.0.1:{closed}"),
            &RedisSentinelSettings::default(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            redis.status.what(),
            format!("Redis at redis://:***@127.0.0.1:{closed}")
        );
        let err = redis.ping().await.unwrap_err();
        assert!(is_unavailable(&err), "{err:?}");
        assert!(!redis.status.is_up());
        let script_error = redis::RedisError::from((redis::ErrorKind::Client, "bad script"));
        assert!(!is_unavailable(&script_error));
    }
}
