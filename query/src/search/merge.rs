//! The k-way merge behind one page of `POST /logs/query`, without any I/O.
//!
//! Chunks are listed in a sorted set by their newest event and span under one second of event
//! time. The merge is fed index listings (newest first) and the matching events of the chunks it
//! asked to decode, and emits an event only once no chunk still unread can hold a newer one (the
//! frontier). So a page comes out in exact `(ts, chunk, index)` descending order while only as many
//! chunks are read as the page needs. [`super::search`] drives it with Redis.

use std::collections::{BinaryHeap, HashSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use logjet_core::LogEvent;
use logjet_core::keys::ChunkRef;

/// Position of an event in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub ts_nanos: i64,
    pub chunk: u64,
    pub idx: u32,
}

impl Position {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}:{}", self.ts_nanos, self.chunk, self.idx))
    }

    pub fn decode(s: &str) -> Option<Position> {
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let mut it = text.strip_prefix("v1:")?.split(':');
        let p = Position {
            ts_nanos: it.next()?.parse().ok()?,
            chunk: it.next()?.parse().ok()?,
            idx: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(p)
    }
}

/// A matching event waiting in the merge.
pub(super) struct Candidate {
    pub(super) pos: Position,
    pub(super) event: LogEvent,
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.pos == o.pos
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.pos.cmp(&o.pos)
    }
}

/// One page of the chunk index, newest first, as the merge needs it.
#[derive(Debug, Clone, Default)]
pub(super) struct Listing {
    /// The page's chunks (entries that do not parse are left out).
    pub(super) chunks: Vec<ChunkRef>,
    /// The page was shorter than asked for: the index has nothing further down.
    pub(super) last_page: bool,
    /// Score (newest event, ms) of the page's last entry: every chunk not listed yet is at or
    /// below it.
    pub(super) floor_ms: Option<i64>,
}

/// What one page of the merge produced.
#[derive(Debug)]
pub(super) struct MergedPage {
    pub(super) events: Vec<LogEvent>,
    /// Where the next page starts, if there is more to read.
    pub(super) next_cursor: Option<Position>,
    /// Events decoded to answer this page.
    pub(super) scanned: u64,
}

/// The state of the merge for one page.
#[derive(Default)]
pub(super) struct Merge {
    limit: usize,
    /// Decoded matching events not emitted yet.
    heap: BinaryHeap<Candidate>,
    out: Vec<LogEvent>,
    /// Position of the last event emitted.
    last: Option<Position>,
    /// Chunks listed so far: one listed again (the index moved between pages) is read once.
    seen: HashSet<u64>,
    /// Chunks listed by the index (and not ruled out) but not decoded yet, newest first.
    pending: VecDeque<ChunkRef>,
    /// The index has been listed to its end.
    index_done: bool,
    /// Chunks still in the index beyond what was listed have their newest event at or below this.
    index_floor_ms: i64,
    scanned: u64,
}

impl Merge {
    pub(super) fn new(limit: usize) -> Merge {
        Merge {
            limit,
            out: Vec::with_capacity(limit),
            index_floor_ms: i64::MAX,
            ..Merge::default()
        }
    }

    /// Every chunk is listed and decoded.
    fn all_loaded(&self) -> bool {
        self.index_done && self.pending.is_empty()
    }

    /// Every chunk not decoded yet holds events at or below this time (ms).
    fn frontier_ms(&self) -> i64 {
        self.pending
            .front()
            .map_or(self.index_floor_ms, |r| r.max_ms)
    }

    /// Emits what no undecoded chunk can beat. Returns true when the page is complete: full, or
    /// nothing is left to read.
    pub(super) fn emit(&mut self) -> bool {
        let all_loaded = self.all_loaded();
        let frontier_ns = if all_loaded {
            i64::MIN
        } else {
            self.frontier_ms()
                .saturating_add(1)
                .saturating_mul(1_000_000)
                .saturating_sub(1)
        };
        while self.out.len() < self.limit
            && self
                .heap
                .peek()
                .is_some_and(|c| all_loaded || c.pos.ts_nanos > frontier_ns)
        {
            let Some(c) = self.heap.pop() else { break };
            self.last = Some(c.pos);
            self.out.push(c.event);
        }
        self.out.len() >= self.limit || (all_loaded && self.heap.is_empty())
    }

    /// Up to `max` listed chunks to decode next, newest first; `None` when the index must be
    /// listed further first.
    pub(super) fn next_batch(&mut self, max: usize) -> Option<Vec<ChunkRef>> {
        if self.pending.is_empty() {
            return None;
        }
        // Decode a few chunks at a time: a small page needs only the newest ones.
        Some(self.pending.drain(..self.pending.len().min(max)).collect())
    }

