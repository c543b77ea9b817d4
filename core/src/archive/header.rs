//! A segment's header: what the catalog knows about a segment without opening it.
//!
//! The same JSON is stored twice: in the segment's own Parquet key-value metadata
//! (`logjet.segment`, without `bytes`, `checksum` and `filter`, which only exist once the file
//! is written) and at the start of its index object (complete).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Level;

pub const HEADER_VERSION: u32 = 1;
/// Key of the header in the segment's Parquet metadata.
pub const PARQUET_METADATA_KEY: &str = "logjet.segment";

/// Event counts per level, trace → fatal (the order of [`Level::ALL`]).
pub type LevelCounts = [u64; 6];

/// Where the row groups' token filters lie in the index object: back to back from `offset`,
/// row group `i`'s filter `blocks[i]` × 64 bytes, all with the same `k`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupFilters {
    pub offset: u64,
    pub k: u8,
    pub blocks: Vec<u64>,
}

impl RowGroupFilters {
    /// Byte range of row group `rg`'s filter in the index object.
    pub fn range(&self, rg: usize) -> Option<std::ops::Range<u64>> {
        let block = super::bloom::BLOCK_BYTES as u64;
        let before = blocks_bytes(self.blocks.get(..rg)?);
        let start = self.offset.saturating_add(before);
        Some(start..start.saturating_add(self.blocks.get(rg)?.saturating_mul(block)))
    }

    /// Bytes of all the filters (saturating: a corrupt header cannot overflow it).
    pub fn bytes(&self) -> u64 {
        blocks_bytes(&self.blocks)
    }
}

fn blocks_bytes(blocks: &[u64]) -> u64 {
    blocks
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
        .saturating_mul(super::bloom::BLOCK_BYTES as u64)
}

/// Where the token filter lies in the index object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    /// Byte offset of the filter in the index object.
    pub offset: u64,
    /// 64-byte blocks.
    pub blocks: u64,
    /// Bits per token.
    pub k: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub version: u32,
    /// The segment's object path, relative to the store prefix.
    pub segment: String,
    pub service: String,
    /// Oldest and newest event time, ns since the epoch.
    pub min_ts: i64,
    pub max_ts: i64,
    pub rows: u64,
    /// Size of the segment object; 0 in the copy inside the segment itself.
    #[serde(default)]
    pub bytes: u64,
    /// Canonical NDJSON size of its events (one newline per event included).
    pub raw_bytes: u64,
    pub levels: LevelCounts,
    /// Sparse, ascending: `(minute_start_ms, counts)` for every minute of event time that has
    /// events. Exact; what `/stats/*` reads beyond Redis.
    pub minutes: Vec<(i64, LevelCounts)>,
    pub incarnation: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Stream messages it holds events of.
    pub messages: u64,
    /// 16 hex digits, see [`crate::archive::layout::seq_hash`].
    pub seqhash: String,
    /// When the segment was finished, ms since the epoch.
    pub created: i64,
    /// xxh3-64 of the whole segment object, 16 hex digits: a reader verifies it before decoding
    /// a byte (absent in the copy inside the segment itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Where the token filter is in the index object (absent inside the segment itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterInfo>,
    /// Where the row groups' token filters are in the index object (absent inside the segment
    /// itself, and in index objects written before they existed: then every row group of a
    /// segment that may match is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_filters: Option<RowGroupFilters>,
}

impl SegmentHeader {
    /// The copy stored in the segment's own metadata: without what only exists afterwards.
    pub fn embedded(&self) -> SegmentHeader {
        SegmentHeader {
            bytes: 0,
            checksum: None,
            filter: None,
            row_group_filters: None,
            ..self.clone()
        }
    }

    /// Events of the given levels.
    pub fn count_levels(&self, levels: &[Level]) -> u64 {
        levels.iter().map(|l| self.levels[l.index()]).sum()
    }

    /// Events of the given levels (all when `None`) in minutes overlapping `[since, until]`
    /// (ns, inclusive). Exact at minute granularity: a segment for which this is 0 holds no
    /// matching event.
    pub fn count_in(&self, since: i64, until: i64, levels: Option<&[Level]>) -> u64 {
        if until < self.min_ts || since > self.max_ts {
            return 0;
        }
        const MINUTE_NS: i64 = 60_000_000_000;
        self.minutes
            .iter()
            .filter(|(start_ms, _)| {
                let start = start_ms.saturating_mul(1_000_000);
                start <= until && start.saturating_add(MINUTE_NS) > since
            })
            .map(|(_, counts)| match levels {
                Some(ls) => ls.iter().map(|l| counts[l.index()]).sum::<u64>(),
                None => counts.iter().sum(),
            })
            .sum()
    }
}

