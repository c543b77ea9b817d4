//! Events into JetStream payloads: NDJSON of canonical events, one service per message, each
//! under the server's max payload.
//!
//! Every event is written straight into its service's payload buffer — from the request body
//! by the borrowed fast path ([`logjet_core::parse::parse_body_each`]) or from a `LogEvent` —
//! and a full payload is cut off the front of its buffer without copying. The first service's
//! buffer is sized for the whole request up front, so a request of one service allocates its
//! payload about once, not per event.

use bytes::{BufMut, Bytes, BytesMut};
use logjet_core::LogEvent;
use logjet_core::parse::AnyEvent;

use crate::buffers::BufferPool;

/// One JetStream message: NDJSON of canonical events of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub service: String,
    pub payload: Bytes,
    pub events: usize,
}

/// A request's events, encoded.
#[derive(Debug, Default)]
pub struct Encoded {
    pub batches: Vec<Batch>,
    pub events: usize,
}

/// Groups events per service (keeping their order within a service) into payloads of at most
/// `max_payload` bytes; an event larger than that travels alone. Batches come out in a fixed
/// order (cut ones as they fill, then the open ones by first appearance), so a retried request
/// yields the same batches and the same message ids.
pub struct BatchBuilder {
    max_payload: usize,
    first_capacity: usize,
    open: Vec<(String, BytesMut, usize)>,
    done: Vec<Batch>,
    events: usize,
    /// Where the first service's buffer comes from and goes back to, if anywhere.
    pool: Option<BufferPool>,
}

impl BatchBuilder {
    /// `expected_bytes`: about how much the first service's payloads will hold (the body's size
    /// is a good guess).
    pub fn new(max_payload: usize, expected_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_payload,
            first_capacity: expected_bytes.clamp(512, max_payload.max(512) + 512),
            open: Vec::new(),
            done: Vec::new(),
            events: 0,
            pool: None,
        }
    }

    /// [`new`](Self::new), the first service's buffer taken from `pool` and given back to it
    /// when the batches are finished (reused once they are published and dropped).
    pub fn pooled(max_payload: usize, expected_bytes: usize, pool: &BufferPool) -> BatchBuilder {
        BatchBuilder {
            pool: Some(pool.clone()),
            ..BatchBuilder::new(max_payload, expected_bytes)
        }
    }

    fn slot(&mut self, service: &str) -> usize {
        match self.open.iter().position(|(s, _, _)| s == service) {
            Some(i) => i,
            None => {
                // Others than the first start small and grow.
                let buf = match &self.pool {
                    _ if !self.open.is_empty() => BytesMut::with_capacity(4096),
                    Some(pool) => pool.take(self.first_capacity),
                    None => BytesMut::with_capacity(self.first_capacity),
                };
                self.open.push((service.to_string(), buf, 0));
                self.open.len() - 1
            }
        }
    }

    /// Appends one event (`write` puts its canonical JSON, without newline, into the buffer).
    pub fn push<E>(
        &mut self,
        service: &str,
        write: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        let slot = self.slot(service);
        let max = self.max_payload;
        let (service, buf, n) = &mut self.open[slot];
        let before = buf.len();
        if let Err(e) = write(buf) {
            buf.truncate(before);
            return Err(e);
        }
        buf.put_u8(b'\n');
        if *n > 0 && buf.len() > max {
            // This event does not fit: what came before it is a full payload.
            self.done.push(Batch {
                service: service.clone(),
                payload: buf.split_to(before).freeze(),
                events: *n,
            });
            *n = 0;
        }
        *n += 1;
        self.events += 1;
        Ok(())
    }

    /// Appends ready NDJSON of `events` events of `service` (a whole batch of another request),
    /// cutting before it when it would not fit.
    pub fn append(&mut self, service: &str, ndjson: &[u8], events: usize) {
        let slot = self.slot(service);
        let max = self.max_payload;
        let (service, buf, n) = &mut self.open[slot];
        if *n > 0 && buf.len() + ndjson.len() > max {
            self.done.push(Batch {
                service: service.clone(),
                payload: buf.split().freeze(),
                events: *n,
            });
            *n = 0;
        }
        buf.extend_from_slice(ndjson);
        *n += events;
        self.events += events;
    }

    pub fn finish(mut self) -> Encoded {
        for (i, (service, mut buf, n)) in self.open.into_iter().enumerate() {
            // The first buffer goes back to the pool when its allocation is known: no batch was
            // cut off its front (then its capacity, what it holds and its room, is all of it).
            let payload = match &self.pool {
                Some(pool)
                    if i == 0
                        && BufferPool::keeps(buf.capacity())
                        && !self.done.iter().any(|b| b.service == service) =>
                {
                    let allocated = buf.capacity();
                    let payload = buf.split().freeze();
                    pool.give_back(buf, allocated);
                    payload
                }
                _ => buf.freeze(),
            };
            if n > 0 {
                self.done.push(Batch {
                    service,
                    payload,
                    events: n,
                });
            }
        }
        Encoded {
            batches: self.done,
            events: self.events,
        }
    }
}

