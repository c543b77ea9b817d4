use bytes::Bytes;

use super::*;
use crate::archive::ArchiveError;
use crate::archive::sample::{Entropy, SampleLogs};
use crate::{Level, tokens};

const T0: i64 = 1_795_996_000_000_000_000; // 2026-11-29T23:46:40Z

fn events(n: usize, seed: u64) -> Vec<LogEvent> {
    SampleLogs::new(seed, "api", T0, 10_000, Entropy::Realistic)
        .take(n)
        .collect()
}

/// `(stream_seq, event_idx)` of event `i`: 40 events per message.
fn identity(i: usize) -> (u64, u32) {
    (1_000 + (i / 40) as u64, (i % 40) as u32)
}

fn write(
    dir: &std::path::Path,
    evs: &[LogEvent],
    order: &[usize],
    opts: SegmentOptions,
) -> FinishedSegment {
    let mut w = SegmentWriter::create(dir, "api", 1_700_000_000_000, opts).unwrap();
    for &i in order {
        let (seq, idx) = identity(i);
        let line = serde_json::to_vec(&evs[i]).unwrap();
        w.append_line(seq, idx, &line).unwrap();
    }
    w.finish().unwrap()
}

fn read_all(seg: &FinishedSegment, range: TsRange) -> Vec<ArchivedEvent> {
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    r.newest_first(range)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn expected(evs: &[LogEvent], range: TsRange) -> Vec<ArchivedEvent> {
    let mut out: Vec<ArchivedEvent> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| range.contains(e.ts_nanos()))
        .map(|(i, e)| {
            let (stream_seq, event_idx) = identity(i);
            ArchivedEvent {
                ts_nanos: e.ts_nanos(),
                stream_seq,
                event_idx,
                event: e.clone(),
            }
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.key()));
    out
}

#[test]
fn round_trip_of_100k_events_is_exact_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(100_000, 1);
    let order: Vec<usize> = (0..evs.len()).collect();
    let seg = write(dir.path(), &evs, &order, SegmentOptions::default());
    assert_eq!(seg.merged_runs, 1);
    let h = &seg.header;
    assert_eq!(h.rows, 100_000);
    assert_eq!(h.messages, 2_500);
    assert_eq!((h.first_seq, h.last_seq), (1_000, 3_499));
    assert_eq!(seg.seqs.len(), 2_500);
    assert_eq!(h.min_ts, evs[0].ts_nanos());
    assert_eq!(h.max_ts, evs[99_999].ts_nanos());
    let raw: u64 = evs
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len() as u64 + 1)
        .sum();
    assert_eq!(h.raw_bytes, raw);
    assert_eq!(
        h.minutes
            .iter()
            .map(|(_, c)| c.iter().sum::<u64>())
            .sum::<u64>(),
        100_000
    );
    assert_eq!(h.bytes, std::fs::metadata(&seg.file).unwrap().len());
    assert!(
        h.segment
            .starts_with("segments/api/2026-11-29/1700000000000-")
    );
    let got = read_all(&seg, TsRange::ALL);
    assert_eq!(got.len(), evs.len());
    assert!(got == expected(&evs, TsRange::ALL), "events differ");

    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(h)).unwrap();
    assert_eq!(r.embedded_header().unwrap(), h.embedded());
    assert_eq!(r.stream_seqs().unwrap(), seg.seqs);
    let counts = r.count(TsRange::ALL).unwrap();
    assert_eq!(counts, h.levels);
    assert_eq!(r.index_header().unwrap(), *h);
    assert!(r.row_groups() >= 2, "{} row groups", r.row_groups());
}

#[test]
fn the_token_filter_holds_every_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(5_000, 2);
    let order: Vec<usize> = (0..evs.len()).collect();
    let seg = write(dir.path(), &evs, &order, SegmentOptions::default());
    let mut seen = 0;
    for e in &evs {
        let line = serde_json::to_vec(e).unwrap();
        tokens::canonical_line_tokens(&line, |t| {
            seen += 1;
            assert!(seg.filter.may_contain(t), "{}", String::from_utf8_lossy(t));
        });
        if let Some(crate::FieldValue::Str(id)) = e.fields.get("request_id") {
            assert!(seg.filter.may_contain(id.to_uppercase().as_bytes()));
        }
    }
    assert!(seen > 5_000);
    let absent = (0..10_000)
        .filter(|i| seg.filter.may_contain(format!("nope-{i}").as_bytes()))
        .count();
    assert!(absent < 200, "{absent} false positives in 10,000");
    // What rebuilding the catalog from the segment alone gets: the same filter.
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    assert_eq!(r.token_filters().unwrap().0, seg.filter);
}