/// Accumulates a header's statistics while events are appended.
#[derive(Clone, Debug, Default)]
pub struct HeaderStats {
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub rows: u64,
    pub raw_bytes: u64,
    pub levels: LevelCounts,
    pub minutes: BTreeMap<i64, LevelCounts>,
}

impl HeaderStats {
    pub fn add(&mut self, ts_nanos: i64, level: Level, line_len: usize) {
        self.min_ts = Some(self.min_ts.map_or(ts_nanos, |m| m.min(ts_nanos)));
        self.max_ts = Some(self.max_ts.map_or(ts_nanos, |m| m.max(ts_nanos)));
        self.rows += 1;
        self.raw_bytes += line_len as u64 + 1;
        self.levels[level.index()] += 1;
        let minute_ms = ts_nanos.div_euclid(60_000_000_000) * 60_000;
        self.minutes.entry(minute_ms).or_default()[level.index()] += 1;
    }

    /// Rough heap use, for the writer's `buffered_bytes`.
    pub fn heap_bytes(&self) -> usize {
        self.minutes.len() * (8 + 48 + 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        let mut s = HeaderStats::default();
        let m = 60_000_000_000i64;
        s.add(10 * m + 5, Level::Info, 99);
        s.add(10 * m + 7, Level::Error, 99);
        s.add(12 * m, Level::Info, 99);
        SegmentHeader {
            version: HEADER_VERSION,
            segment: "segments/api/1970-01-01/x.parquet".into(),
            service: "api".into(),
            min_ts: s.min_ts.unwrap(),
            max_ts: s.max_ts.unwrap(),
            rows: s.rows,
            bytes: 1234,
            raw_bytes: s.raw_bytes,
            levels: s.levels,
            minutes: s.minutes.into_iter().collect(),
            incarnation: 1,
            first_seq: 1,
            last_seq: 2,
            messages: 2,
            seqhash: "0123456789abcdef".into(),
            created: 5,
            checksum: Some("00ff00ff00ff00ff".into()),
            filter: Some(FilterInfo {
                offset: 100,
                blocks: 2,
                k: 7,
            }),
            row_group_filters: None,
        }
    }

    #[test]
    fn json_shape_matches_the_contract() {
        let h = header();
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["levels"], serde_json::json!([0, 0, 2, 0, 1, 0]));
        assert_eq!(
            v["minutes"],
            serde_json::json!([[600_000, [0, 0, 1, 0, 1, 0]], [720_000, [0, 0, 1, 0, 0, 0]]])
        );
        assert_eq!(v["raw_bytes"], 300);
        assert_eq!(
            v["filter"],
            serde_json::json!({"offset": 100, "blocks": 2, "k": 7})
        );
        let back: SegmentHeader = serde_json::from_value(v).unwrap();
        assert_eq!(back, h);
        let e = serde_json::to_value(h.embedded()).unwrap();
        assert!(e.get("filter").is_none() && e.get("checksum").is_none());
        assert_eq!(e["bytes"], 0);
    }

    #[test]
    fn counts_by_minute_and_level() {
        let h = header();
        let m = 60_000_000_000i64;
        assert_eq!(h.count_in(0, i64::MAX, None), 3);
        assert_eq!(h.count_in(0, i64::MAX, Some(&[Level::Error])), 1);
        assert_eq!(h.count_in(11 * m, 11 * m + 59, None), 0);
        // The range touches the minute [12m, 13m) at its start.
        assert_eq!(h.count_in(11 * m, 12 * m, None), 1);
        // The minute [10m, 11m) reaches up to 11m - 1.
        assert_eq!(h.count_in(11 * m - 1, 11 * m - 1, Some(&[Level::Info])), 1);
        assert_eq!(h.count_in(13 * m, 20 * m, None), 0);
        assert_eq!(h.count_levels(&[Level::Info, Level::Error]), 3);
    }
}
