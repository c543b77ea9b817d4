//! Segments: the events of one service from a set of stream messages, as one Parquet file.
//!
//! Schema (one row per event), as `docs/archive.md` states it:
//!
//! | column | Arrow type | Parquet |
//! |---|---|---|
//! | `ts` | Timestamp(ns, "UTC") | INT64 TIMESTAMP(NANOS, UTC), delta-encoded, page statistics |
//! | `service`, `level` | Utf8 | dictionary-encoded |
//! | `message` | Utf8 | |
//! | `fields` | Utf8 | the event's fields not promoted, as a JSON object (`{}` when none) |
//! | `trace_id`, `host` | Utf8, nullable | `host` dictionary-encoded |
//! | `stream_seq` | UInt64 | delta-encoded |
//! | `event_idx` | UInt32 | delta-encoded |
//! | `fields.<key>` | Utf8, Int64, Float64 or Boolean, nullable | a promoted field ([`promoted`]) |
//!
//! **Order.** Rows are sorted by `(ts, stream_seq, event_idx)` across the whole file, and row
//! groups therefore cover ascending, non-overlapping key ranges: a reader can walk row groups
//! backwards for newest-first results and prune them by their `ts` statistics without any
//! merge. The writer keeps that promise with bounded memory: it holds up to two row groups of
//! rows, sorts them, and writes the older half, so events up to one row group late land in
//! place. When an event arrives older than rows already written, the spool file holds several
//! sorted runs, and `finish` merges them into a new file (a k-way merge that streams row
//! groups; [`FinishedSegment::merged_runs`] tells how often that happened).

mod columns;
mod line;
mod merge;
mod prefilter;
pub mod promoted;
mod reader;
mod rows;
mod writer;

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::LogEvent;
use promoted::PromotedField;

pub use line::CanonicalLine;
pub use reader::{NewestFirst, SegmentReader};
pub use writer::{FinishedSegment, SegmentWriter, writer_properties};

/// The columns every segment has, in schema order (promoted fields follow them).
pub const COLUMNS: [&str; 9] = [
    "ts",
    "service",
    "level",
    "message",
    "fields",
    "trace_id",
    "host",
    "stream_seq",
    "event_idx",
];

/// The Arrow schema of a segment with these promoted fields.
pub fn segment_schema(promoted: &[PromotedField]) -> SchemaRef {
    let mut fields: Vec<Field> = arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(promoted.iter().map(PromotedField::arrow_field));
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of the columns every segment has.
pub fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("service", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("fields", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("host", DataType::Utf8, true),
        Field::new("stream_seq", DataType::UInt64, false),
        Field::new("event_idx", DataType::UInt32, false),
    ]))
}

/// How segments are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    /// zstd level of every column (see docs/archive.md for the measurements behind it).
    pub zstd_level: i32,
    /// A row group holds at most this many rows… (a search decodes whole row groups, the
    /// ones whose token filter may match: smaller ones cost a needle less; see docs/archive.md)
    pub row_group_rows: usize,
    /// …and at most about this many bytes of strings (message, fields, trace id, host).
    pub row_group_bytes: usize,
    /// At most this many field keys get typed columns of their own ([`promoted`]); 0 keeps
    /// every field in the `fields` JSON text.
    pub max_promoted: usize,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            zstd_level: 6,
            row_group_rows: 16_384,
            row_group_bytes: 24 << 20,
            max_promoted: promoted::MAX_PROMOTED,
        }
    }
}

/// An inclusive range of event times, ns since the epoch (the query's `since`/`until`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsRange {
    pub since: i64,
    pub until: i64,
}

impl TsRange {
    pub const ALL: TsRange = TsRange {
        since: i64::MIN,
        until: i64::MAX,
    };

    pub fn new(since: Option<i64>, until: Option<i64>) -> TsRange {
        TsRange {
            since: since.unwrap_or(i64::MIN),
            until: until.unwrap_or(i64::MAX),
        }
    }

    pub fn contains(&self, ts: i64) -> bool {
        (self.since..=self.until).contains(&ts)
    }

    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        min <= self.until && max >= self.since
    }
}

/// One event read back from a segment, with its identity in the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedEvent {
    pub ts_nanos: i64,
    pub stream_seq: u64,
    pub event_idx: u32,
    pub event: LogEvent,
}

impl ArchivedEvent {
    /// The order of rows in a segment, and the identity query deduplicates by.
    pub fn key(&self) -> (i64, u64, u32) {
        (self.ts_nanos, self.stream_seq, self.event_idx)
    }
}

#[cfg(test)]
mod tests;