#[test]
fn late_events_within_a_row_group_need_no_merge() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(10_000, 3);
    // Swap neighbours 300 apart: late by less than one row group of 1,000.
    let mut order: Vec<usize> = (0..evs.len()).collect();
    for i in (0..order.len() - 300).step_by(700) {
        order.swap(i, i + 300);
    }
    let opts = SegmentOptions {
        row_group_rows: 1_000,
        ..SegmentOptions::default()
    };
    let seg = write(dir.path(), &evs, &order, opts);
    assert_eq!(seg.merged_runs, 1);
    assert!(read_all(&seg, TsRange::ALL) == expected(&evs, TsRange::ALL));
}

#[test]
fn very_late_events_are_merged_into_global_order() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(20_000, 4);
    // Every 10th event arrives at the very end: late by up to the whole segment.
    let mut order: Vec<usize> = (0..evs.len()).filter(|i| i % 10 != 0).collect();
    order.extend((0..evs.len()).filter(|i| i % 10 == 0).rev());
    let opts = SegmentOptions {
        row_group_rows: 1_000,
        ..SegmentOptions::default()
    };
    let seg = write(dir.path(), &evs, &order, opts.clone());
    assert!(seg.merged_runs > 1, "{} runs", seg.merged_runs);
    let got = read_all(&seg, TsRange::ALL);
    assert!(got == expected(&evs, TsRange::ALL));
    // Row groups cover ascending, disjoint ranges, and none is over the bound.
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    let ranges: Vec<(i64, i64)> = (0..r.row_groups())
        .map(|rg| r.row_group_ts(rg).unwrap())
        .collect();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
    assert_eq!(r.row_groups(), 20);
    assert_eq!(r.embedded_header().unwrap(), seg.header.embedded());
}

#[test]
fn time_ranges_prune_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(30_000, 5);
    let order: Vec<usize> = (0..evs.len()).collect();
    let opts = SegmentOptions {
        row_group_rows: 2_000,
        ..SegmentOptions::default()
    };
    let seg = write(dir.path(), &evs, &order, opts);
    let range = TsRange {
        since: evs[10_500].ts_nanos(),
        until: evs[12_499].ts_nanos(),
    };
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    assert_eq!(r.row_groups(), 15);
    assert_eq!(r.row_groups_in(range), vec![5, 6]);
    let got = read_all(&seg, range);
    assert_eq!(got.len(), 2_000);
    assert!(got == expected(&evs, range));
    let counts = r.count(range).unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 2_000);
    let empty = TsRange {
        since: T0 - 10,
        until: T0 - 1,
    };
    assert!(r.row_groups_in(empty).is_empty());
    assert_eq!(r.newest_first(empty).count(), 0);
}

#[test]
fn bad_lines_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(dir.path(), "api", 1, SegmentOptions::default()).unwrap();
    let ev = events(1, 6).remove(0);
    let other = LogEvent {
        service: "web".into(),
        ..ev.clone()
    };
    let e = w.append_event(1, 0, &other).unwrap_err();
    assert!(matches!(e, ArchiveError::BadLine(_)), "{e}");
    assert!(matches!(
        w.append_line(1, 0, b"{not json"),
        Err(ArchiveError::BadLine(_))
    ));
    assert_eq!((w.rows(), w.messages(), w.raw_bytes()), (0, 0, 0));
    w.append_event(7, 0, &ev).unwrap();
    w.append_event(7, 1, &ev).unwrap();
    assert_eq!((w.rows(), w.messages()), (2, 1));
    assert!(w.buffered_bytes() > 0);
    let seg = w.finish().unwrap();
    assert_eq!(seg.seqs, vec![7]);
    let empty = SegmentWriter::create(dir.path(), "api", 1, SegmentOptions::default()).unwrap();
    assert!(empty.finish().is_err());
    assert!(SegmentWriter::create(dir.path(), "Bad Name", 1, SegmentOptions::default()).is_err());
}

