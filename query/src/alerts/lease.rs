//! The evaluator's lease: one key in the NATS KV bucket, taken and renewed by compare-and-set on
//! its revision, so of the query replicas exactly one holds it at a time. The value says who
//! holds it until when; a holder that stops renewing loses it when that time has passed, and the
//! next replica to try takes it (and reads the alert state the old one left in the bucket).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The lease's key in the bucket.
pub const LEASE_KEY: &str = "leader";

#[derive(Debug, Serialize, Deserialize)]
struct LeaseValue {
    holder: String,
    /// Unix ms after which the lease is free.
    until_ms: i64,
}

/// Whether this replica holds the lease, and until when (local clock).
#[derive(Clone)]
pub struct Lease {
    pub holder: String,
    held_until: Arc<std::sync::Mutex<Option<Instant>>>,
    /// Incremented at each gain of the lease: state read before it must be read again.
    generation: Arc<AtomicU64>,
}

impl Lease {
    pub fn new(holder: String) -> Lease {
        Lease {
            holder,
            held_until: Arc::new(std::sync::Mutex::new(None)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Held now (and not about to lapse: renewal happens at a third of the TTL).
    pub fn is_held(&self) -> bool {
        self.held_until
            .lock()
            .ok()
            .and_then(|h| *h)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Which holding of the lease this is (changes at each gain).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn set(&self, until: Option<Instant>) {
        let was = self.is_held();
        if let Ok(mut h) = self.held_until.lock() {
            *h = until;
        }
        match (was, until.is_some()) {
            (false, true) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!(holder = %self.holder, "alert evaluator lease taken: this replica evaluates the rules");
            }
            (true, false) => {
                tracing::warn!(holder = %self.holder, "alert evaluator lease lost");
            }
            _ => {}
        }
    }

    /// One attempt to take or renew. `Ok(true)`: held for `ttl` from `started`.
    async fn try_hold(&self, kv: &Store, ttl: Duration) -> Result<bool, String> {
        let started = Instant::now();
        let now_ms = Utc::now().timestamp_millis();
        let value = serde_json::to_vec(&LeaseValue {
            holder: self.holder.clone(),
            until_ms: now_ms + ttl.as_millis() as i64,
        })
        .map_err(|e| e.to_string())?;
        let held = match kv.entry(LEASE_KEY).await.map_err(|e| e.to_string())? {
            Some(e) if e.operation == Operation::Put => {
                let current: Option<LeaseValue> = serde_json::from_slice(&e.value).ok();
                let free = current
                    .as_ref()
                    .is_none_or(|c| c.holder == self.holder || c.until_ms < now_ms);
                free && kv.update(LEASE_KEY, value.into(), e.revision).await.is_ok()
            }
            // Never taken, or released (a delete marker): create fails if another got there first.
            Some(e) => kv.update(LEASE_KEY, value.into(), e.revision).await.is_ok(),
            None => kv.create(LEASE_KEY, value.into()).await.is_ok(),
        };
        // A margin for the clocks and the time the write took: stop a little before others may
        // take over.
        let margin = ttl / 5;
        self.set(held.then(|| started + ttl.saturating_sub(margin)));
        Ok(held)
    }

    /// Releases the lease if held (a graceful stop hands over at once).
    async fn release(&self, kv: &Store) {
        if let Ok(Some(e)) = kv.entry(LEASE_KEY).await
            && e.operation == Operation::Put
            && serde_json::from_slice::<LeaseValue>(&e.value).is_ok_and(|v| v.holder == self.holder)
        {
            let _ = kv.delete_expect_revision(LEASE_KEY, Some(e.revision)).await;
        }
        self.set(None);
    }

    /// Takes and renews the lease every third of `ttl` until `shutdown`.
    pub async fn run(self, kv: Store, ttl: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.try_hold(&kv, ttl).await {
                tracing::warn!(error = %e, "alert evaluator lease: NATS KV unavailable");
                if !self.is_held() {
                    self.set(None);
                }
            }
        }
        self.release(&kv).await;
    }
}
