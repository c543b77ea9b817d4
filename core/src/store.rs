//! Connecting to Redis the same way everywhere.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A self-healing connection that is made lazily: a service starts (and reports not-ready)
/// while Redis is down, and reconnects on its own when Redis comes back. Every command times out
/// after `response_timeout`, so a hung Redis turns into errors instead of stuck requests.
pub fn connect_lazy(
    url: &str,
    response_timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// `PING`, for readiness checks.
pub async fn ping(conn: &ConnectionManager) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
}