#[test]
fn spool_files_are_removed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(100, 7);
    let order: Vec<usize> = (0..evs.len()).collect();
    let seg = write(dir.path(), &evs, &order, SegmentOptions::default());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(seg);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let mut w = SegmentWriter::create(dir.path(), "api", 1, SegmentOptions::default()).unwrap();
    w.append_event(1, 0, &evs[0]).unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn buffered_bytes_stay_bounded_by_the_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SegmentOptions {
        row_group_rows: 4_000,
        ..SegmentOptions::default()
    };
    let mut w = SegmentWriter::create(dir.path(), "api", 1, opts).unwrap();
    let mut peak = 0;
    for (i, ev) in events(60_000, 8).iter().enumerate() {
        let (seq, idx) = identity(i);
        w.append_event(seq, idx, ev).unwrap();
        peak = peak.max(w.buffered_bytes());
    }
    // Two row groups of ~300-byte rows, plus token hashes and sequences.
    assert!(peak < 8 << 20, "peak {peak} bytes");
    assert!(w.raw_bytes() > 15 << 20);
    w.finish().unwrap();
}

#[test]
fn corrupt_or_truncated_segments_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(3_000, 9);
    let order: Vec<usize> = (0..evs.len()).collect();
    let opts = SegmentOptions {
        row_group_rows: 1_000,
        ..SegmentOptions::default()
    };
    let seg = write(dir.path(), &evs, &order, opts);
    let good = std::fs::read(&seg.file).unwrap();
    let len = good.len();
    let drain = |bytes: Vec<u8>, expected: Option<&crate::archive::SegmentHeader>| {
        let r = SegmentReader::open("t", Bytes::from(bytes), expected)?;
        let n = r
            .newest_first(TsRange::ALL)
            .collect::<Result<Vec<_>, _>>()?
            .len();
        r.count(TsRange::ALL)?;
        Ok::<usize, ArchiveError>(n)
    };
    assert_eq!(drain(good.clone(), Some(&seg.header)).unwrap(), 3_000);
    for cut in [0, 1, 4, 100, len / 3, len / 2, len - 9, len - 8, len - 1] {
        let e = drain(good[..cut].to_vec(), Some(&seg.header)).unwrap_err();
        assert!(matches!(e, ArchiveError::Corrupt { .. }), "cut {cut}: {e}");
        // Without the index header Parquet's own checks must catch it (or read what is there).
        let _ = drain(good[..cut].to_vec(), None);
    }
    let mut flipped_caught = 0;
    for i in (0..len).step_by(len / 97) {
        let mut b = good.clone();
        b[i] ^= 0x20;
        let e = drain(b.clone(), Some(&seg.header)).unwrap_err();
        assert!(
            matches!(e, ArchiveError::Corrupt { .. }),
            "flip at {i}: {e}"
        );
        if drain(b, None).is_err() {
            flipped_caught += 1;
        }
    }
    println!("without the checksum, parquet itself caught {flipped_caught} of 98 flips");
    let mut wrong = seg.header.clone();
    wrong.checksum = Some("0000000000000000".into());
    assert!(
        drain(good, Some(&wrong))
            .unwrap_err()
            .to_string()
            .contains("checksum")
    );
}

#[test]
fn levels_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut evs = events(6, 10);
    for (e, l) in evs.iter_mut().zip(Level::ALL) {
        e.level = l;
        e.trace_id = None;
        e.host = None;
        e.fields.clear();
    }
    let order: Vec<usize> = (0..evs.len()).collect();
    let seg = write(dir.path(), &evs, &order, SegmentOptions::default());
    assert_eq!(seg.header.levels, [1, 1, 1, 1, 1, 1]);
    assert!(read_all(&seg, TsRange::ALL) == expected(&evs, TsRange::ALL));
}

