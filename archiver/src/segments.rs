//! The open segments of one replica and the messages they hold, and when a segment is cut.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use logjet_core::archive::SegmentWriter;

/// A segment being written.
pub struct Open {
    pub writer: SegmentWriter,
    /// When its first message arrived.
    pub opened: Instant,
    /// The messages it holds events of, in arrival order.
    pub seqs: Vec<u64>,
}

/// A message received and not yet acknowledged.
pub struct Held {
    /// The latest delivery (a redelivery while held replaces it: its ack is the one that counts).
    pub msg: Message,
    /// Open or uploading segments holding its events; acknowledged when it reaches 0.
    pub segments: usize,
    /// Since when JetStream certainly leaves it to this replica: its delivery, or the last
    /// progress ack the server received.
    pub since: Instant,
    /// One of its segments was given up: it must be redelivered, never acknowledged.
    pub failed: bool,
}

/// The cut rules.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_age: Duration,
    pub max_events: u64,
    pub max_bytes: u64,
}

/// Why a segment must be cut now, if it must: `age` (its first message is `max_age` old),
/// `events`, `bytes` (of canonical NDJSON).
pub fn cut_reason(
    opened: Instant,
    rows: u64,
    raw_bytes: u64,
    limits: &Limits,
    now: Instant,
) -> Option<&'static str> {
    if rows >= limits.max_events {
        Some("events")
    } else if raw_bytes >= limits.max_bytes {
        Some("bytes")
    } else if now.saturating_duration_since(opened) >= limits.max_age {
        Some("age")
    } else {
        None
    }
}

/// Whether every one of `seqs` is held and certainly still this replica's: its hold was
/// confirmed less than `ack_wait - margin` ago. A segment with any other message must not be
/// committed (the message may already be redelivered to another replica).
pub fn hold_certain(
    held: &HashMap<u64, Held>,
    seqs: &[u64],
    ack_wait: Duration,
    now: Instant,
) -> bool {
    let limit = ack_wait.saturating_sub(hold_margin(ack_wait));
    seqs.iter().all(|s| {
        held.get(s)
            .is_some_and(|h| !h.failed && now.saturating_duration_since(h.since) < limit)
    })
}

/// How long before `ack_wait` runs out a hold is no longer trusted.
pub fn hold_margin(ack_wait: Duration) -> Duration {
    (ack_wait / 5).max(Duration::from_secs(2))
}

/// How often progress acks renew the hold on held messages.
pub fn progress_every(ack_wait: Duration) -> Duration {
    ack_wait / 4
}

/// The open segment to cut when a bound is reached: the one with the largest `key`.
pub fn largest<K: Ord>(open: &HashMap<String, Open>, key: impl Fn(&Open) -> K) -> Option<String> {
    open.iter()
        .max_by(|a, b| key(a.1).cmp(&key(b.1)).then_with(|| b.0.cmp(a.0)))
        .map(|(s, _)| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_age: Duration::from_secs(60),
        max_events: 100,
        max_bytes: 1000,
    };

    #[test]
    fn cut_by_events_bytes_or_age_whichever_first() {
        let t0 = Instant::now();
        assert_eq!(cut_reason(t0, 10, 10, &LIMITS, t0), None);
        assert_eq!(cut_reason(t0, 100, 10, &LIMITS, t0), Some("events"));
        assert_eq!(cut_reason(t0, 10, 1000, &LIMITS, t0), Some("bytes"));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(cut_reason(t0, 1, 1, &LIMITS, later), Some("age"));
        assert_eq!(
            cut_reason(t0, 1, 1, &LIMITS, t0 + Duration::from_secs(59)),
            None
        );
    }

    #[test]
    fn margins() {
        assert_eq!(
            hold_margin(Duration::from_secs(60)),
            Duration::from_secs(12)
        );
        assert_eq!(hold_margin(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(
            progress_every(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
    }
}
