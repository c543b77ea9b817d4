//! The consume loop: pull a batch, decode, dead-letter what cannot be read, apply to Redis in one
//! atomic call, then acknowledge. Acks come only after Redis has the effects; a Redis failure
//! naks the batch with a delay and pauses pulling until Redis answers again, so an outage costs
//! each message one delivery attempt, not all of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::join_all;
use logjet_core::jetstream::Nats;
use logjet_core::outage::Throttle;
use logjet_core::store::{self, Redis};
use logjet_core::subject::headers;
use tokio_util::sync::CancellationToken;

use crate::aggregate::{Aggregator, MessageEvents, PlanSettings, plan_batch};
use crate::decode::{self, Decoded, MessageMeta};
use crate::dlq::DeadLetters;
use crate::metrics::ProcessorMetrics;
pub(crate) use logjet_core::shutdown::sleep_or_shutdown;

/// Everything the loop needs.
pub struct Worker {
    pub consumer: PullConsumer,
    /// The connection the consumer uses: no fetch is started while it is down.
    pub nats: Nats,
    pub aggregator: Aggregator,
    /// Redis's outage tracker (and its ping), fed by every apply.
    pub redis: Redis,
    /// Failures that are not an outage (a script error) are logged at most once a minute.
    pub failures_log: Throttle,
    pub dead_letters: DeadLetters,
    pub metrics: ProcessorMetrics,
    pub settings: PlanSettings,
    pub fetch_batch: usize,
    pub fetch_max_bytes: usize,
    pub fetch_expires: Duration,
    pub linger: Duration,
    pub nak_delay: Duration,
    pub max_deliver: i64,
    pub max_age: Duration,
}

/// A failure that the next delivery may not meet (Redis or NATS down).
#[derive(Debug, thiserror::Error)]
pub enum Transient {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("dead-letter publish: {0}")]
    DeadLetter(String),
    #[error("Redis WAIT: {got} of {wanted} replicas have the batch")]
    Unreplicated { wanted: u32, got: u64 },
}

/// After shutdown, what is left of the open pull request is read for this long past its expiry
/// (so its messages can be handed back at once); a request that does not end by then (NATS gone)
/// is abandoned and its messages come back after `ack_wait`.
const DRAIN_MARGIN: Duration = Duration::from_millis(250);
/// Acks and naks are sends into the client's buffer; they wait only when it is full (a long NATS
/// outage). A nak that cannot be sent within this is left to `ack_wait`.
const ACK_BOUND: Duration = Duration::from_secs(1);

