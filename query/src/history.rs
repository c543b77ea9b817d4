//! History beyond Redis from the LOGS stream: the messages the archiver has not acknowledged yet
//! (all of the stream when there is no archive).
//!
//! JetStream reads forward only, and a newest-first page wants the newest messages first, so the
//! stream is read in **sequence slices** from the top down: `[upper - n, upper)`, each through its
//! own ordered consumer started at the slice's first sequence, `n` doubling while slices fit the
//! scan budget. The events of a slice are emitted in stream order, newest message first (last
//! event of a message first), and the cursor carries the `(sequence, index)` reached, so every
//! page moves down the stream:
//!
//! - the first slice of a page is always read to its end, whatever the budget (so a page whose
//!   budget runs out still advances by that slice);
//! - a later slice the budget cannot finish is dropped, and the next page starts with a slice of
//!   the messages that did fit;
//! - a full page cut inside a slice continues below its last event.
//!
//! Which sequences hold the window: messages published before `since` (less a skew) hold no
//! event of it, nor do messages published after its end (plus a skew): late events beyond that
//! skew are the processors' (Redis) and the archive's.

use std::time::{Duration, Instant};

use async_nats::Client;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use logjet_core::{LogEvent, message};

use crate::search::{Budget, EventQuery};

/// Messages published this long after the window's end (or before its start) may still hold
/// events of it.
pub const PUBLISH_SKEW: Duration = Duration::from_secs(5);
/// Messages in the first slice of a search.
pub const FIRST_SLICE: u64 = 16;
/// Largest slice.
const MAX_SLICE: u64 = 1 << 20;
/// A stream read waits this long for the next message before it gives up.
const READ_STALL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct History {
    pub client: Client,
    pub stream: String,
    pub max_age: Duration,
}

/// The part of the stream a history search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamWindow {
    /// Oldest event time wanted (ns, inclusive).
    pub since: i64,
    /// Events from `end` on (ns) are Redis's.
    pub end: i64,
    /// Lowest sequence to read (inclusive).
    pub lo: u64,
}

/// Where a stream page starts: below `(seq, idx)`, reading `slice` messages first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPos {
    pub seq: u64,
    pub idx: u32,
    pub slice: u64,
}

/// What one stream page found.
#[derive(Debug, Default)]
pub struct StreamPage {
    /// `(seq, idx, event)`, in stream order, newest first.
    pub events: Vec<(u64, u32, LogEvent)>,
    pub scanned: u64,
    /// Where the next page starts; `None` once everything down to `lo` is read.
    pub next: Option<StreamPos>,
    /// The budget ran out before the page was full.
    pub truncated: bool,
}

/// The stream's bounds for one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBounds {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Creation time of the stream (ms): sequences restart when it is re-created.
    pub incarnation: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("reading history from the stream: {0}")]
pub struct HistoryError(pub String);

fn err(e: impl std::fmt::Display) -> HistoryError {
    HistoryError(e.to_string())
}

/// The first slice `[start, upper)` below `pos` and above `lo` (inclusive): the message at
/// `pos.seq` is included while events of it below `pos.idx` remain.
pub fn slice_range(pos: StreamPos, lo: u64, size: u64) -> Option<(u64, u64)> {
    let upper = if pos.idx > 0 {
        pos.seq.saturating_add(1)
    } else {
        pos.seq
    };
    (upper > lo).then(|| (upper.saturating_sub(size.max(1)).max(lo), upper))
}

/// Keeps a slice's finds below `pos` in stream order, newest first, up to `room` of them;
/// returns where the page stops when the slice had more than fits.
pub fn take_newest(
    found: &mut Vec<(u64, u32, LogEvent)>,
    pos: StreamPos,
    room: usize,
) -> Option<(u64, u32)> {
    found.retain(|(s, i, _)| (*s, *i) < (pos.seq, pos.idx));
    found.sort_by_key(|f| std::cmp::Reverse((f.0, f.1)));
    if found.len() > room {
        found.truncate(room);
        found.last().map(|(s, i, _)| (*s, *i))
    } else {
        None
    }
}