/// Appends a parsed event, borrowed or owned.
pub fn push_event(b: &mut BatchBuilder, ev: &AnyEvent<'_, '_>) -> std::io::Result<()> {
    b.push(ev.service(), |buf| ev.write_canonical(buf.writer()))
}

/// Encodes owned events (the shippers' protocols, MessagePack).
pub fn encode_batches(events: &[LogEvent], max_payload: usize) -> Vec<Batch> {
    encode_events(events, max_payload).batches
}

pub fn encode_events(events: &[LogEvent], max_payload: usize) -> Encoded {
    let mut b = BatchBuilder::new(max_payload, events.len() * 320);
    for ev in events {
        // Writing into memory cannot fail, and a `LogEvent` always serialises.
        let _ = b.push(&ev.service, |buf| serde_json::to_writer(buf.writer(), ev));
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use logjet_core::Level;

    fn ev(service: &str, msg: &str) -> LogEvent {
        LogEvent {
            ts: Utc::now(),
            service: service.into(),
            level: Level::Info,
            message: msg.into(),
            fields: Default::default(),
            trace_id: None,
            host: None,
        }
    }

    #[test]
    fn batches_group_by_service_and_respect_the_size_limit() {
        let events: Vec<LogEvent> = (0..100)
            .map(|i| ev(if i % 2 == 0 { "a" } else { "b" }, &"x".repeat(100)))
            .collect();
        let batches = encode_batches(&events, 1000);
        assert!(batches.iter().all(|b| b.payload.len() <= 1000));
        let a: usize = batches
            .iter()
            .filter(|b| b.service == "a")
            .map(|b| b.events)
            .sum();
        let b: usize = batches
            .iter()
            .filter(|b| b.service == "b")
            .map(|b| b.events)
            .sum();
        assert_eq!((a, b), (50, 50));
        for batch in &batches {
            let lines: Vec<&[u8]> = batch
                .payload
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines.len(), batch.events);
            for l in lines {
                let back: LogEvent = serde_json::from_slice(l).unwrap();
                assert_eq!(back.service, batch.service);
            }
        }
    }

    #[test]
    fn an_oversized_event_travels_alone() {
        let events = vec![
            ev("a", "small"),
            ev("a", &"y".repeat(5000)),
            ev("a", "small"),
        ];
        let batches = encode_batches(&events, 1000);
        assert_eq!(
            batches.iter().map(|b| b.events).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }

    #[test]
    fn the_first_buffer_goes_back_to_the_pool_unless_batches_were_cut_off_it() {
        let line = [b'x'; 1000];
        let pool = BufferPool::default();
        // Nearly full, as a request's payload is (its length plus its capacity would be more than
        // the pool keeps; its allocation is not).
        let mut b = BatchBuilder::pooled(1 << 20, 400_000, &pool);
        for _ in 0..390 {
            b.append("a", &line, 1);
        }
        assert_eq!(b.finish().batches.len(), 1);
        assert_eq!(pool.pooled(), 1);
        // Cut into several: the allocation's size is no longer known from the buffer.
        let pool = BufferPool::default();
        let mut b = BatchBuilder::pooled(20_000, 64 * 1024, &pool);
        for _ in 0..30 {
            b.append("a", &line, 1);
        }
        assert!(b.finish().batches.len() > 1);
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn appended_batches_merge_per_service_under_the_limit() {
        let one = encode_batches(&[ev("a", "x")], 1000);
        let line = one[0].payload.clone();
        let mut b = BatchBuilder::new(3 * line.len(), 0);
        for s in ["a", "b", "a", "a", "a"] {
            b.append(s, &line, 1);
        }
        let e = b.finish();
        assert_eq!(e.events, 5);
        let shape: Vec<(&str, usize)> = e
            .batches
            .iter()
            .map(|b| (b.service.as_str(), b.events))
            .collect();
        assert_eq!(shape, vec![("a", 3), ("a", 1), ("b", 1)]);
        assert!(e.batches.iter().all(|b| b.payload.len() <= 3 * line.len()));
    }
}