impl Worker {
    /// Runs until `shutdown`. Work is pulled one bounded batch request at a time (never a standing
    /// subscription), so on shutdown nothing is left on its way to this replica: the batch in hand
    /// is applied and acknowledged, the rest of the open request is drained (it ends after
    /// `fetch_expires` at the latest) and handed back with a nak, so another replica takes it at
    /// once instead of after `ack_wait`. No fetch starts while NATS is down, and nothing waits on
    /// NATS past shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if !self.nats.is_connected() {
                // The outage is NATS's tracker's to log; a fetch now would only queue requests
                // in the client until it reconnects.
                sleep_or_shutdown(&shutdown, Duration::from_millis(100)).await;
                continue;
            }
            // Not raced against shutdown: once the pull request is published, the server
            // delivers to its inbox, and dropping the request half-made would strand those
            // messages until `ack_wait`. Making it only subscribes and publishes (no reply
            // awaited); the bound covers a client buffer full in an outage. A shutdown that
            // comes meanwhile is seen below, and the request drained and handed back.
            let request = tokio::time::timeout(
                ACK_BOUND,
                self.consumer
                    .batch()
                    .max_messages(self.fetch_batch)
                    .max_bytes(self.fetch_max_bytes)
                    .expires(self.fetch_expires)
                    .messages(),
            )
            .await;
            let messages = match request {
                Ok(Ok(m)) => m,
                Err(_) => continue,
                Ok(Err(e)) => {
                    if !self.nats.is_connected() {
                        tracing::debug!(error = %e, "cannot pull during a NATS outage");
                    } else if let Some(suppressed) = self.failures_log.allow() {
                        tracing::warn!(error = %e, suppressed, "cannot pull from the consumer; retrying");
                    }
                    sleep_or_shutdown(&shutdown, Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut chunks = messages.ready_chunks(self.fetch_batch);
            let mut redis_down = false;
            let mut handed_back = 0usize;
            let mut drain_until = None;
            loop {
                let chunk = match drain_until {
                    None => tokio::select! {
                        biased;
                        c = chunks.next() => c,
                        _ = shutdown.cancelled() => {
                            drain_until = Some(
                                tokio::time::Instant::now() + self.fetch_expires + DRAIN_MARGIN,
                            );
                            continue;
                        }
                    },
                    Some(until) => match tokio::time::timeout_at(until, chunks.next()).await {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                };
                let Some(chunk) = chunk else { break };
                let mut msgs = Vec::with_capacity(self.fetch_batch);
                keep_messages(chunk, &mut msgs);
                if shutdown.is_cancelled() || redis_down {
                    handed_back += msgs.len();
                    self.hand_back(&msgs, redis_down).await;
                    continue;
                }
                // Linger briefly for more: fewer, larger batches mean fewer Redis calls and
                // fewer, larger chunks (which is what keeps searches fast).
                let bytes = |msgs: &[jetstream::Message]| {
                    msgs.iter().map(|m| m.payload.len()).sum::<usize>()
                };
                if !msgs.is_empty() && msgs.len() < self.fetch_batch && !self.linger.is_zero() {
                    let deadline = tokio::time::Instant::now() + self.linger;
                    while msgs.len() < self.fetch_batch && bytes(&msgs) < self.fetch_max_bytes {
                        match tokio::time::timeout_at(deadline, chunks.next()).await {
                            Ok(Some(more)) => keep_messages(more, &mut msgs),
                            _ => break,
                        }
                    }
                }
                if msgs.is_empty() {
                    continue;
                }
                if let Err(e) = self.process(msgs).await {
                    self.log_transient(&e);
                    // The rest of this request is nak'ed too: fetching while Redis is down would
                    // only burn delivery attempts.
                    redis_down = true;
                }
            }
            if handed_back > 0 && shutdown.is_cancelled() {
                tracing::info!(messages = handed_back, "handed back unprocessed messages");
            }
            if redis_down {
                self.wait_for_redis(&shutdown).await;
            }
        }
    }

    /// A batch was nak'ed: an outage (Redis, or NATS for a dead letter) is its tracker's to log;
    /// anything else is said, at most once a minute.
    fn log_transient(&self, e: &Transient) {
        let outage = match e {
            Transient::Redis(e) => store::is_unavailable(e),
            Transient::DeadLetter(_) => !self.nats.is_connected(),
            Transient::Unreplicated { .. } => false,
        };
        if outage {
            tracing::debug!(error = %e, "batch nak'ed during an outage; pausing until Redis answers");
        } else if let Some(suppressed) = self.failures_log.allow() {
            tracing::warn!(error = %e, suppressed, "batch nak'ed; pausing until Redis answers");
        }
    }

    /// Returns messages to the consumer: at once on shutdown, after `nak_delay` when Redis is down.
    async fn hand_back(&self, msgs: &[jetstream::Message], delayed: bool) {
        let kind = if delayed {
            AckKind::Nak(Some(self.nak_delay))
        } else {
            AckKind::Nak(None)
        };
        send_acks(msgs.iter().map(|m| m.ack_with(kind)), "nak").await;
    }

    async fn wait_for_redis(&self, shutdown: &CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let pinged = tokio::select! {
                r = self.redis.ping() => r,
                _ = shutdown.cancelled() => return,
            };
            if pinged.is_ok() {
                self.metrics.redis_up.set(1);
                if self.replicas_ready().await {
                    return;
                }
            } else {
                self.metrics.redis_up.set(0);
            }
            if !sleep_or_shutdown(shutdown, delay).await {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// With `WAIT` on, a master without enough replicas (just promoted, its old master not back
    /// yet) would nak every batch: fetching then would only burn delivery attempts.
    async fn replicas_ready(&self) -> bool {
        let wanted = self.aggregator.wait_replicas();
        wanted == 0
            || self
                .aggregator
                .connected_replicas()
                .await
                .is_ok_and(|n| n >= u64::from(wanted))
    }

    /// Handles one batch. On `Err`, every message of the batch has been nak'ed with a delay.
    pub async fn process(&self, msgs: Vec<jetstream::Message>) -> Result<(), Transient> {
        let now = Utc::now();
        let mut decoded: Vec<(u64, Decoded)> = Vec::with_capacity(msgs.len());
        let mut traceparents = Vec::new();
        for m in &msgs {
            let (seq, published, delivered) = match m.info() {
                Ok(i) => (
                    i.stream_sequence,
                    logjet_core::jetstream::published_at(&i),
                    i.delivered,
                ),
                Err(_) => (0, now, 1),
            };
            if delivered > 1 {
                self.metrics.redelivered.inc();
                if delivered >= self.max_deliver {
                    tracing::error!(seq, delivered, "last delivery attempt of this message");
                }
            }
            if let Some(tp) = m.headers.as_ref().and_then(|h| h.get(headers::TRACEPARENT)) {
                traceparents.push(tp.as_str().to_string());
            }
            let meta = MessageMeta {
                subject: m.subject.as_str(),
                headers: m.headers.as_ref(),
                published,
                max_age: self.max_age,
            };
            decoded.push((seq, decode::decode(&m.payload, &meta)));
        }

        // Dead letters first: once they are safely in LOGS_DLQ, the message can be applied
        // (its good lines) or terminated (nothing good in it).
        for (m, (seq, d)) in msgs.iter().zip(&decoded) {
            if !d.rejects.is_empty()
                && let Err(e) = self.dead_letters.send(m, *seq, &d.rejects).await
            {
                self.nak_all(&msgs).await;
                return Err(Transient::DeadLetter(e.to_string()));
            }
        }

        let inputs: Vec<MessageEvents<'_>> = decoded
            .iter()
            .filter(|(_, d)| !d.events.is_empty())
            .map(|(seq, d)| MessageEvents {
                seq: *seq,
                events: &d.events,
            })
            .collect();
        if !inputs.is_empty() {
            let planned = plan_batch(&inputs, &self.settings, now);
            let start = Instant::now();
            // A dropped connection is re-established by the connection manager: one immediate
            // retry (harmless, the apply is idempotent) saves a redelivery round.
            let mut result = self.aggregator.apply_batch(&planned).await;
            if let Err(e) = &result
                && (e.is_io_error() || e.is_connection_dropped())
            {
                tracing::debug!(error = %e, "apply failed on a dropped connection; retrying once");
                result = self.aggregator.apply_batch(&planned).await;
            }
            match self.redis.observe(result) {
                Ok(applied) if !self.aggregator.replicated_enough(&applied) => {
                    // The master has it, its replicas may not: a failover now could lose it.
                    // Redelivered, it is a no-op on this master and applied anew on a
                    // promoted replica that lacks it.
                    self.metrics.redis_unreplicated.inc();
                    self.nak_all(&msgs).await;
                    return Err(Transient::Unreplicated {
                        wanted: self.aggregator.wait_replicas(),
                        got: applied.replicas.unwrap_or(0),
                    });
                }
                Ok(applied) => {
                    self.metrics.redis_up.set(1);
                    self.metrics
                        .apply_duration
                        .observe(start.elapsed().as_secs_f64());
                    self.metrics
                        .batch_messages
                        .observe(planned.events_per_message.len() as f64);
                    self.metrics
                        .messages
                        .with_label_values(&["applied"])
                        .inc_by(applied.fresh_messages);
                    self.metrics
                        .messages
                        .with_label_values(&["already_applied"])
                        .inc_by(applied.already_applied);
                    self.metrics.events_applied.inc_by(applied.fresh_events);
                }
                Err(e) => {
                    self.metrics.redis_up.set(0);
                    self.metrics.redis_errors.inc();
                    self.nak_all(&msgs).await;
                    return Err(Transient::Redis(e));
                }
            }
        }

        // Everything is in Redis (or in the DLQ): acknowledge.
        let visible = Utc::now();
        let mut acks = Vec::with_capacity(msgs.len());
        for (m, (_, d)) in msgs.iter().zip(&decoded) {
            if let Some(received) = m
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::RECEIVED_AT))
                .and_then(|v| v.as_str().parse::<i64>().ok())
            {
                let latency = (visible - DateTime::<Utc>::from_timestamp_nanos(received))
                    .num_microseconds()
                    .unwrap_or(0)
                    .max(0) as f64
                    / 1e6;
                self.metrics.e2e_latency.observe(latency);
            }
            let kind = if d.events.is_empty() && !d.rejects.is_empty() {
                self.metrics
                    .messages
                    .with_label_values(&["dead_lettered"])
                    .inc();
                AckKind::Term
            } else {
                if d.events.is_empty() {
                    self.metrics.messages.with_label_values(&["empty"]).inc();
                }
                AckKind::Ack
            };
            acks.push(m.ack_with(kind));
        }
        // The effects are in Redis; a lost ack means a harmless redelivery.
        send_acks(acks, "ack").await;
        if traceparents.is_empty() {
            tracing::debug!(messages = msgs.len(), "batch applied");
        } else {
            tracing::info!(
                messages = msgs.len(),
                traceparent = ?traceparents,
                "batch applied"
            );
        }
        Ok(())
    }

    async fn nak_all(&self, msgs: &[jetstream::Message]) {
        self.metrics
            .messages
            .with_label_values(&["nak"])
            .inc_by(msgs.len() as u64);
        let naks = msgs
            .iter()
            .map(|m| m.ack_with(AckKind::Nak(Some(self.nak_delay))));
        send_acks(naks, "nak").await;
    }
}

/// Sends acks or naks, waiting at most [`ACK_BOUND`]: one not sent comes back after `ack_wait`.
async fn send_acks<F>(acks: impl IntoIterator<Item = F>, what: &str)
where
    F: std::future::Future<Output = Result<(), async_nats::Error>>,
{
    match tokio::time::timeout(ACK_BOUND, join_all(acks)).await {
        Ok(results) => {
            for r in results {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "{what} failed; the message comes back after ack_wait");
                }
            }
        }
        Err(_) => {
            tracing::debug!("{what}s not sent within {ACK_BOUND:?}; they come back after ack_wait")
        }
    }
}

fn keep_messages<E: std::fmt::Display>(
    batch: Vec<Result<jetstream::Message, E>>,
    out: &mut Vec<jetstream::Message>,
) {
    for m in batch {
        match m {
            Ok(m) => out.push(m),
            Err(e) => tracing::debug!(error = %e, "pull stream notice"),
        }
    }
}