/// Each row group's token filter holds the tokens of exactly its rows (as the search reads only
/// the row groups whose filter may match), in order and after a merge of late events alike, and
/// rebuilding them from the segment alone gives the same filters.
#[test]
fn row_group_filters_hold_their_rows_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(6_000, 6);
    let opts = SegmentOptions {
        row_group_rows: 1_000,
        ..SegmentOptions::default()
    };
    let in_order: Vec<usize> = (0..evs.len()).collect();
    let mut late: Vec<usize> = (0..evs.len()).filter(|i| i % 7 != 0).collect();
    late.extend((0..evs.len()).filter(|i| i % 7 == 0).rev());
    for order in [in_order, late] {
        let seg = write(dir.path(), &evs, &order, opts.clone());
        let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
        let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
        assert_eq!(seg.row_group_filters.len(), r.row_groups());
        assert_eq!(r.row_groups(), 6);
        // Where each request id really is (a request's 2–6 lines may straddle row groups).
        let mut holders: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for rg in 0..r.row_groups() {
            let f = &seg.row_group_filters[rg];
            let rows: Vec<ArchivedEvent> = r
                .newest_first_in(TsRange::ALL, Some(&[rg]), &[])
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows.len(), 1_000);
            for ev in &rows {
                let line = serde_json::to_vec(&ev.event).unwrap();
                tokens::canonical_line_tokens(&line, |t| {
                    assert!(f.may_contain(t), "rg {rg}: {}", String::from_utf8_lossy(t));
                });
                if let Some(crate::FieldValue::Str(id)) = ev.event.fields.get("request_id") {
                    let h = holders.entry(id.clone()).or_default();
                    if !h.contains(&rg) {
                        h.push(rg);
                    }
                }
            }
        }
        // Other row groups' filters (nearly) never claim an id: ~1 % false positives.
        let mut elsewhere = 0;
        for (id, rgs) in holders.iter().take(500) {
            elsewhere += (0..r.row_groups())
                .filter(|o| {
                    !rgs.contains(o) && seg.row_group_filters[*o].may_contain(id.as_bytes())
                })
                .count();
        }
        assert!(elsewhere < 50, "{elsewhere} false row groups over 500 ids");
        assert_eq!(
            r.token_filters().unwrap(),
            (seg.filter.clone(), seg.row_group_filters.clone())
        );
    }
    // A row group index past the file's is an error item, not a panic.
    let seg = write(dir.path(), &evs, &(0..evs.len()).collect::<Vec<_>>(), opts);
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    let mut it = r.newest_first_in(TsRange::ALL, Some(&[2, 9]), &[]);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

/// With tokens, only rows holding every one are decoded: exactly the events that contain them
/// (case-insensitively), none missed.
#[test]
fn tokens_skip_rows_that_cannot_match() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(5_000, 8);
    let seg = write(
        dir.path(),
        &evs,
        &(0..evs.len()).collect::<Vec<_>>(),
        SegmentOptions::default(),
    );
    let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
    // The keys searched below: promoted an integer, a float, a dictionary string and a key
    // (`http.status`); `kafka.partition`, in 120 of the rows, stays in the JSON text.
    let columns = field_columns(&footer(&bytes));
    for c in [
        "fields.user_id Int64",
        "fields.duration_ms Float64",
        "fields.region Utf8",
        "fields.http.status Int64",
    ] {
        assert!(columns.iter().any(|have| have == c), "{c}: {columns:?}");
    }
    assert!(
        !columns.iter().any(|c| c.starts_with("fields.kafka")),
        "{columns:?}"
    );
    let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
    let Some(crate::FieldValue::Str(id)) = evs[1234].fields.get("request_id") else {
        panic!("no request id");
    };
    let holding = |e: &LogEvent| {
        serde_json::to_string(e)
            .unwrap()
            .to_lowercase()
            .contains(&id.to_lowercase())
    };
    let want = evs.iter().filter(|e| holding(e)).count();
    assert!(want >= 1);
    let got: Vec<ArchivedEvent> = r
        .newest_first_in(TsRange::ALL, None, &[id.to_uppercase().to_lowercase()])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), want);
    assert!(got.iter().all(|e| holding(&e.event)));
    // Tokens found in promoted fields of every type, in their keys, and in the JSON text of the
    // rest: exactly the events whose canonical line holds them.
    let value = |key: &str| {
        evs.iter()
            .find_map(|e| e.fields.get(key))
            .unwrap_or_else(|| panic!("no {key}"))
            .to_text()
    };
    let tokens = [
        value("user_id"),
        value("duration_ms"),
        "http.status".to_string(),
        "kafka.partition".to_string(),
        "us-east-1".to_string(),
    ];
    for token in tokens {
        let holding = |e: &LogEvent| serde_json::to_string(e).unwrap().contains(&token);
        let want = evs.iter().filter(|e| holding(e)).count();
        let got: Vec<ArchivedEvent> = r
            .newest_first_in(TsRange::ALL, None, std::slice::from_ref(&token))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(want >= 1, "{token}");
        assert_eq!(got.len(), want, "{token}");
        assert!(got.iter().all(|e| holding(&e.event)), "{token}");
    }
}

/// A segment file's footer, as a reader loads it.
fn footer(bytes: &Bytes) -> parquet::arrow::arrow_reader::ArrowReaderMetadata {
    parquet::arrow::arrow_reader::ArrowReaderMetadata::load(bytes, Default::default()).unwrap()
}

