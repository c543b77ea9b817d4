//! How well segments compress, and what writing and reading them costs.
//!
//! ```text
//! cargo run --release -p logjet-core --features archive --example archive_compression [events]
//! ```
//!
//! Generates one service's realistic lines (`archive::sample`), writes them as one segment at
//! several zstd levels through the real writer (canonical lines in, as the archiver appends
//! them), and reads them back newest first (checking every event comes back as written); then
//! the same without promoted fields (every field in the `fields` JSON text). Prints
//! markdown tables: compression ratio = canonical NDJSON bytes / Parquet bytes; times are CPU
//! seconds of the one thread doing the work, per million events. With `ARCHIVE_SAMPLE_DIR=dir`,
//! the segments written at the default level are kept under `dir` as an archive would hold them
//! (for DuckDB). With `ARCHIVE_NDJSON_DIR=dir`, it measures files of events instead: one segment
//! per `dir/*.ndjson`, lines as clients send them or events (real logs:
//! `tests/python/loghub_ndjson.py` makes such files of loghub's; the bench's lines:
//! `logjet-bench --dump-lines N`), with the bytes each column takes (and with
//! `ARCHIVE_SAMPLE_DIR=dir`, each file's segment kept as `dir/<file>.parquet`).

// A test's (or an example's) unwrap is its assertion; the workspace denies it in services.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use logjet_core::LogEvent;
use logjet_core::archive::sample::{Entropy, SampleLogs};
use logjet_core::archive::segment::{SegmentOptions, SegmentReader, SegmentWriter, TsRange};
use logjet_core::parse::{BodyFormat, ParseOptions, parse_body};

const T0: i64 = 1_796_000_000_000_000_000;
/// Level of the layout without promoted fields and of the worst case: the default's.
const PROMOTED_LEVEL: i32 = 6;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(750_000);
    let spool = tempfile::tempdir().expect("temp dir");
    // ARCHIVE_NDJSON_DIR=dir: instead, one segment per `*.ndjson` file of events in `dir`.
    if let Some(dir) = std::env::var_os("ARCHIVE_NDJSON_DIR") {
        files(std::path::Path::new(&dir), spool.path());
        return;
    }
    for entropy in [Entropy::Realistic, Entropy::Unique] {
        let events: Vec<LogEvent> = SampleLogs::new(42, "api", T0, 10_000, entropy)
            .take(n)
            .collect();
        let lines: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("serialises"))
            .collect();
        let raw: usize = lines.iter().map(|l| l.len() + 1).sum();
        // ARCHIVE_SAMPLE_NDJSON=file writes the lines too (to compare with zstd/xz on the text).
        if let Some(path) = std::env::var_os("ARCHIVE_SAMPLE_NDJSON") {
            let path = format!("{}.{entropy:?}", path.to_string_lossy()).to_lowercase();
            std::fs::write(&path, lines.join(&b'\n')).expect("write ndjson");
        }
        println!(
            "\n### {entropy:?} identifiers: {n} events, {:.1} MiB canonical NDJSON ({} bytes/line)\n",
            mib(raw),
            raw / n
        );
        println!("| layout | zstd | Parquet MiB | ratio | write CPU s / 1M | read CPU s / 1M |");
        println!("|---|---|---|---|---|---|");
        let levels: &[i32] = if entropy == Entropy::Realistic {
            &[1, 3, 6, 9]
        } else {
            &[PROMOTED_LEVEL]
        };
        let variants = levels
            .iter()
            .map(|&level| ("promoted fields + `fields` JSON (default)", level, None))
            .chain([("every field in `fields` JSON", PROMOTED_LEVEL, Some(0))]);
        for (layout, level, max_promoted) in variants {
            let opts = SegmentOptions {
                zstd_level: level,
                max_promoted: max_promoted.unwrap_or(SegmentOptions::default().max_promoted),
                ..SegmentOptions::default()
            };
            let default = opts == SegmentOptions::default();
            let started = cpu_s();
            let mut w = SegmentWriter::create(spool.path(), "api", 1, opts).expect("writer");
            for (i, l) in lines.iter().enumerate() {
                w.append_line(1 + (i / 100) as u64, (i % 100) as u32, l)
                    .expect("append");
            }
            let seg = w.finish().expect("finish");
            let write_s = since(started);
            let bytes = Bytes::from(std::fs::read(&seg.file).expect("read"));
            if default {
                column_sizes(&bytes, n);
            }
            // ARCHIVE_SAMPLE_DIR=dir keeps the default segment where the archive would.
            if let Some(dir) = std::env::var_os("ARCHIVE_SAMPLE_DIR")
                && default
            {
                let to = std::path::Path::new(&dir)
                    .join(format!("{entropy:?}").to_lowercase())
                    .join(&seg.header.segment);
                std::fs::create_dir_all(to.parent().expect("a directory")).expect("mkdir");
                std::fs::write(&to, &bytes).expect("copy");
                println!("(kept {})", to.display());
            }
            let started = cpu_s();
            let r = SegmentReader::open("bench", bytes.clone(), Some(&seg.header)).expect("open");
            let read: Vec<LogEvent> = r
                .newest_first(TsRange::ALL)
                .map(|e| e.expect("event").event)
                .collect();
            let read_s = since(started);
            assert_eq!(read.len(), n);
            assert!(read.iter().rev().eq(events.iter()), "read back as written");
            row(layout, level, bytes.len(), raw, write_s, Some(read_s), n);
        }
        for rows in [16_384, 262_144] {
            let opts = SegmentOptions {
                row_group_rows: rows,
                row_group_bytes: 1 << 30,
                ..SegmentOptions::default()
            };
            let mut w = SegmentWriter::create(spool.path(), "api", 1, opts).expect("writer");
            let started = cpu_s();
            for (i, l) in lines.iter().enumerate() {
                w.append_line(1 + (i / 100) as u64, (i % 100) as u32, l)
                    .expect("append");
            }
            let seg = w.finish().expect("finish");
            let write_s = since(started);
            row(
                &format!("default, row groups of {}k rows", rows / 1024),
                SegmentOptions::default().zstd_level,
                seg.header.bytes as usize,
                raw,
                write_s,
                None,
                n,
            );
        }
        COLUMN_SIZES.with(|c| {
            let level = SegmentOptions::default().zstd_level;
            println!(
                "\nBytes per event by column at zstd {level}: {}",
                c.borrow()
            )
        });
    }
}

