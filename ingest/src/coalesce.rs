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

use crate::encode::{BatchBuilder, Encoded};
use crate::publish::{PublishContext, PublishError, PublishOutcome, Publisher};

/// Events merged into one flush at most.
const MAX_EVENTS_PER_FLUSH: usize = 10_000;
/// Flushes in flight at once.
const MAX_INFLIGHT_FLUSHES: usize = 8;
/// Requests waiting for a flush; beyond this, senders wait (backpressure).
const QUEUE: usize = 4096;

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
    let mut replies = Vec::with_capacity(jobs.len());
    let all = if jobs.len() == 1 {
        // Alone: its batches as they are.
        let mut jobs = jobs;
        let job = jobs.remove(0);
        replies.push((job.encoded.events, job.reply));
        job.encoded
    } else {
        // Merged per service: one message per service for all of them (the lines are copied
        // once; they are single events or small requests, which is what waits here).
        let bytes = jobs
            .iter()
            .flat_map(|j| &j.encoded.batches)
            .map(|b| b.payload.len())
            .sum();
        let mut merged = BatchBuilder::new(publisher.max_payload(), bytes);
        for job in jobs {
            for b in &job.encoded.batches {
                merged.append(&b.service, &b.payload, b.events);
            }
            replies.push((job.encoded.events, job.reply));
        }
        merged.finish()
    };
    let ctx = PublishContext {
        idempotency_key: None,
        received_at_nanos,
        traceparent: None,
    };
    let result = publisher.publish(&all.batches, &ctx).await;
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