impl History {
    pub async fn bounds(&self) -> Result<StreamBounds, HistoryError> {
        let js = jetstream::new(self.client.clone());
        let mut stream = js.get_stream(&self.stream).await.map_err(err)?;
        let info = stream.info().await.map_err(err)?;
        Ok(StreamBounds {
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
            incarnation: (info.created.unix_timestamp_nanos() / 1_000_000).max(0) as u64,
        })
    }

    /// The first sequence published at or after `at_ns` (`last_seq + 1` when none is).
    pub async fn seq_at(&self, at_ns: i64, b: &StreamBounds) -> Result<u64, HistoryError> {
        let js = jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.stream).await.map_err(err)?;
        let start_time =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ns)).map_err(err)?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
                ..Default::default()
            })
            .await
            .map_err(err)?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(b.last_seq.saturating_add(1));
        }
        let mut messages = consumer.messages().await.map_err(err)?;
        match tokio::time::timeout(READ_STALL, messages.next()).await {
            Ok(Some(Ok(msg))) => Ok(msg.info().map_err(err)?.stream_sequence),
            Ok(Some(Err(e))) => Err(err(e)),
            _ => Ok(b.last_seq.saturating_add(1)),
        }
    }

    /// The newest `want` events matching `q` in `w`, starting below `pos`.
    pub async fn page(
        &self,
        q: &EventQuery,
        w: StreamWindow,
        mut pos: StreamPos,
        want: usize,
        budget: Budget,
        started: Instant,
    ) -> Result<StreamPage, HistoryError> {
        let mut page = StreamPage::default();
        let js = jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.stream).await.map_err(err)?;
        let filter_subject = q.service.as_ref().map_or_else(
            || logjet_core::subject::STREAM_SUBJECTS.to_string(),
            |s| s.subject(),
        );
        let mut size = pos.slice.max(1);
        let mut first = true;
        loop {
            let Some((start, upper)) = slice_range(pos, w.lo, size) else {
                page.next = None;
                return Ok(page);
            };
            let slice = SliceRead {
                stream: &stream,
                filter_subject: &filter_subject,
                q,
                w,
                start,
                upper,
                // The first slice is read whatever the budget: every page advances.
                budget: (!first).then_some((budget, started)),
                max_age: self.max_age,
            };
            let mut read = slice.read(&mut page.scanned).await?;
            if !read.complete {
                // The budget ran out inside a later slice: start the next page with what fitted.
                page.truncated = true;
                page.next = Some(StreamPos {
                    slice: read.span.max(1),
                    ..pos
                });
                return Ok(page);
            }
            let room = want - page.events.len();
            let cut = take_newest(&mut read.found, pos, room);
            page.events.append(&mut read.found);
            if let Some((seq, idx)) = cut {
                // The messages from the slice's top down to the cut filled a page: the next page
                // starts with as many.
                page.next = Some(StreamPos {
                    seq,
                    idx,
                    slice: (upper - seq).max(1),
                });
                return Ok(page);
            }
            pos = StreamPos {
                seq: start,
                idx: 0,
                slice: size,
            };
            if start <= w.lo {
                page.next = None;
                return Ok(page);
            }
            let over = page.scanned >= budget.max_events || started.elapsed() >= budget.max_time;
            if page.events.len() >= want || over {
                page.truncated = over && page.events.len() < want;
                // A first slice that alone overran the budget: halve it next time.
                let slice = if over && first {
                    (size / 2).max(1)
                } else {
                    size
                };
                page.next = Some(StreamPos { slice, ..pos });
                return Ok(page);
            }
            first = false;
            size = size.saturating_mul(2).min(MAX_SLICE);
        }
    }
}

/// One slice `[start, upper)` of the stream.
struct SliceRead<'a> {
    stream: &'a jetstream::stream::Stream,
    filter_subject: &'a str,
    q: &'a EventQuery,
    w: StreamWindow,
    start: u64,
    upper: u64,
    budget: Option<(Budget, Instant)>,
    max_age: Duration,
}

