//! [`SegmentWriter`]: one open segment of one service, spooled to a local Parquet file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tempfile::TempPath;
use xxhash_rust::xxh3::Xxh3;

use super::line::CanonicalLine;
use super::merge;
use super::promoted::{self, FieldKind, PromotedField};
use super::rows::{RowBuffer, RowKey, RowStrings};
use super::{SegmentOptions, arrow_schema, segment_schema};
use crate::archive::ArchiveError;
use crate::archive::bloom::{TokenFilter, token_hash};
use crate::archive::header::{HEADER_VERSION, HeaderStats, PARQUET_METADATA_KEY, SegmentHeader};
use crate::archive::layout::SegmentName;
use crate::{LogEvent, tokens};

/// A segment being written. Append the events of one service (each message's events of this
/// service all to the same segment), then [`SegmentWriter::finish`]. After an error other than
/// [`ArchiveError::BadLine`] the writer is unusable: drop it (its spool file goes with it) and
/// let the messages be redelivered.
pub struct SegmentWriter {
    service: String,
    incarnation: u64,
    opts: SegmentOptions,
    /// Decided with the first row group (see [`super::promoted`]), as the schema and the
    /// writer properties that depend on it.
    promoted: Vec<PromotedField>,
    schema: SchemaRef,
    props: WriterProperties,
    spool: TempPath,
    /// The spool file until the first row group opens the Parquet writer on it.
    spool_file: Option<File>,
    writer: Option<ArrowWriter<File>>,
    pending: RowBuffer,
    stats: HeaderStats,
    seqs: Vec<u64>,
    tokens: TokenSet,
    /// Token hashes of the line being appended (reused).
    line_tokens: Vec<u64>,
    /// The token filter of every row group written to the spool file, in file order.
    row_group_filters: Vec<TokenFilter>,
    /// Largest key written to the spool file so far.
    written_max: Option<RowKey>,
    /// First row group of every sorted run in the spool file.
    runs: Vec<usize>,
    row_groups: usize,
}

/// A finished segment, ready to upload: the local file, and what its index object needs.
#[derive(Debug)]
pub struct FinishedSegment {
    /// The Parquet file on the spool directory; deleted when dropped.
    pub file: TempPath,
    /// Complete: `bytes` and `checksum` describe `file`; `filter` is set by the index encoder.
    pub header: SegmentHeader,
    /// The message sequences, ascending.
    pub seqs: Vec<u64>,
    pub filter: TokenFilter,
    /// One token filter per row group of `file`, in file order: a search reads only the row
    /// groups whose filter may hold its tokens.
    pub row_group_filters: Vec<TokenFilter>,
    /// Sorted runs the spool file held (1 unless events arrived more than a row group late and
    /// `finish` had to merge).
    pub merged_runs: usize,
}

