//! The cursor of `POST /logs/query`: where the next page starts, in whichever tier the last page
//! ended.
//!
//! A query reads Redis (event times it still holds), then the stream (older events of messages
//! the archiver has not acknowledged yet), then the archive. Each tier has its own order, and
//! the cursor names the tier and the place in it:
//!
//! - `Recent`: strictly below a `(ts, chunk, index)` position in Redis (the first cursor
//!   format, `v1:`, unchanged).
//! - `Stream`: events older than `end` from messages strictly below `(seq, idx)` in stream
//!   order; `slice` is how many messages the next page reads at once (what fitted the budget).
//! - `Archive`: events older than `end` strictly below `(ts, seq, idx)`, from segments of
//!   messages at or below `floor` (the stream answered for the ones above it) of stream
//!   incarnation `incarnation` (older incarnations are the archive's alone).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Recent(Position),
    Stream {
        end: i64,
        seq: u64,
        idx: u32,
        slice: u64,
    },
    Archive {
        end: i64,
        floor: u64,
        incarnation: u64,
        key: (i64, u64, u32),
    },
}

impl Cursor {
    pub fn encode(&self) -> String {
        match self {
            Cursor::Recent(p) => p.encode(),
            Cursor::Stream {
                end,
                seq,
                idx,
                slice,
            } => URL_SAFE_NO_PAD.encode(format!("s1:{end}:{seq}:{idx}:{slice}")),
            Cursor::Archive {
                end,
                floor,
                incarnation,
                key: (ts, seq, idx),
            } => URL_SAFE_NO_PAD.encode(format!("a1:{end}:{floor}:{incarnation}:{ts}:{seq}:{idx}")),
        }
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if let Some(p) = Position::decode(s) {
            return Some(Cursor::Recent(p));
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (tag, rest) = text.split_once(':')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let n = |i: usize| -> Option<u64> { parts.get(i)?.parse().ok() };
        let i = |i: usize| -> Option<i64> { parts.get(i)?.parse().ok() };
        match (tag, parts.len()) {
            ("s1", 4) => Some(Cursor::Stream {
                end: i(0)?,
                seq: n(1)?,
                idx: u32::try_from(n(2)?).ok()?,
                slice: n(3)?.max(1),
            }),
            ("a1", 6) => Some(Cursor::Archive {
                end: i(0)?,
                floor: n(1)?,
                incarnation: n(2)?,
                key: (i(3)?, n(4)?, u32::try_from(n(5)?).ok()?),
            }),
            _ => None,
        }
    }

    /// The Redis position, when the cursor is in Redis.
    pub fn recent(&self) -> Option<Position> {
        match self {
            Cursor::Recent(p) => Some(*p),
            _ => None,
        }
    }

    /// Whether this cursor is strictly further along than `prev` (later tier, or further down
    /// the same tier): what every page must achieve.
    pub fn advanced_from(&self, prev: &Cursor) -> bool {
        match (prev, self) {
            (Cursor::Recent(a), Cursor::Recent(b)) => b < a,
            (Cursor::Recent(_), _) => true,
            (Cursor::Stream { seq, idx, .. }, Cursor::Stream { seq: s, idx: i, .. }) => {
                (s, i) < (seq, idx)
            }
            (Cursor::Stream { .. }, Cursor::Archive { .. }) => true,
            (Cursor::Archive { key, .. }, Cursor::Archive { key: k, .. }) => k < key,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let all = [
            Cursor::Recent(Position {
                ts_nanos: 5,
                chunk: 6,
                idx: 7,
            }),
            Cursor::Stream {
                end: 1_795_694_400_000_000_000,
                seq: 42,
                idx: 3,
                slice: 64,
            },
            Cursor::Archive {
                end: -1,
                floor: 9,
                incarnation: 1_795_000_000_000,
                key: (1_795_694_399_000_000_000, 8, 0),
            },
        ];
        for c in all {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in ["", "zzz", "s1:1:2:3", "a1:1:2:3:4:5:6:7", "s1:x:1:1:1"] {
            assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode(bad)), None, "{bad}");
        }
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("s1:1:2:99999999999:4")),
            None
        );
    }

    #[test]
    fn progress_is_by_tier_then_place() {
        let s = |seq, idx| Cursor::Stream {
            end: 0,
            seq,
            idx,
            slice: 1,
        };
        let a = |ts| Cursor::Archive {
            end: 0,
            floor: 0,
            incarnation: 0,
            key: (ts, 0, 0),
        };
        let r = Cursor::Recent(Position {
            ts_nanos: 1,
            chunk: 0,
            idx: 0,
        });
        assert!(s(10, 0).advanced_from(&r));
        assert!(s(9, 5).advanced_from(&s(10, 0)));
        assert!(s(10, 0).advanced_from(&s(10, 1)));
        assert!(!s(10, 0).advanced_from(&s(10, 0)));
        assert!(!s(11, 0).advanced_from(&s(10, 0)));
        assert!(a(100).advanced_from(&s(1, 0)));
        assert!(a(99).advanced_from(&a(100)));
        assert!(!a(100).advanced_from(&a(100)));
        assert!(!r.advanced_from(&a(1)));
    }
}