/// One segment per NDJSON file (one service per file), with and without promoted fields. A
/// file holds lines as clients send them (the bench's `logjet-bench --dump-lines`) or events
/// (`tests/python/loghub_ndjson.py`'s); either is parsed as ingest parses a body, received at
/// `T0`. Ratios: to the file's bytes, and to the canonical NDJSON of the same events.
fn files(dir: &std::path::Path, spool: &std::path::Path) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    paths.sort();
    println!(
        "| file | events | file bytes | canonical NDJSON bytes | Parquet bytes | ratio to the file | to canonical | every field in JSON, to canonical |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    let received_at = chrono::DateTime::from_timestamp_nanos(T0);
    let (mut all_file, mut all_raw, mut all_parquet, mut all_json) = (0, 0, 0, 0);
    let mut columns = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read(&path).expect("the file");
        let parsed = parse_body(&text, BodyFormat::Ndjson, &ParseOptions::new(received_at));
        assert!(
            parsed.rejects.is_empty(),
            "{name}: {:?}",
            &parsed.rejects[..1]
        );
        let lines: Vec<Vec<u8>> = parsed
            .events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("serialises"))
            .collect();
        let raw: usize = lines.iter().map(|l| l.len() + 1).sum();
        let service = &parsed.events[0].service;
        let size = |max_promoted| {
            let opts = SegmentOptions {
                max_promoted,
                ..SegmentOptions::default()
            };
            let mut w = SegmentWriter::create(spool, service, 1, opts).expect("writer");
            for (i, l) in lines.iter().enumerate() {
                w.append_line(1 + i as u64, 0, l).expect("append");
            }
            let seg = w.finish().expect("finish");
            if max_promoted > 0 {
                let bytes = Bytes::from(std::fs::read(&seg.file).expect("read"));
                column_sizes(&bytes, lines.len());
                // ARCHIVE_SAMPLE_DIR=dir keeps each file's segment as `dir/<file>.parquet`.
                if let Some(dir) = std::env::var_os("ARCHIVE_SAMPLE_DIR") {
                    let to = std::path::Path::new(&dir).join(format!("{name}.parquet"));
                    std::fs::write(&to, &bytes).expect("copy");
                }
            }
            seg.header.bytes as usize
        };
        let (parquet, json) = (size(SegmentOptions::default().max_promoted), size(0));
        columns.push((name.clone(), COLUMN_SIZES.with(|c| c.borrow().clone())));
        all_file += text.len();
        (all_raw, all_parquet, all_json) = (all_raw + raw, all_parquet + parquet, all_json + json);
        println!(
            "| {name} | {} | {} | {raw} | {parquet} | {:.1}× | {:.1}× | {:.1}× |",
            lines.len(),
            text.len(),
            text.len() as f64 / parquet as f64,
            raw as f64 / parquet as f64,
            raw as f64 / json as f64,
        );
    }
    println!(
        "| all | | {all_file} | {all_raw} | {all_parquet} | {:.1}× | {:.1}× | {:.1}× |",
        all_file as f64 / all_parquet as f64,
        all_raw as f64 / all_parquet as f64,
        all_raw as f64 / all_json as f64
    );
    println!(
        "\nBytes per event by column at zstd {}:\n",
        SegmentOptions::default().zstd_level
    );
    for (name, sizes) in columns {
        println!("- {name}: {sizes}");
    }
}

/// CPU time of this thread, s: robust to other processes competing for the cores.
fn cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // A measurement tool: std has no per-thread CPU clock.
    #[allow(unsafe_code)]
    // SAFETY: clock_gettime writes one timespec to the pointer given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t)
    };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// CPU seconds since `start` (a [`cpu_s`] value).
fn since(start: f64) -> f64 {
    cpu_s() - start
}

/// Bytes per event of each column, printed after the table.
fn column_sizes(bytes: &Bytes, n: usize) {
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(bytes)
        .expect("footer");
    let mut sizes: BTreeMap<String, i64> = BTreeMap::new();
    for rg in meta.row_groups() {
        for c in rg.columns() {
            *sizes.entry(c.column_path().string()).or_default() += c.compressed_size();
        }
    }
    let mut v: Vec<(String, i64)> = sizes.into_iter().collect();
    v.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let text: Vec<String> = v
        .iter()
        .map(|(c, s)| format!("{c} {:.1}", *s as f64 / n as f64))
        .collect();
    COLUMN_SIZES.with(|c| *c.borrow_mut() = text.join(", "));
}

thread_local! {
    static COLUMN_SIZES: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn row(
    layout: &str,
    level: i32,
    size: usize,
    raw: usize,
    write_s: f64,
    read_s: Option<f64>,
    n: usize,
) {
    let per_m = |s: f64| s * 1e6 / n as f64;
    println!(
        "| {layout} | {level} | {:.2} | {:.1}× | {:.2} | {} |",
        mib(size),
        raw as f64 / size as f64,
        per_m(write_s),
        read_s.map_or("–".to_string(), |s| format!("{:.2}", per_m(s)))
    );
}
