//! Running a [`Planned`] batch against Redis: its parts staged, then the apply script called,
//! with `WAIT` for replicas when asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logjet_core::keys;
use logjet_core::store::RedisConn;

use super::{Applied, Planned};

/// Staged values outlive their apply by this much at most (a processor that died between staging
/// and the script leaves them behind).
const STAGE_TTL_SECS: u64 = 300;

/// Staged parts are sent in pipelines of about this many bytes. The client copies a command
/// twice on its way out (into the command, then into the packed pipeline) and its socket buffer
/// keeps the size of its biggest send: staging a whole batch (2 MiB) in one pipeline held three
/// buffers of its size at once, which the allocator then kept. The bench's peak RSS: 30.6 and
/// 33.4 MB in one pipeline, 26.3–27.6 in slices (one worker thread), for a few more round trips
/// per batch (no measurable CPU).
const STAGE_SLICE_BYTES: usize = 256 * 1024;

/// Runs plans against Redis.
#[derive(Clone)]
pub struct Aggregator {
    conn: RedisConn,
    script: redis::Script,
    /// `WAIT` for this many replicas (0: not at all), at most this long.
    wait_replicas: u32,
    wait_timeout: Duration,
    stage: Arc<StageNames>,
}

/// Names for staged values no other apply uses: this aggregator's random prefix and a count.
struct StageNames {
    prefix: String,
    applies: AtomicU64,
}

impl StageNames {
    fn new() -> StageNames {
        // Random per aggregator (std's hasher keys are), so replicas never share a name.
        let nonce = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            (std::process::id(), std::time::SystemTime::now()),
        );
        StageNames {
            prefix: format!("{}{nonce:016x}:", keys::stage_key_prefix()),
            applies: AtomicU64::new(0),
        }
    }

    /// The prefix of one apply's staged values.
    fn next(&self) -> String {
        let n = self.applies.fetch_add(1, Ordering::Relaxed);
        format!("{}{n}:", self.prefix)
    }
}

impl Aggregator {
    pub fn new(conn: RedisConn) -> Aggregator {
        Aggregator {
            stage: Arc::new(StageNames::new()),
            conn,
            script: redis::Script::new(keys::APPLY_SCRIPT),
            wait_replicas: 0,
            wait_timeout: Duration::ZERO,
        }
    }

    /// Every apply also waits until `replicas` replicas have its writes, or `timeout`
    /// (see [`Applied::replicas`]).
    pub fn waiting_for(mut self, replicas: u32, timeout: Duration) -> Aggregator {
        self.wait_replicas = replicas;
        self.wait_timeout = timeout;
        self
    }

    pub fn wait_replicas(&self) -> u32 {
        self.wait_replicas
    }

    /// Whether an apply's writes are on as many replicas as asked.
    pub fn replicated_enough(&self, applied: &Applied) -> bool {
        applied
            .replicas
            .is_none_or(|r| r >= u64::from(self.wait_replicas))
    }

    /// Applies a plan atomically: its parts staged (`SET`, in pipelines of about
    /// [`STAGE_SLICE_BYTES`]), then the script run (two more round trips the first time a Redis
    /// sees the script: it is loaded on `NOSCRIPT` and the call sent again, as `redis::Script`
    /// does). The script checks that every staged part is there before it writes anything, so a
    /// reconnect or failover between the stages fails the apply instead of applying it in part.
    pub async fn apply_batch(&self, planned: &Planned) -> redis::RedisResult<Applied> {
        let stage = self.stage.next();
        let mut conn = self.conn.clone();
        let mut parts = planned.parts.iter().enumerate().peekable();
        while parts.peek().is_some() {
            let mut pipe = redis::pipe();
            let mut bytes = 0;
            while let Some((i, part)) = parts.next_if(|_| bytes < STAGE_SLICE_BYTES) {
                let key = format!("{stage}{i}");
                // Sized for its arguments: the part is written straight into the command's
                // buffer (`PlanPart`'s `ToRedisArgs`), which then never grows.
                let mut set = redis::Cmd::with_capacity(5, key.len() + part.len() + 16);
                set.arg("SET")
                    .arg(key)
                    .arg(part)
                    .arg("EX")
                    .arg(STAGE_TTL_SECS);
                pipe.add_command(set).ignore();
                bytes += part.len();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        let mut pipe = redis::pipe();
        // Declaring one key gives cluster clients the slot; every key shares its hash tag.
        pipe.cmd("EVALSHA")
            .arg(self.script.get_hash())
            .arg(1)
            .arg(keys::services_key())
            .arg(&planned.plan_json)
            .arg(&stage);
        if self.wait_replicas > 0 {
            // WAIT counts the replicas that have this connection's writes, so it goes in the
            // same pipeline: a reconnect in between must not separate them. (A replica that has
            // the script's writes has the staged parts too: one replication stream, in order.)
            pipe.cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.wait_timeout.as_millis() as u64);
        }
        let result: redis::RedisResult<Vec<redis::Value>> = pipe.query_async(&mut conn).await;
        let replies = match result {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let mut replies = replies.into_iter();
        let flags: Vec<u8> = redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))?;
        if flags.len() != planned.events_per_message.len() {
            // Never taken as "nothing new": that would ack messages whose effects are not there.
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the apply script did not answer one flag per message",
            )));
        }
        let replicas = match replies.next() {
            Some(v) if self.wait_replicas > 0 => Some(redis::from_redis_value::<u64>(v)?),
            _ => None,
        };
        let mut applied = Applied {
            replicas,
            ..Applied::default()
        };
        for (flag, events) in flags.iter().zip(&planned.events_per_message) {
            if *flag == 1 {
                applied.fresh_messages += 1;
                applied.fresh_events += *events as u64;
            } else {
                applied.already_applied += 1;
            }
        }
        Ok(applied)
    }

    /// Replicas connected to the master now (`ROLE`).
    pub async fn connected_replicas(&self) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        Ok(match role.get(2) {
            Some(redis::Value::Array(replicas)) => replicas.len() as u64,
            _ => 0,
        })
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_acked_only_with_the_replicas_asked_for() {
        let conn = logjet_core::store::connect_lazy("redis://127.0.0.1:1", Duration::from_secs(1))
            .unwrap();
        let applied = |replicas| Applied {
            replicas,
            ..Applied::default()
        };
        let not_waiting = Aggregator::new(conn.clone());
        assert!(not_waiting.replicated_enough(&applied(None)));
        let waiting = Aggregator::new(conn).waiting_for(1, Duration::from_secs(1));
        assert!(!waiting.replicated_enough(&applied(Some(0))));
        assert!(waiting.replicated_enough(&applied(Some(1))));
        assert!(waiting.replicated_enough(&applied(Some(2))));
    }
}
