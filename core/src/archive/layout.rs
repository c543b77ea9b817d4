//! Object names in the archive, exactly as `docs/archive.md` lays them out:
//!
//! ```text
//! segments/<service>/<YYYY-MM-DD>/<incarnation>-<first_seq>-<last_seq>-<seqhash>.parquet
//! index/<commit YYYY-MM-DD>/<commit HH>/<service>.<incarnation>-<first_seq>-<last_seq>-<seqhash>.idx
//! ```
//!
//! The name is a function of the messages a segment holds, so writing the same messages again
//! writes the same object. All paths are relative to the store's prefix.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use xxhash_rust::xxh3::Xxh3;

use crate::ServiceName;

pub const SEGMENTS_DIR: &str = "segments";
pub const INDEX_DIR: &str = "index";
pub const SEGMENT_SUFFIX: &str = ".parquet";
pub const INDEX_SUFFIX: &str = ".idx";

/// The identity of a segment: which stream incarnation and which messages it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName {
    /// The stream's creation time, ms since the epoch (sequences restart when a stream is
    /// re-created).
    pub incarnation: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// [`seq_hash`] of the exact sorted sequence list.
    pub seqhash: u64,
}

/// xxh3 (seed 0) over the sequences as consecutive little-endian u64s. `seqs` must be sorted
/// and without duplicates (as [`SegmentName::for_seqs`] requires).
pub fn seq_hash(seqs: &[u64]) -> u64 {
    let mut h = Xxh3::new();
    for s in seqs {
        h.update(&s.to_le_bytes());
    }
    h.digest()
}

impl SegmentName {
    /// The name of a segment holding exactly these messages; `None` for an empty list.
    /// `seqs` must be strictly increasing.
    pub fn for_seqs(incarnation: u64, seqs: &[u64]) -> Option<SegmentName> {
        debug_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs must be sorted");
        Some(SegmentName {
            incarnation,
            first_seq: *seqs.first()?,
            last_seq: *seqs.last()?,
            seqhash: seq_hash(seqs),
        })
    }

    /// `segments/<service>/<UTC day of the oldest event>/<name>.parquet`
    pub fn segment_path(&self, service: &str, oldest_event_nanos: i64) -> String {
        let day = DateTime::<Utc>::from_timestamp_nanos(oldest_event_nanos).format("%Y-%m-%d");
        format!("{SEGMENTS_DIR}/{service}/{day}/{self}{SEGMENT_SUFFIX}")
    }

    /// `index/<commit day>/<commit hour>/<service>.<name>.idx`
    pub fn index_path(&self, service: &str, commit_millis: i64) -> String {
        format!(
            "{}{service}.{self}{INDEX_SUFFIX}",
            index_hour_prefix(commit_millis)
        )
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:020}-{:020}-{:016x}",
            self.incarnation, self.first_seq, self.last_seq, self.seqhash
        )
    }
}

impl FromStr for SegmentName {
    type Err = ();

    /// Accepts exactly what `Display` writes (digits, widths, lower-case hex).
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split('-');
        let (Some(inc), Some(first), Some(last), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(());
        };
        let digits = |p: &str, width: Option<usize>| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && width.is_none_or(|w| p.len() == w)
        };
        let lower_hex = hash.len() == 16
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !(digits(inc, None) && digits(first, Some(20)) && digits(last, Some(20)) && lower_hex) {
            return Err(());
        }
        let name = SegmentName {
            incarnation: inc.parse().map_err(|_| ())?,
            first_seq: first.parse().map_err(|_| ())?,
            last_seq: last.parse().map_err(|_| ())?,
            seqhash: u64::from_str_radix(hash, 16).map_err(|_| ())?,
        };
        // A canonical name only: `007-…` would be a second spelling of the same segment.
        (name.to_string() == s && name.first_seq <= name.last_seq)
            .then_some(name)
            .ok_or(())
    }
}

/// `index/<YYYY-MM-DD>/<HH>/` of the hour holding `millis`: what `refresh_recent` lists.
pub fn index_hour_prefix(millis: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default();
    format!("{INDEX_DIR}/{}/", t.format("%Y-%m-%d/%H"))
}

/// A parsed segment object path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentPath {
    pub service: String,
    /// `YYYY-MM-DD`
    pub day: String,
    pub name: SegmentName,
}

