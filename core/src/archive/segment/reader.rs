//! [`SegmentReader`]: reading a segment object back, newest first.
//!
//! The reader works on the whole object in memory (segments are tens of MiB at most): it
//! verifies the object against its index header (size and xxh3 checksum) before decoding a
//! byte, so a corrupt or truncated object is an error value, never garbage or a panic. Row
//! groups are pruned by their `ts` statistics; a row group that may match is decoded whole and
//! walked backwards (row groups are in key order, see the module docs of
//! [`crate::archive::segment`]).

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt64Type};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::statistics::Statistics;

use super::columns::{Columns, level_from_column};
use super::prefilter;
use super::promoted::{FIELD_COLUMN_PREFIX, FieldKind};
use super::writer::checksum;
use super::{ArchivedEvent, TsRange, arrow_schema};
use crate::archive::ArchiveError;
use crate::archive::bloom::TokenFilter;
use crate::archive::header::{LevelCounts, PARQUET_METADATA_KEY, SegmentHeader};

/// A segment object, opened.
pub struct SegmentReader {
    name: String,
    bytes: Bytes,
    meta: ArrowReaderMetadata,
}

impl SegmentReader {
    /// Opens a segment from its object bytes. With `expected` (the header from its index
    /// object) the size and checksum are verified first; without (rebuilding the catalog from
    /// the segments alone) only Parquet's own structure is checked. `name` is used in errors.
    pub fn open(
        name: &str,
        bytes: Bytes,
        expected: Option<&SegmentHeader>,
    ) -> Result<SegmentReader, ArchiveError> {
        let corrupt = |p: String| ArchiveError::corrupt(name, p);
        if let Some(h) = expected {
            if bytes.len() as u64 != h.bytes {
                return Err(corrupt(format!(
                    "{} bytes, the index says {}",
                    bytes.len(),
                    h.bytes
                )));
            }
            if let Some(want) = &h.checksum
                && checksum(&bytes) != *want
            {
                return Err(corrupt("checksum mismatch".into()));
            }
        }
        let meta = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
            .map_err(|e| corrupt(format!("parquet: {e}")))?;
        let schema = meta.schema();
        for field in arrow_schema().fields() {
            match schema.field_with_name(field.name()) {
                Ok(f) if f.data_type() == field.data_type() => {}
                _ => {
                    return Err(corrupt(format!(
                        "column {} missing or mistyped",
                        field.name()
                    )));
                }
            }
        }
        for field in schema.fields() {
            if field.name().starts_with(FIELD_COLUMN_PREFIX)
                && FieldKind::of_type(field.data_type()).is_none()
            {
                return Err(corrupt(format!(
                    "column {} of type {}",
                    field.name(),
                    field.data_type()
                )));
            }
        }
        Ok(SegmentReader {
            name: name.to_string(),
            bytes,
            meta,
        })
    }

    /// The header the segment carries in its own metadata (without `bytes`, `checksum` and
    /// `filter`).
    pub fn embedded_header(&self) -> Result<SegmentHeader, ArchiveError> {
        let kv = self.meta.metadata().file_metadata().key_value_metadata();
        let value = kv
            .and_then(|kv| kv.iter().find(|k| k.key == PARQUET_METADATA_KEY))
            .and_then(|k| k.value.as_deref())
            .ok_or_else(|| ArchiveError::corrupt(&self.name, "no logjet.segment metadata"))?;
        serde_json::from_str(value)
            .map_err(|e| ArchiveError::corrupt(&self.name, format!("logjet.segment: {e}")))
    }

    /// The complete header for a new index object of this segment: the embedded one with the
    /// object's size and checksum (for rebuilding the catalog from the segments).
    pub fn index_header(&self) -> Result<SegmentHeader, ArchiveError> {
        Ok(SegmentHeader {
            bytes: self.bytes.len() as u64,
            checksum: Some(checksum(&self.bytes)),
            ..self.embedded_header()?
        })
    }

    /// The token filter of its rows and one per row group, rebuilt from each row's canonical
    /// line (what the writer indexed, for canonical input), for rebuilding the catalog.
    pub fn token_filters(&self) -> Result<(TokenFilter, Vec<TokenFilter>), ArchiveError> {
        let mut all = Vec::new();
        let mut per_group = Vec::with_capacity(self.row_groups());
        for rg in 0..self.row_groups() {
            let mut hashes = Vec::new();
            for batch in self.read(vec![rg], None)? {
                let cols = Columns::new(&batch).ok_or_else(|| self.corrupt("columns"))?;
                for i in 0..batch.num_rows() {
                    cols.token_hashes(i, &mut hashes)
                        .map_err(|e| self.corrupt(e))?;
                }
            }
            hashes.sort_unstable();
            hashes.dedup();
            per_group.push(TokenFilter::from_hashes(&hashes));
            all.extend(hashes);
        }
        all.sort_unstable();
        all.dedup();
        Ok((TokenFilter::from_hashes(&all), per_group))
    }