/// The promoted fields' columns of a segment, as `"<name> <Arrow type>"`.
fn field_columns(meta: &parquet::arrow::arrow_reader::ArrowReaderMetadata) -> Vec<String> {
    meta.schema()
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .filter(|c| c.starts_with("fields."))
        .collect()
}

/// Fields of every shape come back exactly as written, promoted or not: keys changing type,
/// floats sometimes written as integers, keys named twice, rare keys, escapes; with promotion (the sample's frequent keys get typed
/// columns) and without (every field in the JSON text, as segments before promotion).
#[test]
fn fields_of_every_shape_round_trip_with_and_without_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..3_000)
        .map(|i| {
            let ts = format!("2026-11-30T10:00:{:02}.{:06}Z", i / 100, i);
            let n = match i % 10 {
                0 => r#""n":"seven""#.to_string(),
                1 => r#""n":7.25"#.to_string(),
                2 => r#""n":1,"n":2"#.to_string(),
                3 => r#""n":18446744073709551615"#.to_string(),
                _ => format!(r#""n":{i}"#),
            };
            let rare = if i % 500 == 0 { r#","rare":true"# } else { "" };
            // `k` is an integer in the first row group (so promoted as one), text later.
            let k = if i < 1_500 { format!("{i}") } else { format!(r#""k{i}""#) };
            // `d` is a float written as an integer when whole (5 % of the rows): promoted as a
            // float, the integers kept as integers.
            let d = if i % 20 == 0 { format!("{i}") } else { format!("{i}.5") };
            // `c` is an integer written as a string of one length in 5 % of the rows.
            let c = if i % 20 == 0 { r#""007""#.to_string() } else { format!("{i}") };
            format!(
                r#"{{"ts":"{ts}","service":"api","level":"info","message":"m {i}","fields":{{"a\"q":"x\ty{i}","ok":{},{n},"region":"eu-{}"{rare},"k":{k},"d":{d},"c":{c}}}}}"#,
                i % 2 == 0,
                i % 3,
            )
        })
        .collect();
    for max_promoted in [SegmentOptions::default().max_promoted, 0] {
        let opts = SegmentOptions {
            row_group_rows: 1_000,
            max_promoted,
            ..SegmentOptions::default()
        };
        let mut w = SegmentWriter::create(dir.path(), "api", 1, opts).unwrap();
        for (i, l) in lines.iter().enumerate() {
            w.append_line(1 + i as u64, 0, l.as_bytes()).unwrap();
        }
        let seg = w.finish().unwrap();
        let bytes = Bytes::from(std::fs::read(&seg.file).unwrap());
        let meta = footer(&bytes);
        let columns = field_columns(&meta);
        // No copy of the Arrow schema in the footer (the Parquet schema gives the same types):
        // only the segment's header.
        let kv: Vec<&str> = meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        assert_eq!(kv, [crate::archive::header::PARQUET_METADATA_KEY]);
        if max_promoted == 0 {
            assert!(columns.is_empty(), "{columns:?}");
        } else {
            // `n` mixes types and `rare` is in 0.2 % of the rows: both stay in the JSON text.
            assert_eq!(
                columns,
                [
                    "fields.a\"q Utf8",
                    "fields.c Int64",
                    "fields.d Float64",
                    "fields.k Int64",
                    "fields.ok Boolean",
                    "fields.region Utf8"
                ]
            );
        }
        let r = SegmentReader::open("t", bytes, Some(&seg.header)).unwrap();
        let got: Vec<LogEvent> = r
            .newest_first(TsRange::ALL)
            .map(|e| e.unwrap().event)
            .collect();
        let want: Vec<LogEvent> = lines
            .iter()
            .rev()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
    }
}

/// A `fields.*` column of a type no writer gives it is a corrupt segment, said when opened.
#[test]
fn a_promoted_column_of_another_type_is_corrupt() {
    use arrow_array::{ArrayRef, Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let mut rows = rows::RowBuffer::default();
    let strings = rows::RowStrings {
        message: "m",
        fields: "{}",
        trace_id: None,
        host: None,
    };
    rows.push((T0, 1, 0), Level::Info, strings, &[]);
    let core = rows.to_batch(&arrow_schema(), &[], "api").unwrap();
    let mut fields: Vec<Field> = core
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("fields.x", DataType::Int32, true));
    let mut columns = core.columns().to_vec();
    columns.push(std::sync::Arc::new(Int32Array::from(vec![1])) as ArrayRef);
    let batch = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let e = SegmentReader::open("t", Bytes::from(out), None).unwrap_err();
    assert!(e.to_string().contains("fields.x"), "{e}");
}