struct SliceResult {
    found: Vec<(u64, u32, LogEvent)>,
    /// Sequences covered by the messages read (from the slice's start).
    span: u64,
    /// Read to the end (`false`: the budget ran out first).
    complete: bool,
}

impl SliceRead<'_> {
    async fn read(&self, scanned: &mut u64) -> Result<SliceResult, HistoryError> {
        let mut out = SliceResult {
            found: Vec::new(),
            span: 0,
            complete: true,
        };
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.filter_subject.to_string(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: self.start,
                },
                ..Default::default()
            })
            .await
            .map_err(err)?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(err)?;
        loop {
            if let Some((b, started)) = self.budget
                && (*scanned >= b.max_events || started.elapsed() >= b.max_time)
            {
                out.complete = false;
                return Ok(out);
            }
            let msg = match tokio::time::timeout(READ_STALL, messages.next()).await {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Err(err(e)),
                Ok(None) => return Ok(out),
                Err(_) => return Err(err("no message arrived within 5 s")),
            };
            let info = msg.info().map_err(err)?;
            let seq = info.stream_sequence;
            if seq >= self.upper {
                return Ok(out);
            }
            let pending = info.pending;
            out.span = (seq + 1).saturating_sub(self.start);
            let published = logjet_core::jetstream::published_at(&info);
            let opts = message::message_options(msg.subject.as_str(), published, self.max_age);
            let canonical = logjet_core::jetstream::is_canonical(msg.headers.as_ref());
            let decoded = message::decode_message(&msg.payload, canonical, &opts);
            for (i, ev) in decoded.events.into_iter().enumerate() {
                *scanned += 1;
                let ts = ev.ts_nanos();
                if ts < self.w.since || ts >= self.w.end || !self.q.matches(&ev) {
                    continue;
                }
                out.found.push((seq, i as u32, ev));
            }
            if pending == 0 || seq + 1 >= self.upper {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: u64, idx: u32) -> StreamPos {
        StreamPos { seq, idx, slice: 4 }
    }

    fn ev(m: &str) -> LogEvent {
        LogEvent {
            ts: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            service: "api".into(),
            level: logjet_core::Level::Info,
            message: m.into(),
            fields: Default::default(),
            trace_id: None,
            host: None,
        }
    }

    #[test]
    fn slices_go_down_from_the_cursor_and_stop_at_lo() {
        assert_eq!(slice_range(pos(100, 0), 1, 16), Some((84, 100)));
        // Events of message 100 below index 3 remain: it is in the slice.
        assert_eq!(slice_range(pos(100, 3), 1, 16), Some((85, 101)));
        assert_eq!(slice_range(pos(10, 0), 5, 16), Some((5, 10)));
        assert_eq!(slice_range(pos(5, 0), 5, 16), None);
        assert_eq!(slice_range(pos(5, 1), 5, 16), Some((5, 6)));
        assert_eq!(slice_range(pos(9, 0), 1, 0), Some((8, 9)), "at least one");
    }

    #[test]
    fn newest_first_in_stream_order_cut_at_room() {
        let mut found = vec![
            (7, 0, ev("7/0")),
            (9, 1, ev("9/1")),
            (9, 0, ev("9/0")),
            (8, 0, ev("8/0")),
            (9, 2, ev("9/2")),
        ];
        // Below (9, 2): 9/2 itself is excluded.
        let cut = take_newest(&mut found, pos(9, 2), 3);
        let names: Vec<&str> = found.iter().map(|f| f.2.message.as_str()).collect();
        assert_eq!(names, ["9/1", "9/0", "8/0"]);
        assert_eq!(cut, Some((8, 0)));

        let mut found = vec![(3, 0, ev("3/0")), (4, 0, ev("4/0"))];
        assert_eq!(take_newest(&mut found, pos(4, 0), 10), None);
        assert_eq!(found.len(), 1, "message 4 is at the cursor, not below");
    }
}