    pub fn rows(&self) -> u64 {
        self.meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    pub fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// `(min, max)` event time of a row group from its statistics.
    pub fn row_group_ts(&self, rg: usize) -> Option<(i64, i64)> {
        let col = self.meta.metadata().row_group(rg).columns().first()?;
        match col.statistics()? {
            Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    }

    /// Row groups that may hold events in `range`, ascending.
    pub fn row_groups_in(&self, range: TsRange) -> Vec<usize> {
        (0..self.row_groups())
            .filter(|&rg| {
                self.row_group_ts(rg)
                    .is_none_or(|(min, max)| range.overlaps(min, max))
            })
            .collect()
    }

    fn read(
        &self,
        row_groups: Vec<usize>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<RecordBatch>, ArchiveError> {
        let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.bytes.clone(),
            self.meta.clone(),
        )
        .with_row_groups(row_groups)
        .with_batch_size(64 * 1024);
        if let Some(names) = columns {
            let roots = self.meta.metadata().file_metadata().schema_descr();
            let indices = (0..roots.root_schema().get_fields().len())
                .filter(|&i| names.contains(&roots.root_schema().get_fields()[i].name()));
            b = b.with_projection(ProjectionMask::roots(roots, indices));
        }
        let reader = b.build().map_err(|e| self.corrupt(e))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.corrupt(e))
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::corrupt(&self.name, e.to_string())
    }

    /// The events in `range`, newest first (by `(ts, stream_seq, event_idx)` descending). Each
    /// item is an event or the error that ended the walk.
    pub fn newest_first(&self, range: TsRange) -> NewestFirst<'_> {
        self.newest_first_in(range, None, &[])
    }

    /// [`SegmentReader::newest_first`] over only the row groups `only` (ascending indexes, as
    /// a probe of the row groups' token filters gives them; `None`: all), and only the rows
    /// holding every one of `tokens` (lower-case identifiers every match holds, as a search's
    /// index tokens: the other rows are skipped undecoded). An index beyond the file's row
    /// groups is an error item.
    pub fn newest_first_in(
        &self,
        range: TsRange,
        only: Option<&[usize]>,
        tokens: &[String],
    ) -> NewestFirst<'_> {
        let mut row_groups = self.row_groups_in(range);
        let mut failed = None;
        if let Some(only) = only {
            if only.iter().any(|&rg| rg >= self.row_groups()) {
                failed = Some(self.corrupt(format!(
                    "row group {:?} asked of {} row groups",
                    only.iter().max(),
                    self.row_groups()
                )));
            }
            row_groups.retain(|rg| only.binary_search(rg).is_ok());
        }
        NewestFirst {
            reader: self,
            range,
            row_groups,
            tokens: tokens.to_vec(),
            pending_error: failed,
            batches: VecDeque::new(),
            row: 0,
            failed: false,
        }
    }

    /// Events per level in `range`, reading only the `ts` and `level` columns.
    pub fn count(&self, range: TsRange) -> Result<LevelCounts, ArchiveError> {
        let mut counts = LevelCounts::default();
        for batch in self.read(self.row_groups_in(range), Some(&["ts", "level"]))? {
            let ts = batch
                .column_by_name("ts")
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .ok_or_else(|| self.corrupt("ts column"))?;
            let level = batch
                .column_by_name("level")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| self.corrupt("level column"))?;
            for i in 0..batch.num_rows() {
                if range.contains(ts.value(i)) {
                    let l = level_from_column(level.value(i))
                        .ok_or_else(|| self.corrupt(format!("level {:?}", level.value(i))))?;
                    counts[l.index()] += 1;
                }
            }
        }
        Ok(counts)
    }

    /// The distinct stream sequences of its rows, ascending (for rebuilding an index object).
    pub fn stream_seqs(&self) -> Result<Vec<u64>, ArchiveError> {
        let mut seqs = Vec::new();
        for batch in self.read((0..self.row_groups()).collect(), Some(&["stream_seq"]))? {
            let col = batch
                .column_by_name("stream_seq")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| self.corrupt("stream_seq column"))?;
            seqs.extend(col.values().iter().copied());
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }
}

impl std::fmt::Debug for SegmentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentReader")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .field("rows", &self.rows())
            .field("row_groups", &self.row_groups())
            .finish()
    }
}

/// Iterator of [`SegmentReader::newest_first`]: decodes one row group at a time.
pub struct NewestFirst<'a> {
    reader: &'a SegmentReader,
    range: TsRange,
    /// Row groups still to read, ascending (taken from the back).
    row_groups: Vec<usize>,
    /// Rows may hold a match only if they hold all of these.
    tokens: Vec<String>,
    /// Batches of the current row group still to walk (taken from the back), each with the
    /// rows that may hold the tokens (`None`: all).
    batches: VecDeque<(Columns, Option<Vec<bool>>)>,
    /// Rows of the last batch in `batches` not yet returned.
    row: usize,
    /// An error to return first (then the walk ends).
    pending_error: Option<ArchiveError>,
    failed: bool,
}

impl Iterator for NewestFirst<'_> {
    type Item = Result<ArchivedEvent, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.failed = true;
            return Some(Err(e));
        }
        loop {
            if let Some((cols, mask)) = self.batches.back() {
                if self.row == 0 {
                    self.batches.pop_back();
                    self.row = self.batches.back().map_or(0, |b| b.0.len());
                    continue;
                }
                self.row -= 1;
                if mask.as_ref().is_some_and(|m| !m[self.row]) {
                    continue;
                }
                if !self.range.contains(cols.ts(self.row)) {
                    continue;
                }
                return Some(cols.event(self.row).map_err(|e| {
                    self.failed = true;
                    self.reader.corrupt(e)
                }));
            }
            let rg = self.row_groups.pop()?;
            let batches = self.reader.read(vec![rg], None).and_then(|batches| {
                batches
                    .into_iter()
                    .map(|b| {
                        let mask = prefilter::rows_holding(&b, &self.tokens);
                        let cols =
                            Columns::new(&b).ok_or_else(|| self.reader.corrupt("columns"))?;
                        Ok((cols, mask))
                    })
                    .collect::<Result<VecDeque<_>, _>>()
            });
            match batches {
                Ok(batches) => {
                    self.batches = batches;
                    self.row = self.batches.back().map_or(0, |b| b.0.len());
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
