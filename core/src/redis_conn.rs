//! The Redis connection a service holds: one address, or the master of a Sentinel-watched group,
//! followed across failovers.
//!
//! With Sentinels ([`RedisSentinelSettings`]) the master is asked of them when the first
//! command needs it, and asked again after a command fails because the master is unreachable or
//! has become a replica (`READONLY`): the command that failed returns its error (callers retry:
//! the processor naks, query answers 503) and the next one goes to whatever master the
//! Sentinels name then. Until they have promoted a replica, asking fails, and so do commands.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, TlsMode, Value,
};

use crate::config::RedisSentinelSettings;

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// A self-healing connection, made lazily: a service starts (and reports not-ready) while Redis
/// is down and reconnects on its own. Every command times out after the response timeout, so a
/// hung Redis turns into errors instead of stuck requests. Cheap to clone (one shared
/// multiplexed connection).
#[derive(Clone)]
pub struct RedisConn {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Direct(ConnectionManager),
    Sentinel(Arc<Followed>),
}

impl RedisConn {
    /// `url` alone, or, with Sentinels configured, the master they name (`url` then gives the
    /// credentials, database and TLS). Fails only on a malformed URL.
    pub fn connect(
        url: &str,
        sentinel: &RedisSentinelSettings,
        response_timeout: Duration,
    ) -> RedisResult<RedisConn> {
        let config = manager_config(response_timeout);
        let sentinels = sentinel.sentinels();
        if sentinels.is_empty() {
            let client = redis::Client::open(url)?;
            let manager = ConnectionManager::new_lazy_with_config(client, config)?;
            return Ok(RedisConn {
                inner: Inner::Direct(manager),
            });
        }
        let info = url.into_connection_info()?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let addrs: Vec<ConnectionAddr> = sentinels
            .into_iter()
            .map(|(host, port)| {
                if tls {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host, port)
                }
            })
            .collect();
        // One client per starting Sentinel: the client asks them in order and waits for the
        // first, so when one hangs (its node gone, its address still resolving), the next
        // round starts from the next one.
        let clients = (0..addrs.len())
            .map(|first| {
                let mut order = addrs.clone();
                order.rotate_left(first);
                sentinel_client(order, &sentinel.redis_master_name, &info, tls)
            })
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(RedisConn {
            inner: Inner::Sentinel(Arc::new(Followed {
                sentinels: tokio::sync::Mutex::new(Rotation { clients, next: 0 }),
                master_name: sentinel.redis_master_name.clone(),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
                config,
                resolve_timeout: response_timeout,
            })),
        })
    }

    /// The address commands go to now (`None` before the Sentinels were first asked, or after a
    /// failure made them to be asked again), for logs and tests.
    pub fn current_addr(&self) -> Option<String> {
        match &self.inner {
            Inner::Direct(_) => None,
            Inner::Sentinel(f) => f.lock().as_ref().map(|c| c.addr.clone()),
        }
    }
}

fn sentinel_client(
    sentinels: Vec<ConnectionAddr>,
    master_name: &str,
    info: &redis::ConnectionInfo,
    tls: bool,
) -> RedisResult<SentinelClient> {
    let mut builder =
        SentinelClientBuilder::new(sentinels, master_name, SentinelServerType::Master)?;
    let settings = info.redis_settings();
    builder = builder.set_client_to_redis_db(settings.db());
    if let Some(user) = settings.username() {
        builder = builder
            .set_client_to_redis_username(user)
            .set_client_to_sentinel_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder
            .set_client_to_redis_password(password)
            .set_client_to_sentinel_password(password);
    }
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    builder.build()
}

/// The Sentinel clients, each asking from a different first Sentinel, and which to use next.
struct Rotation {
    clients: Vec<SentinelClient>,
    next: usize,
}

/// The master currently followed.
#[derive(Clone)]
struct Current {
    generation: u64,
    addr: String,
    manager: ConnectionManager,
}

struct Followed {
    /// Held while asking, so concurrent failures ask once.
    sentinels: tokio::sync::Mutex<Rotation>,
    master_name: String,
    current: Mutex<Option<Current>>,
    generation: AtomicU64,
    config: ConnectionManagerConfig,
    /// Bounds one round of asking the Sentinels (one may be unreachable without refusing).
    resolve_timeout: Duration,
}

impl Followed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn current(&self) -> RedisResult<Current> {
        if let Some(c) = self.lock().clone() {
            return Ok(c);
        }
        let mut rotation = self.sentinels.lock().await;
        if let Some(c) = self.lock().clone() {
            return Ok(c);
        }
        let at = rotation.next % rotation.clients.len();
        // `async_get_client` also checks that the server named considers itself master.
        let asked = tokio::time::timeout(
            self.resolve_timeout,
            rotation.clients[at].async_get_client(),
        )
        .await
        .map_err(|_| {
            RedisError::from((
                ErrorKind::Io,
                "no Sentinel named a reachable master in time",
            ))
        })
        .and_then(|r| r);
        let client = match asked {
            Ok(c) => c,
            Err(e) => {
                rotation.next = at + 1;
                return Err(e);
            }
        };
        let addr = client.get_connection_info().addr().to_string();
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        let current = Current {
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            addr,
            manager,
        };
        tracing::info!(
            master = %current.addr,
            name = %self.master_name,
            "following the Redis master named by Sentinel"
        );
        *self.lock() = Some(current.clone());
        Ok(current)
    }

    /// After a failure that says this master is gone or demoted, the next command asks again.
    fn forget(&self, generation: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            tracing::debug!(name = %self.master_name, "Redis master lost; asking Sentinel again");
            *current = None;
        }
    }
}

/// Whether a failure means the master must be asked of the Sentinels again.
fn master_lost(e: &RedisError) -> bool {
    crate::store::is_unavailable(e)
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

fn value_master_lost(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Direct(m) => m.req_packed_command(cmd),
            Inner::Sentinel(f) => Box::pin(async move {
                let mut current = f.current().await?;
                let result = current.manager.req_packed_command(cmd).await;
                let lost = match &result {
                    Ok(v) => value_master_lost(v),
                    Err(e) => master_lost(e),
                };
                if lost {
                    f.forget(current.generation);
                }
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Direct(m) => m.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(f) => Box::pin(async move {
                let mut current = f.current().await?;
                let result = current
                    .manager
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                let lost = match &result {
                    Ok(values) => values.iter().any(value_master_lost),
                    Err(e) => master_lost(e),
                };
                if lost {
                    f.forget(current.generation);
                }
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Direct(m) => m.get_db(),
            Inner::Sentinel(f) => f.lock().as_ref().map_or(0, |c| c.manager.get_db()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sentinel_mode_fails_cleanly_while_no_sentinel_answers() {
        let settings = RedisSentinelSettings {
            // Port 1 on loopback: refused at once.
            redis_sentinels: "127.0.0.1:1".into(),
            redis_master_name: "logjet".into(),
        };
        let conn = RedisConn::connect(
            "redis://:pw@ignored:6379",
            &settings,
            Duration::from_secs(1),
        )
        .unwrap();
        let mut c = conn.clone();
        let err = redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .unwrap_err();
        assert!(crate::store::is_unavailable(&err), "{err}");
        assert_eq!(conn.current_addr(), None);
    }

    #[test]
    fn a_demoted_master_is_lost() {
        let readonly = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY You can't write against a read only replica.",
        ));
        assert!(master_lost(&readonly));
        let script = RedisError::from((ErrorKind::Client, "bad script"));
        assert!(!master_lost(&script));
    }
}
