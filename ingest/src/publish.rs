//! From events to acknowledged JetStream messages.
//!
//! Events are grouped per service into NDJSON batches, each under the server's max payload, and
//! published concurrently; the caller hears "ok" only when JetStream acknowledged every batch.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use async_nats::{Client, HeaderMap};
use futures::future::join_all;
use logjet_core::jetstream::Nats;
use logjet_core::outage::OutageTracker;
use logjet_core::subject::{ServiceName, headers};
use sha2::{Digest, Sha256};

use crate::metrics::IngestMetrics;

/// Room left for headers under the server's max payload.
const HEADER_ALLOWANCE: usize = 2048;
/// Used when the server has not told us its max payload yet.
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

pub use crate::encode::{Batch, Encoded, encode_batches};

/// The deterministic `Nats-Msg-Id` of batch `index` of a request with this idempotency key: a
/// retried request produces the same batches and so the same ids, and JetStream drops the copies.
pub fn message_id(idempotency_key: &str, service: &str, index: usize) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    format!("{}-{service}-{index}", hex::encode(&digest[..16]))
}

/// What the request brings besides its events.
#[derive(Debug, Default, Clone)]
pub struct PublishContext {
    pub idempotency_key: Option<String>,
    pub received_at_nanos: i64,
    pub traceparent: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    pub accepted: usize,
    /// Events in batches JetStream recognised as duplicates (a retried idempotent request).
    pub duplicates: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to NATS")]
    NotConnected,
    #[error("no acknowledgement from JetStream within {0:?}")]
    TimedOut(Duration),
    #[error("stream not found for the subject")]
    NoStream,
    #[error("{0}")]
    Other(String),
}

impl PublishError {
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::NotConnected => "not_connected",
            PublishError::TimedOut(_) => "timeout",
            PublishError::NoStream => "no_stream",
            PublishError::Other(_) => "error",
        }
    }
}

#[derive(Clone)]
pub struct Publisher {
    client: Client,
    /// Tells a publish waiting for acknowledgements that the connection is gone.
    status: OutageTracker,
    js: jetstream::Context,
    timeout: Duration,
    metrics: IngestMetrics,
}

impl Publisher {
    pub fn new(nats: &Nats, timeout: Duration, metrics: IngestMetrics) -> Publisher {
        let js = logjet_core::jetstream::context(nats.client.clone(), timeout);
        Publisher {
            client: nats.client.clone(),
            status: nats.status.clone(),
            js,
            timeout,
            metrics,
        }
    }

    /// Whether NATS is known to be unreachable (the outage is logged by its tracker).
    pub fn in_outage(&self) -> bool {
        !self.is_connected() || !self.status.is_up()
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn max_payload(&self) -> usize {
        match self.client.server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            n => n,
        }
        .saturating_sub(HEADER_ALLOWANCE)
        .max(1024)
    }

    /// Publishes every event and waits for all acknowledgements. Fails at once when NATS is
    /// not connected, and as soon as the connection is lost while it waits: a publish must not
    /// sit in the client's buffer through an outage and answer long after (it might be sent when
    /// NATS is back, as a publish that timed out might: clients retry 503s, and an
    /// `Idempotency-Key` makes such a retry count once).
    pub async fn publish(
        &self,
        batches: &[Batch],
        ctx: &PublishContext,
    ) -> Result<PublishOutcome, PublishError> {
        let lost = self.status.next_loss();
        if !self.is_connected() {
            return Err(self.failed(PublishError::NotConnected));
        }
        tokio::select! {
            result = self.publish_connected(batches, ctx) => result,
            () = lost => Err(self.failed(PublishError::NotConnected)),
        }
    }

    async fn publish_connected(
        &self,
        batches: &[Batch],
        ctx: &PublishContext,
    ) -> Result<PublishOutcome, PublishError> {
        let start = Instant::now();
        let mut pending = Vec::with_capacity(batches.len());
        for (index, batch) in batches.iter().enumerate() {
            let mut hdrs = HeaderMap::new();
            hdrs.insert(headers::FORMAT, headers::FORMAT_CANONICAL);
            hdrs.insert(
                headers::RECEIVED_AT,
                ctx.received_at_nanos.to_string().as_str(),
            );
            if let Some(tp) = &ctx.traceparent {
                hdrs.insert(headers::TRACEPARENT, tp.as_str());
            }
            let mut msg = PublishMessage::build()
                .payload(batch.payload.clone())
                .headers(hdrs);
            if let Some(key) = &ctx.idempotency_key {
                msg = msg.message_id(message_id(key, &batch.service, index));
            }
            let subject = ServiceName::parse_strict(&batch.service)
                .map(|s| s.subject())
                .map_err(PublishError::Other)?;
            let ack = self
                .js
                .send_publish(subject, msg)
                .await
                .map_err(|e| self.classify(e.kind(), e.to_string()))?;
            pending.push((batch.events, ack.into_future()));
        }
        let (sizes, futures): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        let results = join_all(futures).await;
        self.metrics
            .publish_duration
            .observe(start.elapsed().as_secs_f64());
        let mut outcome = PublishOutcome::default();
        for (events, result) in sizes.into_iter().zip(results) {
            let ack = result.map_err(|e| self.classify(e.kind(), e.to_string()))?;
            self.metrics.batch_events.observe(events as f64);
            if ack.duplicate {
                outcome.duplicates += events;
            } else {
                outcome.accepted += events;
            }
        }
        Ok(outcome)
    }

    fn classify(&self, kind: PublishErrorKind, message: String) -> PublishError {
        self.failed(match kind {
            PublishErrorKind::TimedOut => PublishError::TimedOut(self.timeout),
            PublishErrorKind::StreamNotFound => PublishError::NoStream,
            _ if !self.is_connected() => PublishError::NotConnected,
            _ => PublishError::Other(message),
        })
    }

    /// Counts a failure in `logjet_jetstream_publish_failures_total`.
    fn failed(&self, err: PublishError) -> PublishError {
        self.metrics
            .publish_failures
            .with_label_values(&[err.code()])
            .inc();
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_deterministic_per_key_service_and_index() {
        assert_eq!(message_id("k1", "api", 0), message_id("k1", "api", 0));
        assert_ne!(message_id("k1", "api", 0), message_id("k1", "api", 1));
        assert_ne!(message_id("k1", "api", 0), message_id("k2", "api", 0));
        assert_ne!(message_id("k1", "api", 0), message_id("k1", "web", 0));
    }
}
