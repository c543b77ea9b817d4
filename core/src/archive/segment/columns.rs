//! Typed access to the columns of a batch read from a segment.

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, PrimitiveArray, RecordBatch, StringArray};
use chrono::DateTime;

use super::ArchivedEvent;
use super::promoted::PromotedColumns;
use super::rows::{RowKey, RowStrings};
use crate::archive::bloom::token_hash;
use crate::{Fields, Level, LogEvent, tokens};

/// The exact lower-case level names the writer stores.
pub(super) fn level_from_column(s: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == s)
}

/// A full-width batch (every column of the schema, in schema order), downcast once. It owns
/// its arrays (clones of the batch's, which share their buffers), so a reader keeps it beside
/// its batch instead of downcasting every column again for each row.
pub(super) struct Columns {
    ts: PrimitiveArray<TimestampNanosecondType>,
    service: StringArray,
    level: StringArray,
    message: StringArray,
    fields: StringArray,
    trace_id: StringArray,
    host: StringArray,
    seq: PrimitiveArray<UInt64Type>,
    idx: PrimitiveArray<UInt32Type>,
    promoted: PromotedColumns,
}

impl Columns {
    /// `None` when a column is missing or of another type than the schema's (a promoted
    /// field's column of a type no writer gives it included).
    pub(super) fn new(batch: &RecordBatch) -> Option<Columns> {
        let col = |name: &str| batch.column_by_name(name);
        let string = |name: &str| col(name)?.as_string_opt::<i32>().cloned();
        Some(Columns {
            ts: col("ts")?
                .as_primitive_opt::<TimestampNanosecondType>()?
                .clone(),
            service: string("service")?,
            level: string("level")?,
            message: string("message")?,
            fields: string("fields")?,
            trace_id: string("trace_id")?,
            host: string("host")?,
            seq: col("stream_seq")?.as_primitive_opt::<UInt64Type>()?.clone(),
            idx: col("event_idx")?.as_primitive_opt::<UInt32Type>()?.clone(),
            promoted: PromotedColumns::new(batch)?,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.ts.len()
    }

    pub(super) fn ts(&self, i: usize) -> i64 {
        self.ts.value(i)
    }

    pub(super) fn key(&self, i: usize) -> RowKey {
        (self.ts.value(i), self.seq.value(i), self.idx.value(i))
    }

    pub(super) fn level(&self, i: usize) -> Option<Level> {
        level_from_column(self.level.value(i))
    }

    /// Row `i`'s strings as stored: `fields` is the JSON text of the fields not promoted.
    pub(super) fn strings(&self, i: usize) -> RowStrings<'_> {
        RowStrings {
            message: self.message.value(i),
            fields: self.fields.value(i),
            trace_id: nullable(&self.trace_id, i),
            host: nullable(&self.host, i),
        }
    }

    /// Row `i` as an event; `Err` names what is wrong with it.
    pub(super) fn event(&self, i: usize) -> Result<ArchivedEvent, String> {
        let (ts_nanos, stream_seq, event_idx) = self.key(i);
        let level = self
            .level(i)
            .ok_or_else(|| format!("row {i}: level {:?}", self.level.value(i)))?;
        let s = self.strings(i);
        let fields = self.fields(i)?;
        Ok(ArchivedEvent {
            ts_nanos,
            stream_seq,
            event_idx,
            event: LogEvent {
                ts: DateTime::from_timestamp_nanos(ts_nanos),
                service: self.service.value(i).to_string(),
                level,
                message: s.message.to_string(),
                fields,
                trace_id: s.trace_id.map(str::to_string),
                host: s.host.map(str::to_string),
            },
        })
    }

    /// Row `i`'s fields: the JSON text's and the promoted columns'.
    fn fields(&self, i: usize) -> Result<Fields, String> {
        let mut fields: Fields = serde_json::from_str(self.fields.value(i))
            .map_err(|e| format!("row {i}: fields: {e}"))?;
        self.promoted.insert_into(i, &mut fields);
        Ok(fields)
    }

    /// Row `i`'s fields as one JSON object (promoted ones included), as the line held them.
    pub(super) fn fields_json(&self, i: usize) -> Result<String, String> {
        if self.promoted.is_empty() {
            return Ok(self.fields.value(i).to_string());
        }
        serde_json::to_string(&self.fields(i)?).map_err(|e| format!("row {i}: fields: {e}"))
    }

    /// The token hashes of row `i`'s canonical line, appended to `out`: what the writer
    /// indexed when the row came in as a canonical line (the line is rebuilt from the row).
    pub(super) fn token_hashes(&self, i: usize, out: &mut Vec<u64>) -> Result<(), String> {
        let ev = self.event(i)?;
        let line = serde_json::to_vec(&ev.event).map_err(|e| format!("row {i}: {e}"))?;
        tokens::canonical_line_tokens(&line, |t| out.push(token_hash(t)));
        Ok(())
    }
}

/// Value `i` of a nullable string column.
fn nullable(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}