impl SegmentWriter {
    /// Opens a spool file in `spool_dir` for a segment of `service` from the stream
    /// incarnation `incarnation` (the stream's creation time in ms).
    pub fn create(
        spool_dir: &Path,
        service: &str,
        incarnation: u64,
        opts: SegmentOptions,
    ) -> Result<SegmentWriter, ArchiveError> {
        crate::ServiceName::parse_strict(service).map_err(ArchiveError::BadLine)?;
        let (file, spool) = tempfile::Builder::new()
            .prefix(&format!("{service}."))
            .suffix(".parquet.part")
            .tempfile_in(spool_dir)?
            .into_parts();
        let props = writer_properties(&opts, &[])?;
        Ok(SegmentWriter {
            service: service.to_string(),
            incarnation,
            opts,
            promoted: Vec::new(),
            schema: arrow_schema(),
            props,
            spool,
            spool_file: Some(file),
            writer: None,
            pending: RowBuffer::default(),
            stats: HeaderStats::default(),
            seqs: Vec::new(),
            tokens: TokenSet::default(),
            line_tokens: Vec::new(),
            row_group_filters: Vec::new(),
            written_max: None,
            runs: Vec::new(),
            row_groups: 0,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Appends one canonical NDJSON line (without its newline), as ingest publishes them.
    /// [`ArchiveError::BadLine`] when the line is not canonical or not of this service: nothing
    /// was appended, give the event to [`SegmentWriter::append_event`] after the forgiving
    /// parser.
    pub fn append_line(
        &mut self,
        stream_seq: u64,
        event_idx: u32,
        line: &[u8],
    ) -> Result<(), ArchiveError> {
        let l = CanonicalLine::parse(line).map_err(ArchiveError::BadLine)?;
        if l.service != self.service {
            return Err(ArchiveError::BadLine(format!(
                "service {:?} in a segment of {:?}",
                l.service, self.service
            )));
        }
        self.stats.add(l.ts_nanos, l.level, line.len());
        if self.seqs.last() != Some(&stream_seq) {
            self.seqs.push(stream_seq);
        }
        self.line_tokens.clear();
        tokens::canonical_line_tokens(line, |t| self.line_tokens.push(token_hash(t)));
        for &h in &self.line_tokens {
            self.tokens.push(h);
        }
        let strings = RowStrings {
            message: &l.message,
            fields: l.fields,
            trace_id: l.trace_id.as_deref(),
            host: l.host.as_deref(),
        };
        self.pending.push(
            (l.ts_nanos, stream_seq, event_idx),
            l.level,
            strings,
            &self.line_tokens,
        );
        if self.pending.len() >= 2 * self.opts.row_group_rows
            || self.pending.string_bytes() >= 2 * self.opts.row_group_bytes
        {
            let half = self.pending.len() / 2;
            self.pending.sort();
            let oldest = self.pending.split_front(half.max(1));
            self.write_rows(oldest)?;
        }
        Ok(())
    }

    /// Appends an event that did not come as a canonical line (the forgiving parser's output):
    /// it is serialised to its canonical line first, so both paths store the same bytes.
    pub fn append_event(
        &mut self,
        stream_seq: u64,
        event_idx: u32,
        event: &LogEvent,
    ) -> Result<(), ArchiveError> {
        let line = serde_json::to_vec(event).map_err(|e| ArchiveError::BadLine(e.to_string()))?;
        self.append_line(stream_seq, event_idx, &line)
    }

    /// Events appended.
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    /// Canonical NDJSON bytes appended (what `segment_max_bytes` bounds).
    pub fn raw_bytes(&self) -> u64 {
        self.stats.raw_bytes
    }

    /// Distinct messages appended.
    pub fn messages(&self) -> usize {
        self.seqs.len()
    }

    /// Memory this writer holds: rows not yet written, the token hashes and sequences, and the
    /// Parquet writer's buffers. Bounded by two row groups plus 8 bytes per distinct token and
    /// message.
    pub fn buffered_bytes(&self) -> usize {
        self.pending.heap_bytes()
            + self.tokens.heap_bytes()
            + self.seqs.capacity() * 8
            + self.stats.heap_bytes()
            + self.writer.as_ref().map_or(0, ArrowWriter::memory_size)
            + self
                .row_group_filters
                .iter()
                .map(|f| f.as_bytes().len())
                .sum::<usize>()
    }

    /// Writes sorted rows as row groups of at most `row_group_rows` each (one token filter
    /// per row group, so the two stay one to one).
    fn write_rows(&mut self, mut rows: RowBuffer) -> Result<(), ArchiveError> {
        while rows.len() > self.opts.row_group_rows.max(1) {
            let chunk = rows.split_front(self.opts.row_group_rows.max(1));
            self.write_row_group(&chunk)?;
        }
        self.write_row_group(&rows)
    }

    fn write_row_group(&mut self, rows: &RowBuffer) -> Result<(), ArchiveError> {
        let (Some(min), Some(max)) = (rows.min_key(), rows.max_key()) else {
            return Ok(());
        };
        if self.written_max.is_none_or(|w| min < w) {
            self.runs.push(self.row_groups);
        }
        self.written_max = Some(self.written_max.map_or(max, |w| w.max(max)));
        if self.writer.is_none() {
            self.open_writer(rows)?;
        }
        let batch = rows.to_batch(&self.schema, &self.promoted, &self.service)?;
        let writer = self.writer.as_mut().ok_or_else(closed)?;
        writer.write(&batch)?;
        writer.flush()?;
        self.row_groups += 1;
        self.row_group_filters.push(rows.token_filter());
        Ok(())
    }

    /// Chooses the promoted fields from the first row group's rows, and opens the Parquet
    /// writer with the schema and properties they make.
    fn open_writer(&mut self, first: &RowBuffer) -> Result<(), ArchiveError> {
        let file = self.spool_file.take().ok_or_else(closed)?;
        self.promoted = promoted::choose(first.fields_texts(), self.opts.max_promoted);
        self.schema = segment_schema(&self.promoted);
        self.props = writer_properties(&self.opts, &self.promoted)?;
        self.writer = Some(parquet_writer(file, &self.schema, &self.props)?);
        Ok(())
    }

    /// Writes what is left, closes the file (merging sorted runs if events came late) and
    /// returns it with its header, sequence list and token filter.
    pub fn finish(mut self) -> Result<FinishedSegment, ArchiveError> {
        let (Some(min_ts), Some(max_ts)) = (self.stats.min_ts, self.stats.max_ts) else {
            return Err(ArchiveError::BadLine(
                "an empty segment cannot be finished".into(),
            ));
        };
        self.pending.sort();
        while !self.pending.is_empty() {
            let chunk = self.pending.split_front(self.opts.row_group_rows);
            self.write_rows(chunk)?;
        }
        self.seqs.sort_unstable();
        self.seqs.dedup();
        let name = SegmentName::for_seqs(self.incarnation, &self.seqs)
            .ok_or_else(|| ArchiveError::BadLine("no messages".into()))?;
        let mut header = SegmentHeader {
            version: HEADER_VERSION,
            segment: name.segment_path(&self.service, min_ts),
            service: self.service.clone(),
            min_ts,
            max_ts,
            rows: self.stats.rows,
            bytes: 0,
            raw_bytes: self.stats.raw_bytes,
            levels: self.stats.levels,
            minutes: std::mem::take(&mut self.stats.minutes)
                .into_iter()
                .collect(),
            incarnation: self.incarnation,
            first_seq: name.first_seq,
            last_seq: name.last_seq,
            messages: self.seqs.len() as u64,
            seqhash: format!("{:016x}", name.seqhash),
            created: chrono::Utc::now().timestamp_millis(),
            checksum: None,
            filter: None,
            row_group_filters: None,
        };
        let meta = KeyValue::new(
            PARQUET_METADATA_KEY.to_string(),
            serde_json::to_string(&header.embedded())
                .map_err(|e| ArchiveError::BadLine(e.to_string()))?,
        );
        let merged_runs = self.runs.len();
        let mut writer = self.writer.take().ok_or_else(closed)?;
        let (file, row_group_filters) = if merged_runs > 1 {
            // Events came later than one row group: the file holds several sorted runs.
            writer.close()?;
            let spool_dir = self.spool.parent().unwrap_or(Path::new("."));
            let (out, merged) = tempfile::Builder::new()
                .prefix(&format!("{}.", self.service))
                .suffix(".parquet.part")
                .tempfile_in(spool_dir)?
                .into_parts();
            let mut out_writer = parquet_writer(out, &self.schema, &self.props)?;
            let filters = merge::merge_runs(
                &self.spool,
                &self.runs,
                self.row_groups,
                &self.opts,
                &self.service,
                (&self.schema, &self.promoted),
                &mut out_writer,
            )?;
            out_writer.append_key_value_metadata(meta);
            out_writer.close()?;
            (merged, filters)
        } else {
            writer.append_key_value_metadata(meta);
            writer.close()?;
            (self.spool, self.row_group_filters)
        };
        let (bytes, checksum) = size_and_checksum(&file)?;
        header.bytes = bytes;
        header.checksum = Some(format!("{checksum:016x}"));
        Ok(FinishedSegment {
            file,
            header,
            seqs: self.seqs,
            filter: TokenFilter::from_hashes(&self.tokens.finish()),
            row_group_filters,
            merged_runs,
        })
    }
}

/// A writer used after an error left it without its file (see [`SegmentWriter`]).
fn closed() -> ArchiveError {
    ArchiveError::Parquet(parquet::errors::ParquetError::General(
        "the segment writer was closed by an earlier error".into(),
    ))
}

/// xxh3-64 of a whole object, as the header's `checksum` holds it.
pub(super) fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn size_and_checksum(path: &Path) -> Result<(u64, u64), ArchiveError> {
    let mut f = File::open(path)?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.digest()))
}

/// A Parquet writer of a segment's schema. Without the Arrow schema in the footer: readers
/// (ours, DuckDB, Spark) get the same types from the Parquet schema, and the Arrow schema's
/// base64 copy cost about 0.9 KB per file — a sixth of a quiet service's five-minute segment.
fn parquet_writer(
    file: File,
    schema: &SchemaRef,
    props: &WriterProperties,
) -> Result<ArrowWriter<File>, ArchiveError> {
    let options = ArrowWriterOptions::new()
        .with_properties(props.clone())
        .with_skip_arrow_metadata(true);
    Ok(ArrowWriter::try_new_with_options(
        file,
        schema.clone(),
        options,
    )?)
}

/// The Parquet writer properties of a segment: zstd, dictionaries, statistics and encodings per
/// column, promoted fields included.
pub fn writer_properties(
    opts: &SegmentOptions,
    promoted: &[PromotedField],
) -> Result<WriterProperties, ArchiveError> {
    let col = |name: &str| ColumnPath::from(name);
    let sorted = |column_idx: i32| SortingColumn {
        column_idx,
        descending: false,
        nulls_first: false,
    };
    let mut b = WriterProperties::builder()
        .set_created_by(format!("logjet {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(col("service"), true)
        .set_column_dictionary_enabled(col("level"), true)
        .set_column_dictionary_enabled(col("host"), true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(col("ts"), EnabledStatistics::Page)
        .set_column_statistics_enabled(col("message"), EnabledStatistics::None)
        .set_column_statistics_enabled(col("fields"), EnabledStatistics::None)
        .set_column_statistics_enabled(col("trace_id"), EnabledStatistics::None)
        .set_column_encoding(col("ts"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(col("stream_seq"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(col("event_idx"), Encoding::DELTA_BINARY_PACKED)
        // Trace ids have one length (32 hex digits in W3C trace context): see
        // `PromotedField::one_length`.
        .set_column_encoding(col("trace_id"), Encoding::DELTA_LENGTH_BYTE_ARRAY)
        .set_sorting_columns(Some(vec![sorted(0), sorted(7), sorted(8)]));
    for p in promoted {
        let path = ColumnPath::new(vec![p.column_name()]);
        // Nearly unique strings compress better plain, and their min/max would only bloat the
        // footer; numbers and few-valued strings get chunk statistics, for other readers'
        // filters.
        let plain_text = p.kind == FieldKind::Str && !p.dictionary;
        if p.one_length {
            b = b.set_column_encoding(path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY);
        }
        b = b
            .set_column_dictionary_enabled(path.clone(), p.dictionary)
            .set_column_statistics_enabled(
                path,
                if plain_text {
                    EnabledStatistics::None
                } else {
                    EnabledStatistics::Chunk
                },
            );
    }
    Ok(b.build())
}

/// Distinct token hashes, deduplicated whenever the list doubles: about 8 bytes per distinct
/// token (16 at worst) instead of one entry per occurrence.
#[derive(Debug, Default)]
struct TokenSet {
    hashes: Vec<u64>,
    distinct: usize,
}

impl TokenSet {
    fn push(&mut self, h: u64) {
        self.hashes.push(h);
        if self.hashes.len() >= 2 * self.distinct.max(4096) {
            self.hashes.sort_unstable();
            self.hashes.dedup();
            self.distinct = self.hashes.len();
        }
    }

    fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
    }

    fn finish(mut self) -> Vec<u64> {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        self.hashes
    }
}
