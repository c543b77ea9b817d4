//! Rows waiting to be written: fixed-size row records plus one byte arena for their strings,
//! sortable by `(ts, stream_seq, event_idx)` and turned into an Arrow batch per row group.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{ArrowError, SchemaRef};

use super::promoted::{FieldsSplitter, PromotedField};
use crate::Level;
use crate::archive::bloom::TokenFilter;

/// The sort key of a row and the identity of an event.
pub(super) type RowKey = (i64, u64, u32);

const NULL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Row {
    key: RowKey,
    level: Level,
    /// Start of the row's strings in the arena: message, fields, trace id, host, back to back.
    start: usize,
    message: u32,
    fields: u32,
    /// `NULL` for none.
    trace_id: u32,
    host: u32,
    /// The row's token hashes: `hashes[tokens.0..tokens.0 + tokens.1]`.
    tokens: (u32, u32),
}

/// One row's strings, borrowed.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowStrings<'a> {
    pub message: &'a str,
    pub fields: &'a str,
    pub trace_id: Option<&'a str>,
    pub host: Option<&'a str>,
}

#[derive(Debug, Default)]
pub(super) struct RowBuffer {
    rows: Vec<Row>,
    arena: String,
    /// Every row's token hashes, back to back (for the row group's token filter).
    hashes: Vec<u64>,
}

impl RowBuffer {
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of strings held.
    pub(super) fn string_bytes(&self) -> usize {
        self.arena.len()
    }

