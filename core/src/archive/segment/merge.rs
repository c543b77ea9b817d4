//! Merging a spool file's sorted runs into one globally sorted file.
//!
//! Each run is a sequence of row groups in key order; the runs overlap because some events
//! arrived later than the writer's one-row-group reorder window. A k-way merge reads every run
//! batch by batch (memory: one decoded batch per run plus one row group of output) and writes
//! row groups of the usual size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::Path;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::SegmentOptions;
use super::columns::Columns;
use super::promoted::PromotedField;
use super::rows::{RowBuffer, RowKey, RowStrings};
use crate::archive::ArchiveError;
use crate::archive::bloom::TokenFilter;

const MERGE_BATCH_ROWS: usize = 8192;

/// One run being read: its reader, the current batch's columns and the next row in it.
struct Run {
    reader: ParquetRecordBatchReader,
    batch: Option<Columns>,
    next: usize,
}

impl Run {
    /// Moves to a batch with a row left; `false` when the run is exhausted.
    fn ready(&mut self) -> Result<bool, ArchiveError> {
        loop {
            if let Some(b) = &self.batch
                && self.next < b.len()
            {
                return Ok(true);
            }
            match self.reader.next() {
                Some(b) => {
                    self.batch = Some(Columns::new(&b?).ok_or_else(unreadable)?);
                    self.next = 0;
                }
                None => return Ok(false),
            }
        }
    }

    fn key(&self) -> Result<RowKey, ArchiveError> {
        Ok(self.batch.as_ref().ok_or_else(unreadable)?.key(self.next))
    }
}

fn unreadable() -> ArchiveError {
    ArchiveError::corrupt("spool file", "a merged run lost its columns")
}

/// Reads the runs starting at the row groups `runs` (of `row_groups` in all) from `spool` and
/// writes their rows, merged by key, to `out`; returns the token filter of each row group
/// written (rebuilt from the rows: the spool file does not keep the lines' token hashes).
pub(super) fn merge_runs(
    spool: &Path,
    runs: &[usize],
    row_groups: usize,
    opts: &SegmentOptions,
    service: &str,
    (schema, promoted): (&SchemaRef, &[PromotedField]),
    out: &mut ArrowWriter<File>,
) -> Result<Vec<TokenFilter>, ArchiveError> {
    let mut readers = Vec::with_capacity(runs.len());
    for (i, &start) in runs.iter().enumerate() {
        let end = runs.get(i + 1).copied().unwrap_or(row_groups);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(spool)?)?
            .with_row_groups((start..end).collect())
            .with_batch_size(MERGE_BATCH_ROWS)
            .build()?;
        readers.push(Run {
            reader,
            batch: None,
            next: 0,
        });
    }
    let mut heap = BinaryHeap::new();
    for (i, run) in readers.iter_mut().enumerate() {
        if run.ready()? {
            heap.push(Reverse((run.key()?, i)));
        }
    }
    let mut pending = RowBuffer::default();
    let mut filters = Vec::new();
    let mut hashes = Vec::new();
    while let Some(Reverse((_, i))) = heap.pop() {
        let run = &mut readers[i];
        {
            let cols = run.batch.as_ref().ok_or_else(unreadable)?;
            let level = cols.level(run.next).ok_or_else(unreadable)?;
            hashes.clear();
            cols.token_hashes(run.next, &mut hashes)
                .map_err(|e| ArchiveError::corrupt("spool file", e))?;
            // The row's fields whole again (promoted ones included), to be split anew.
            let fields = cols
                .fields_json(run.next)
                .map_err(|e| ArchiveError::corrupt("spool file", e))?;
            let strings = RowStrings {
                fields: &fields,
                ..cols.strings(run.next)
            };
            pending.push(cols.key(run.next), level, strings, &hashes);
        }
        run.next += 1;
        if run.ready()? {
            heap.push(Reverse((run.key()?, i)));
        }
        if pending.len() >= opts.row_group_rows || pending.string_bytes() >= opts.row_group_bytes {
            let rows = std::mem::take(&mut pending);
            write(out, &rows, (schema, promoted), service, &mut filters)?;
        }
    }
    write(out, &pending, (schema, promoted), service, &mut filters)?;
    Ok(filters)
}

fn write(
    out: &mut ArrowWriter<File>,
    rows: &RowBuffer,
    (schema, promoted): (&SchemaRef, &[PromotedField]),
    service: &str,
    filters: &mut Vec<TokenFilter>,
) -> Result<(), ArchiveError> {
    if rows.is_empty() {
        return Ok(());
    }
    out.write(&rows.to_batch(schema, promoted, service)?)?;
    out.flush()?;
    filters.push(rows.token_filter());
    Ok(())
}
