//! Group commit for small requests.
//!
//! Many clients send one event per request. Publishing each as its own JetStream message costs
//! a round trip, a stored message, a delivery and an ack apiece. The coalescer merges requests
//! that arrive while earlier publishes are in flight into one publish ("natural batching"): no
//! added latency when idle, big batches under load. Every request still hears 202 only after
//! JetStream acknowledged the message holding its events.
//!
//! Requests with an `Idempotency-Key` or a `traceparent` bypass it: their message ids and trace
//! headers belong to them alone.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::encode::{Batch, BatchBuilder, Encoded};
use crate::publish::{PublishContext, PublishError, PublishOutcome, Publisher};

/// Events merged into one flush at most.
const MAX_EVENTS_PER_FLUSH: usize = 10_000;
/// Flushes in flight at once.
const MAX_INFLIGHT_FLUSHES: usize = 8;
/// Requests waiting for a flush; beyond this, senders wait (backpressure).
const QUEUE: usize = 4096;
/// A batch at least this big is published as it is, never copied into a merged one.
const STANDS_ALONE_BYTES: usize = 64 * 1024;

fn stands_alone(batch: &Batch) -> bool {
    batch.payload.len() >= STANDS_ALONE_BYTES
}

struct Job {
    encoded: Encoded,
    received_at_nanos: i64,
    reply: oneshot::Sender<Result<PublishOutcome, PublishError>>,
}

#[derive(Clone)]
pub struct Coalescer {
    tx: mpsc::Sender<Job>,
}

impl Coalescer {
    pub fn spawn(publisher: Publisher) -> Coalescer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(publisher, rx));
        Coalescer { tx }
    }

    /// Publishes `events` together with whatever else is waiting; resolves when JetStream
    /// acknowledged them.
    pub async fn publish(
        &self,
        encoded: Encoded,
        received_at_nanos: i64,
    ) -> Result<PublishOutcome, PublishError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                encoded,
                received_at_nanos,
                reply,
            })
            .await
            .map_err(|_| PublishError::Other("ingest is shutting down".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(PublishError::Other("publish task stopped".into())))
    }
}

async fn run(publisher: Publisher, mut rx: mpsc::Receiver<Job>) {
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_FLUSHES));
    while let Some(first) = rx.recv().await {
        // Wait for a flush slot first: while we wait, more requests queue up and join.
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut events = first.encoded.events;
        let mut jobs = vec![first];
        while events < MAX_EVENTS_PER_FLUSH {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.encoded.events;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let publisher = publisher.clone();
        tokio::spawn(async move {
            flush(&publisher, jobs).await;
            drop(permit);
        });
    }
}

async fn flush(publisher: &Publisher, jobs: Vec<Job>) {
    let received_at_nanos = jobs.iter().map(|j| j.received_at_nanos).min().unwrap_or(0);
    let (encoded, replies): (Vec<Encoded>, Vec<_>) = jobs
        .into_iter()
        .map(|j| {
            let events = j.encoded.events;
            (j.encoded, (events, j.reply))
        })
        .unzip();
    let all = combine(encoded, publisher.max_payload());
    let ctx = PublishContext {
        idempotency_key: None,
        received_at_nanos,
        traceparent: None,
    };
    let result = publisher.publish(&all, &ctx).await;
    for (n, reply) in replies {
        let _ = reply.send(match &result {
            Ok(_) => Ok(PublishOutcome {
                accepted: n,
                duplicates: 0,
            }),
            Err(e) => Err(e.clone()),
        });
    }
}

/// The messages of one flush: a request alone keeps its batches; of several, the small batches
/// are merged per service into one message per service for all of them (their lines copied
/// once), and big ones (a request of many events) go as they are, since copying them would cost
/// more than the message it saves.
fn combine(requests: Vec<Encoded>, max_payload: usize) -> Vec<Batch> {
    if requests.len() == 1 {
        return requests.into_iter().flat_map(|e| e.batches).collect();
    }
    let small_bytes = requests
        .iter()
        .flat_map(|e| &e.batches)
        .filter(|b| !stands_alone(b))
        .map(|b| b.payload.len())
        .sum();
    let mut merged = BatchBuilder::new(max_payload, small_bytes);
    let mut batches = Vec::new();
    for b in requests.into_iter().flat_map(|e| e.batches) {
        if stands_alone(&b) {
            batches.push(b);
        } else {
            merged.append(&b.service, &b.payload, b.events);
        }
    }
    batches.extend(merged.finish().batches);
    batches
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn request(service: &str, line_bytes: usize, events: usize) -> Encoded {
        let mut line = vec![b'x'; line_bytes - 1];
        line.push(b'\n');
        Encoded {
            batches: vec![Batch {
                service: service.into(),
                payload: Bytes::from(line.repeat(events)),
                events,
            }],
            events,
        }
    }

    #[test]
    fn small_requests_merge_per_service_and_big_ones_go_as_they_are() {
        let big = request("a", 300, 1000);
        let big_ptr = big.batches[0].payload.as_ptr();
        let requests = vec![
            request("a", 100, 1),
            big,
            request("b", 100, 2),
            request("a", 100, 3),
        ];
        let batches = combine(requests, 1 << 20);
        let shape: Vec<(&str, usize, usize)> = batches
            .iter()
            .map(|b| (b.service.as_str(), b.events, b.payload.len()))
            .collect();
        assert_eq!(
            shape,
            vec![("a", 1000, 300_000), ("a", 4, 400), ("b", 2, 200)]
        );
        // The big one was not copied.
        assert_eq!(batches[0].payload.as_ptr(), big_ptr);
    }

    #[test]
    fn a_request_alone_keeps_its_batches() {
        let one = request("a", 100, 5);
        let ptr = one.batches[0].payload.as_ptr();
        let batches = combine(vec![one], 1 << 20);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].payload.as_ptr(), ptr);
    }
}