    /// Heap memory held (capacity, not length: what the process really pays).
    pub(super) fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.hashes.capacity() * 8
    }

    /// Adds a row: its key, level, strings and the hashes of its tokens.
    pub(super) fn push(&mut self, key: RowKey, level: Level, s: RowStrings<'_>, hashes: &[u64]) {
        let start = self.arena.len();
        let tokens = (
            u32::try_from(self.hashes.len()).unwrap_or(u32::MAX),
            u32::try_from(hashes.len()).unwrap_or(0),
        );
        self.hashes.extend_from_slice(hashes);
        let len = |t: &str| u32::try_from(t.len()).unwrap_or(NULL - 1);
        self.arena.push_str(s.message);
        self.arena.push_str(s.fields);
        self.arena.push_str(s.trace_id.unwrap_or(""));
        self.arena.push_str(s.host.unwrap_or(""));
        self.rows.push(Row {
            key,
            level,
            start,
            message: len(s.message),
            fields: len(s.fields),
            trace_id: s.trace_id.map_or(NULL, len),
            host: s.host.map_or(NULL, len),
            tokens,
        });
    }

    fn row_hashes(&self, r: &Row) -> &[u64] {
        let (start, len) = (r.tokens.0 as usize, r.tokens.1 as usize);
        self.hashes.get(start..start + len).unwrap_or(&[])
    }

    /// The token filter of these rows (what a row group's filter holds).
    pub(super) fn token_filter(&self) -> TokenFilter {
        let mut all = self.hashes.clone();
        all.sort_unstable();
        all.dedup();
        TokenFilter::from_hashes(&all)
    }

    fn strings(&self, r: &Row) -> RowStrings<'_> {
        let mut at = r.start;
        let mut take = |n: u32| {
            let n = if n == NULL { 0 } else { n as usize };
            let s = &self.arena[at..at + n];
            at += n;
            s
        };
        let message = take(r.message);
        let fields = take(r.fields);
        let trace_id = take(r.trace_id);
        let host = take(r.host);
        RowStrings {
            message,
            fields,
            trace_id: (r.trace_id != NULL).then_some(trace_id),
            host: (r.host != NULL).then_some(host),
        }
    }

    pub(super) fn sort(&mut self) {
        self.rows.sort_unstable_by_key(|r| r.key);
    }

    pub(super) fn min_key(&self) -> Option<RowKey> {
        self.rows.iter().map(|r| r.key).min()
    }

    pub(super) fn max_key(&self) -> Option<RowKey> {
        self.rows.iter().map(|r| r.key).max()
    }

    /// Splits off the first `n` rows (the oldest, once sorted); `self` keeps the rest, with its
    /// strings compacted so the arena does not grow without bound.
    pub(super) fn split_front(&mut self, n: usize) -> RowBuffer {
        let n = n.min(self.rows.len());
        let mut front = RowBuffer::default();
        let mut rest = RowBuffer::default();
        front.rows.reserve(n);
        rest.rows.reserve(self.rows.len() - n);
        for (i, r) in self.rows.iter().enumerate() {
            let target = if i < n { &mut front } else { &mut rest };
            target.push(r.key, r.level, self.strings(r), self.row_hashes(r));
        }
        *self = rest;
        front
    }

    /// Each row's fields object (JSON text), in the current order.
    pub(super) fn fields_texts(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|r| self.strings(r).fields)
    }

    /// The rows, in their current order, as a batch of `schema`: the segment schema with
    /// `promoted`'s columns after the others.
    pub(super) fn to_batch(
        &self,
        schema: &SchemaRef,
        promoted: &[PromotedField],
        service: &str,
    ) -> Result<RecordBatch, ArrowError> {
        let n = self.rows.len();
        let mut message = StringBuilder::with_capacity(n, self.arena.len());
        let mut fields = FieldsSplitter::new(promoted, n);
        let mut trace_id = StringBuilder::with_capacity(n, n * 32);
        let mut host = StringBuilder::with_capacity(n, n * 16);
        for r in &self.rows {
            let s = self.strings(r);
            message.append_value(s.message);
            fields.push(s.fields);
            trace_id.append_option(s.trace_id);
            host.append_option(s.host);
        }
        let ts = TimestampNanosecondArray::from_iter_values(self.rows.iter().map(|r| r.key.0))
            .with_timezone("UTC");
        let (promoted_columns, fields) = fields.finish();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ts),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                service, n,
            ))),
            Arc::new(StringArray::from_iter_values(
                self.rows.iter().map(|r| r.level.as_str()),
            )),
            Arc::new(message.finish()),
            fields,
            Arc::new(trace_id.finish()),
            Arc::new(host.finish()),
            Arc::new(UInt64Array::from_iter_values(
                self.rows.iter().map(|r| r.key.1),
            )),
            Arc::new(UInt32Array::from_iter_values(
                self.rows.iter().map(|r| r.key.2),
            )),
        ];
        columns.extend(promoted_columns);
        RecordBatch::try_new(schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn strings(m: &str) -> RowStrings<'_> {
        RowStrings {
            message: m,
            fields: "{}",
            trace_id: None,
            host: Some("h"),
        }
    }

    #[test]
    fn sorts_splits_and_keeps_strings_with_their_rows() {
        let mut b = RowBuffer::default();
        b.push((30, 1, 0), Level::Info, strings("thirty"), &[30]);
        b.push((10, 2, 1), Level::Error, strings("ten-b"), &[11]);
        b.push((10, 2, 0), Level::Warn, strings("ten-a"), &[10, 12]);
        b.push(
            (20, 1, 0),
            Level::Info,
            RowStrings {
                message: "twenty",
                fields: r#"{"a":1}"#,
                trace_id: Some(""),
                host: None,
            },
            &[],
        );
        b.sort();
        assert_eq!(b.min_key(), Some((10, 2, 0)));
        let front = b.split_front(3);
        assert_eq!(b.len(), 1);
        assert_eq!(b.string_bytes(), "thirty{}h".len());
        // Each row's token hashes go with it: the front holds 10, 11 and 12, the rest 30.
        let (f, rest) = (front.token_filter(), b.token_filter());
        assert!([10, 11, 12].iter().all(|&h| f.may_contain_hash(h)));
        assert!(rest.may_contain_hash(30) && !rest.may_contain_hash(10));
        let schema = super::super::arrow_schema();
        let batch = front.to_batch(&schema, &[], "api").unwrap();
        assert_eq!(batch.num_rows(), 3);
        let msg = batch
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            msg.iter().collect::<Vec<_>>(),
            vec![Some("ten-a"), Some("ten-b"), Some("twenty")]
        );
        let trace = batch
            .column(5)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(trace.is_null(0) && !trace.is_null(2) && trace.value(2).is_empty());
        let host = batch
            .column(6)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(host.is_null(2) && host.value(0) == "h");
        let level = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(level.value(0), "warn");
    }
}