    /// Takes a page of the index. Returns its chunks not listed before that `may_match` keeps:
    /// the caller may rule out more (by their Bloom filters) before it [`Merge::admit`]s them.
    pub(super) fn listed(
        &mut self,
        listing: Listing,
        may_match: impl Fn(&ChunkRef) -> bool,
    ) -> Vec<ChunkRef> {
        if listing.last_page {
            self.index_done = true;
        }
        if let Some(floor) = listing.floor_ms {
            self.index_floor_ms = self.index_floor_ms.min(floor);
        }
        listing
            .chunks
            .into_iter()
            .filter(|r| self.seen.insert(r.id) && may_match(r))
            .collect()
    }

    /// Chunks to decode, in the order they were listed.
    pub(super) fn admit(&mut self, chunks: impl IntoIterator<Item = ChunkRef>) {
        self.pending.extend(chunks);
    }

    /// The matching events of decoded chunks, and how many events were decoded to find them.
    pub(super) fn decoded(&mut self, scanned: u64, found: impl IntoIterator<Item = Candidate>) {
        self.scanned += scanned;
        self.heap.extend(found);
    }

    pub(super) fn scanned(&self) -> u64 {
        self.scanned
    }

    /// The page, once [`Merge::emit`] said it is complete or the budget ran out (`truncated`).
    pub(super) fn finish(self, truncated: bool) -> MergedPage {
        let next_cursor =
            if self.out.len() >= self.limit && !(self.all_loaded() && self.heap.is_empty()) {
                self.last
            } else if truncated {
                // Resume just above everything not yet returned.
                match (self.last, self.heap.peek()) {
                    (Some(l), _) => Some(l),
                    (None, Some(top)) => Some(Position {
                        idx: top.pos.idx.saturating_add(1),
                        ..top.pos
                    }),
                    (None, None) => Some(Position {
                        ts_nanos: self
                            .frontier_ms()
                            .saturating_add(1)
                            .saturating_mul(1_000_000),
                        chunk: 0,
                        idx: 0,
                    }),
                }
            } else {
                None
            };
        MergedPage {
            events: self.out,
            next_cursor,
            scanned: self.scanned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let p = Position {
            ts_nanos: 1_795_694_400_123_456_789,
            chunk: 42,
            idx: 7,
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("not-a-cursor"), None);
        assert_eq!(Position::decode(&URL_SAFE_NO_PAD.encode("v1:1:2")), None);
    }

    fn chunk(id: u64, max_ms: i64) -> ChunkRef {
        ChunkRef {
            id,
            min_ms: max_ms - 900,
            max_ms,
            count: 1,
            levels: 0xff,
            bloom_log2: 0,
        }
    }

    fn listing(chunks: &[ChunkRef], last_page: bool) -> Listing {
        Listing {
            chunks: chunks.to_vec(),
            last_page,
            floor_ms: chunks.last().map(|c| c.max_ms),
        }
    }

    /// A candidate whose message names its place, `chunk/idx`.
    fn candidate(chunk: u64, idx: u32, ts_ms: i64) -> Candidate {
        Candidate {
            pos: Position {
                ts_nanos: ts_ms * 1_000_000,
                chunk,
                idx,
            },
            event: LogEvent {
                ts: chrono::DateTime::from_timestamp_millis(ts_ms).unwrap(),
                service: "api".into(),
                level: logjet_core::Level::Info,
                message: format!("{chunk}/{idx}"),
                fields: Default::default(),
                trace_id: None,
                host: None,
            },
        }
    }

    fn messages(events: &[LogEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    /// Lists `chunks` as one complete index page and admits all of them.
    fn listed_all(m: &mut Merge, chunks: &[ChunkRef]) {
        let wanted = m.listed(listing(chunks, true), |_| true);
        m.admit(wanted);
    }

    #[test]
    fn emits_newest_first_and_never_past_an_unread_chunk() {
        let mut m = Merge::new(10);
        listed_all(&mut m, &[chunk(1, 3000), chunk(2, 2500)]);
        assert!(!m.emit(), "nothing decoded yet");
        let batch = m.next_batch(1).unwrap();
        assert_eq!(batch.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        m.decoded(
            2,
            [
                candidate(1, 0, 2900),
                candidate(1, 1, 2400),
                candidate(1, 2, 2400),
            ],
        );
        // Chunk 2 (newest event at 2500 ms) is unread: only what is newer than it may go.
        assert!(!m.emit());
        assert_eq!(messages(&m.out), ["1/0"]);
        assert_eq!(m.next_batch(4).unwrap()[0].id, 2);
        m.decoded(1, [candidate(2, 0, 2450), candidate(2, 1, 2400)]);
        assert!(m.emit(), "everything is read");
        let page = m.finish(false);
        // Equal times: the higher chunk, then the higher index, comes first.
        assert_eq!(messages(&page.events), ["1/0", "2/0", "2/1", "1/2", "1/1"]);
        assert_eq!(page.next_cursor, None);
        assert_eq!(page.scanned, 3);
    }

    #[test]
    fn the_frontier_waits_for_the_index_below_what_was_listed() {
        let mut m = Merge::new(10);
        let wanted = m.listed(listing(&[chunk(1, 3000)], false), |_| true);
        m.admit(wanted);
        m.next_batch(4);
        m.decoded(1, [candidate(1, 0, 2900), candidate(1, 1, 1500)]);
        // A page that is not the last, whose chunks were all ruled out: the floor still holds.
        let wanted = m.listed(listing(&[chunk(2, 2000)], false), |_| false);
        assert!(wanted.is_empty());
        assert!(!m.emit());
        assert_eq!(
            messages(&m.out),
            ["1/0"],
            "1500 ms may be beaten below 2000 ms"
        );
        assert!(
            m.next_batch(4).is_none(),
            "the index must be listed further"
        );
        m.listed(Listing::default(), |_| true);
        assert!(
            !m.emit(),
            "an empty page that is not the last changes nothing"
        );
        m.listed(
            Listing {
                last_page: true,
                ..Listing::default()
            },
            |_| true,
        );
        assert!(m.emit());
        assert_eq!(messages(&m.finish(false).events), ["1/0", "1/1"]);
    }

    #[test]
    fn a_full_page_continues_below_its_last_event() {
        let mut m = Merge::new(2);
        listed_all(&mut m, &[chunk(7, 3000)]);
        m.next_batch(4);
        m.decoded(
            3,
            [
                candidate(7, 0, 2100),
                candidate(7, 1, 2200),
                candidate(7, 2, 2300),
            ],
        );
        assert!(m.emit());
        let page = m.finish(false);
        assert_eq!(messages(&page.events), ["7/2", "7/1"]);
        assert_eq!(page.next_cursor, Some(candidate(7, 1, 2200).pos));

        // Exactly a page and nothing left: no cursor.
        let mut m = Merge::new(2);
        listed_all(&mut m, &[chunk(7, 3000)]);
        m.next_batch(4);
        m.decoded(2, [candidate(7, 0, 2100), candidate(7, 1, 2200)]);
        assert!(m.emit());
        assert_eq!(m.finish(false).next_cursor, None);
    }

    #[test]
    fn a_truncated_page_resumes_above_what_was_not_returned() {
        // Something was returned: continue below it.
        let mut m = Merge::new(10);
        listed_all(&mut m, &[chunk(1, 3000), chunk(2, 2000)]);
        m.next_batch(1);
        m.decoded(1, [candidate(1, 0, 2900), candidate(1, 1, 1200)]);
        assert!(!m.emit());
        let page = m.finish(true);
        assert_eq!(messages(&page.events), ["1/0"]);
        assert_eq!(page.next_cursor, Some(candidate(1, 0, 2900).pos));

        // Nothing returned but a candidate waits: resume just above it, so it comes next.
        let mut m = Merge::new(10);
        listed_all(&mut m, &[chunk(1, 3000), chunk(2, 2000)]);
        m.next_batch(1);
        m.decoded(1, [candidate(1, 4, 1200)]);
        assert!(!m.emit());
        let page = m.finish(true);
        assert!(page.events.is_empty());
        assert_eq!(
            page.next_cursor,
            Some(Position {
                ts_nanos: 1_200_000_000,
                chunk: 1,
                idx: 5
            })
        );

        // Nothing decoded at all: resume above the newest unread chunk.
        let mut m = Merge::new(10);
        let wanted = m.listed(listing(&[chunk(3, 3000)], false), |_| true);
        m.admit(wanted);
        assert!(!m.emit());
        let page = m.finish(true);
        assert_eq!(
            page.next_cursor,
            Some(Position {
                ts_nanos: 3_001_000_000,
                chunk: 0,
                idx: 0
            })
        );
        assert_eq!(page.scanned, 0);
    }

    #[test]
    fn a_chunk_listed_twice_is_read_once() {
        let mut m = Merge::new(10);
        let first = m.listed(listing(&[chunk(1, 3000), chunk(2, 2900)], false), |c| {
            c.id != 2
        });
        assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        // The index moved between two pages: 1 and 2 come again, ruled out or not.
        let second = m.listed(
            listing(&[chunk(1, 3000), chunk(2, 2900), chunk(3, 2800)], true),
            |_| true,
        );
        assert_eq!(second.iter().map(|c| c.id).collect::<Vec<_>>(), [3]);
    }
}