/// Parses `segments/<service>/<YYYY-MM-DD>/<name>.parquet`.
pub fn parse_segment_path(path: &str) -> Option<SegmentPath> {
    let rest = path.strip_prefix(SEGMENTS_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (Some(service), Some(day), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    ServiceName::parse_strict(service).ok()?;
    is_day(day).then_some(())?;
    let name = file.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()?;
    Some(SegmentPath {
        service: service.to_string(),
        day: day.to_string(),
        name,
    })
}

/// A parsed index object path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPath {
    /// `YYYY-MM-DD` of the commit.
    pub day: String,
    /// `HH` of the commit.
    pub hour: String,
    pub service: String,
    pub name: SegmentName,
}

/// Parses `index/<YYYY-MM-DD>/<HH>/<service>.<name>.idx`.
pub fn parse_index_path(path: &str) -> Option<IndexPath> {
    let rest = path.strip_prefix(INDEX_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (Some(day), Some(hour), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    is_day(day).then_some(())?;
    let hour_ok = hour.len() == 2 && hour.parse::<u8>().is_ok_and(|h| h < 24);
    hour_ok.then_some(())?;
    // Service names have no dots, so the first dot ends the service.
    let (service, name) = file.strip_suffix(INDEX_SUFFIX)?.split_once('.')?;
    ServiceName::parse_strict(service).ok()?;
    Some(IndexPath {
        day: day.to_string(),
        hour: hour.to_string(),
        service: service.to_string(),
        name: name.parse().ok()?,
    })
}

fn is_day(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> SegmentName {
        SegmentName::for_seqs(1_764_000_000_123, &[17, 18, 20, 4242]).unwrap()
    }

    #[test]
    fn names_are_padded_and_round_trip() {
        let n = name();
        let text = n.to_string();
        assert_eq!(
            text,
            format!(
                "1764000000123-00000000000000000017-00000000000000004242-{:016x}",
                n.seqhash
            )
        );
        assert_eq!(text.parse::<SegmentName>(), Ok(n));
        assert_eq!(SegmentName::for_seqs(1, &[]), None);
        let max = SegmentName::for_seqs(u64::MAX, &[u64::MAX]).unwrap();
        assert_eq!(max.to_string().parse::<SegmentName>(), Ok(max));
    }

    #[test]
    fn non_canonical_names_are_refused() {
        let good = name().to_string();
        for bad in [
            good.replace("-0000", "-000"),
            good.to_uppercase(),
            format!("0{good}"),
            format!("{good}-1"),
            good.replacen("-", "+", 1),
            "1-00000000000000000009-00000000000000000002-0000000000000000".to_string(),
        ] {
            assert!(bad.parse::<SegmentName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hash_is_of_the_exact_list() {
        assert_eq!(seq_hash(&[1, 2, 3]), seq_hash(&[1, 2, 3]));
        assert_ne!(seq_hash(&[1, 2, 3]), seq_hash(&[1, 3]));
        assert_ne!(seq_hash(&[1, 2, 3]), seq_hash(&[1, 2, 4]));
        // Same first and last sequence, different messages: different names.
        assert_ne!(
            SegmentName::for_seqs(5, &[1, 2, 9]),
            SegmentName::for_seqs(5, &[1, 3, 9])
        );
    }

    #[test]
    fn segment_paths() {
        let n = name();
        // 2026-11-29T23:59:59.999999999Z: the day of the oldest event, in UTC.
        let ts = 1_795_996_799_999_999_999;
        let p = n.segment_path("api", ts);
        assert_eq!(p, format!("segments/api/2026-11-29/{n}.parquet"));
        let parsed = parse_segment_path(&p).unwrap();
        assert_eq!(parsed.service, "api");
        assert_eq!(parsed.day, "2026-11-29");
        assert_eq!(parsed.name, n);
        assert_eq!(parse_segment_path(&p.replace("api", "Api")), None);
        assert_eq!(parse_segment_path(&p.replace(".parquet", ".pq")), None);
        assert_eq!(
            parse_segment_path(&p.replace("2026-11-29", "2026-13-29")),
            None
        );
        assert_eq!(parse_segment_path(&format!("x/{p}")), None);
    }

    #[test]
    fn index_paths() {
        let n = name();
        // 2026-11-30T07:15:00Z
        let commit_ms = 1_796_022_900_000;
        let p = n.index_path("debug-api_2", commit_ms);
        assert_eq!(p, format!("index/2026-11-30/07/debug-api_2.{n}.idx"));
        assert_eq!(index_hour_prefix(commit_ms), "index/2026-11-30/07/");
        let parsed = parse_index_path(&p).unwrap();
        assert_eq!(
            parsed,
            IndexPath {
                day: "2026-11-30".into(),
                hour: "07".into(),
                service: "debug-api_2".into(),
                name: n,
            }
        );
        assert_eq!(parse_index_path(&p.replace("/07/", "/24/")), None);
        assert_eq!(parse_index_path(&p.replace(".idx", "")), None);
        assert_eq!(parse_index_path("index/2026-11-30/07/api.idx"), None);
    }
}
