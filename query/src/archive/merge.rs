//! The newest-first merge of one archive page over the segments it reads, without any I/O.
//!
//! Segments are read in order of their newest event (`max_ts`, newest first), a few at a time;
//! each gives its matching events below the cursor, newest first. An event is emitted once no
//! unread segment can hold a newer one (the frontier: the newest `max_ts` still unread), so a page
//! comes out in exact `(ts, stream_seq, event_idx)` descending order, each identity once.

use std::collections::BinaryHeap;

use logjet_core::LogEvent;

/// An event's identity and order: `(ts, stream_seq, event_idx)`.
pub type Key = (i64, u64, u32);

struct Found {
    key: Key,
    event: LogEvent,
}

impl PartialEq for Found {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Found {}
impl PartialOrd for Found {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Found {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

pub struct ArchiveMerge {
    limit: usize,
    heap: BinaryHeap<Found>,
    out: Vec<(Key, LogEvent)>,
}

impl ArchiveMerge {
    pub fn new(limit: usize) -> ArchiveMerge {
        ArchiveMerge {
            limit,
            heap: BinaryHeap::new(),
            out: Vec::new(),
        }
    }

    /// A segment's matching events (any order).
    pub fn add(&mut self, found: impl IntoIterator<Item = (Key, LogEvent)>) {
        self.heap
            .extend(found.into_iter().map(|(key, event)| Found { key, event }));
    }

    /// Emits what no unread segment can beat; `frontier` is the newest `max_ts` of the segments
    /// not read yet (`None`: every segment is read). Returns true when the page is full.
    pub fn emit(&mut self, frontier: Option<i64>) -> bool {
        while self.out.len() < self.limit
            && self
                .heap
                .peek()
                .is_some_and(|f| frontier.is_none_or(|t| f.key.0 > t))
        {
            let Some(f) = self.heap.pop() else { break };
            // The same event from two segments (a commit repeated after a crash): once.
            if self.out.last().is_some_and(|(k, _)| *k == f.key) {
                continue;
            }
            self.out.push((f.key, f.event));
        }
        self.out.len() >= self.limit
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The page, and the key the next page continues strictly below (`None`: nothing is left).
    /// `truncated`: the budget ran out with segments unread.
    pub fn finish(self, frontier: Option<i64>, truncated: bool) -> (Vec<LogEvent>, Option<Key>) {
        let last = self.out.last().map(|(k, _)| *k);
        let more = !self.heap.is_empty() || frontier.is_some();
        let next = if self.out.len() >= self.limit && more {
            last
        } else if truncated {
            match (last, self.heap.peek(), frontier) {
                (Some(l), _, _) => Some(l),
                // Resume just above the newest event waiting, so it comes next.
                (None, Some(top), _) => Some((top.key.0, top.key.1, top.key.2.saturating_add(1))),
                (None, None, Some(t)) => Some((t, u64::MAX, u32::MAX)),
                (None, None, None) => None,
            }
        } else {
            None
        };
        (self.out.into_iter().map(|(_, e)| e).collect(), next)
    }
}

/// Segments to read next: at least one, then more while they fit `max_bytes` together and
/// `max_count` in number. `sizes` are the bytes of the segments in reading order.
pub fn next_group(sizes: &[u64], max_count: usize, max_bytes: u64) -> usize {
    let mut total = 0u64;
    let mut n = 0;
    for &s in sizes.iter().take(max_count.max(1)) {
        if n > 0 && total.saturating_add(s) > max_bytes {
            break;
        }
        total = total.saturating_add(s);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, seq: u64) -> (Key, LogEvent) {
        let event = LogEvent {
            ts: chrono::DateTime::from_timestamp_nanos(ts),
            service: "api".into(),
            level: logjet_core::Level::Info,
            message: format!("{ts}/{seq}"),
            fields: Default::default(),
            trace_id: None,
            host: None,
        };
        ((ts, seq, 0), event)
    }

    fn names(v: &[LogEvent]) -> Vec<&str> {
        v.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn emits_only_past_the_frontier_and_each_identity_once() {
        let mut m = ArchiveMerge::new(10);
        // Segment A (newest 300) read; segment B (newest 250) not yet.
        m.add([ev(300, 1), ev(200, 2)]);
        assert!(!m.emit(Some(250)));
        assert_eq!(m.len(), 1);
        // B holds 260 and the same event 200/2 again (a repeated commit).
        m.add([ev(240, 3), ev(200, 2)]);
        assert!(!m.emit(None));
        let (events, next) = m.finish(None, false);
        assert_eq!(names(&events), ["300/1", "240/3", "200/2"]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_full_page_continues_below_its_last_event() {
        let mut m = ArchiveMerge::new(2);
        m.add([ev(300, 1), ev(200, 2), ev(100, 3)]);
        assert!(m.emit(None));
        let (events, next) = m.finish(None, false);
        assert_eq!(names(&events), ["300/1", "200/2"]);
        assert_eq!(next, Some((200, 2, 0)));
        // Full, nothing left: no cursor.
        let mut m = ArchiveMerge::new(1);
        m.add([ev(300, 1)]);
        assert!(m.emit(None));
        assert_eq!(m.finish(None, false).1, None);
    }

    #[test]
    fn a_truncated_page_resumes_where_nothing_is_lost() {
        let mut m = ArchiveMerge::new(5);
        m.add([ev(100, 3)]);
        assert!(!m.emit(Some(150)));
        assert_eq!(m.finish(Some(150), true).1, Some((100, 3, 1)));
        let m = ArchiveMerge::new(5);
        assert_eq!(m.finish(Some(150), true).1, Some((150, u64::MAX, u32::MAX)));
    }

    #[test]
    fn groups_fit_the_memory_budget_but_take_at_least_one() {
        assert_eq!(next_group(&[10, 10, 10], 4, 25), 2);
        assert_eq!(next_group(&[100, 10], 4, 25), 1);
        assert_eq!(next_group(&[1, 1, 1, 1, 1], 3, 1000), 3);
        assert_eq!(next_group(&[], 3, 1000), 0);
    }
}
