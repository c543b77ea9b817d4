use std::time::Duration;

use super::*;
use crate::archive::sample::{Entropy, SampleLogs};
use crate::archive::segment::{SegmentOptions, SegmentWriter, TsRange};
use crate::{FieldValue, LogEvent};

const MIN: i64 = 60_000_000_000;
const T0: i64 = 1_796_000_000_000_000_000; // 2026-11-30T00:53:20Z

struct Fixture {
    _dir: tempfile::TempDir,
    spool: tempfile::TempDir,
    store: ArchiveStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = ArchiveStore::local(dir.path().join("archive")).unwrap();
    Fixture {
        _dir: dir,
        spool: tempfile::tempdir().unwrap(),
        store,
    }
}

/// A segment of `service` with `n` events from `start`, messages `seqs` (events spread over
/// them in order).
fn segment(
    f: &Fixture,
    service: &str,
    start: i64,
    n: usize,
    seqs: &[u64],
) -> (FinishedSegment, Vec<LogEvent>) {
    let evs: Vec<LogEvent> = SampleLogs::new(start as u64, service, start, 100, Entropy::Realistic)
        .take(n)
        .collect();
    let mut w =
        SegmentWriter::create(f.spool.path(), service, 7, SegmentOptions::default()).unwrap();
    for (i, e) in evs.iter().enumerate() {
        let seq = seqs[i * seqs.len() / n];
        w.append_event(seq, i as u32, e).unwrap();
    }
    (w.finish().unwrap(), evs)
}

fn catalog(f: &Fixture) -> Catalog {
    Catalog::new(f.store.clone(), CatalogOptions::default())
}

#[tokio::test]
async fn publish_then_refresh_finds_every_segment() {
    let f = fixture();
    let writer = catalog(&f);
    let (a, _) = segment(&f, "api", T0, 500, &[1, 2, 3]);
    let (b, _) = segment(&f, "payments", T0 + 10 * MIN, 500, &[4, 6]);
    let ma = writer.publish(&a).await.unwrap();
    writer.publish(&b).await.unwrap();
    assert_eq!(writer.len(), 2);
    // Publishing again (a retry after a crash) writes the same objects: still two segments.
    writer.publish(&a).await.unwrap();
    assert_eq!(writer.len(), 2);

    let reader = catalog(&f);
    let report = reader.refresh_all().await.unwrap();
    assert_eq!((report.added, report.removed, report.segments), (2, 0, 2));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let all = reader.segments();
    assert_eq!(all[0].service(), "payments");
    let a_read = all.iter().find(|m| m.service() == "api").unwrap();
    assert_eq!(a_read.header, ma.header);
    assert_eq!(a_read.header.bytes, a.header.bytes);
    // The segment reads back whole and verified.
    let r = reader.read_segment(a_read).await.unwrap();
    assert_eq!(r.rows(), 500);
    assert_eq!(reader.seq_list(a_read).await.unwrap(), vec![1, 2, 3]);
    // A second refresh changes nothing.
    let again = reader.refresh_all().await.unwrap();
    assert_eq!((again.added, again.removed), (0, 0));
}

#[tokio::test]
async fn recent_refresh_lists_only_the_last_two_commit_hours() {
    let f = fixture();
    let writer = catalog(&f);
    let (a, _) = segment(&f, "api", T0, 100, &[1]);
    writer.publish(&a).await.unwrap();
    let reader = catalog(&f);
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(reader.refresh_recent_at(now).await.unwrap().added, 1);
    let (b, _) = segment(&f, "api", T0 + MIN, 100, &[2]);
    writer.publish(&b).await.unwrap();
    // Two hours later the commit hour is no longer listed.
    let later = reader.refresh_recent_at(now + 2 * 3_600_000).await.unwrap();
    assert_eq!((later.added, reader.len()), (0, 1));
    assert_eq!(
        reader
            .refresh_recent_at(now + 3_600_000)
            .await
            .unwrap()
            .added,
        1
    );
}

#[tokio::test]
async fn candidates_prune_by_service_time_and_level() {
    let f = fixture();
    let cat = catalog(&f);
    let (a, evs_a) = segment(&f, "api", T0, 300, &[1]);
    let (b, _) = segment(&f, "api", T0 + 30 * MIN, 300, &[2]);
    let (c, _) = segment(&f, "payments", T0 + 30 * MIN, 300, &[3]);
    for s in [&a, &b, &c] {
        cat.publish(s).await.unwrap();
    }
    let names = |v: Vec<SegmentMeta>| -> Vec<String> {
        v.iter().map(|m| m.segment().to_string()).collect()
    };
    let all = cat.candidates(None, TsRange::ALL, None);
    assert_eq!(all.len(), 3);
    assert!(
        all[0].header.max_ts >= all[1].header.max_ts
            && all[1].header.max_ts >= all[2].header.max_ts
    );
    assert_eq!(
        names(cat.candidates(Some("api"), TsRange::ALL, None)),
        vec![b.header.segment.clone(), a.header.segment.clone()]
    );
    let early = TsRange::new(None, Some(T0 + 10 * MIN));
    assert_eq!(
        names(cat.candidates(Some("api"), early, None)),
        vec![a.header.segment.clone()]
    );
    assert!(cat.candidates(Some("nope"), TsRange::ALL, None).is_empty());
    // Levels: only segments that hold an event of the level in the range.
    let has_error = evs_a.iter().any(|e| e.level == Level::Error);
    let errors = cat.candidates(Some("api"), early, Some(&[Level::Error]));
    assert_eq!(errors.len(), usize::from(has_error));
    assert!(
        cat.candidates(None, TsRange::new(Some(T0 + 1000 * MIN), None), None)
            .is_empty()
    );
}

#[tokio::test]
async fn probes_read_one_block_and_never_miss() {
    let f = fixture();
    let cat = catalog(&f);
    let (a, evs) = segment(&f, "api", T0, 2_000, &[1, 2]);
    let meta = cat.publish(&a).await.unwrap();
    let ids: Vec<String> = evs
        .iter()
        .filter_map(|e| match e.fields.get("request_id") {
            Some(FieldValue::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(ids.len() > 100);
    for id in ids.iter().take(200) {
        assert!(cat.probe(&meta, &[id.as_str()]).await.unwrap(), "{id}");
    }
    let two = [ids[0].as_str(), ids[1].as_str()];
    assert!(cat.probe(&meta, &two).await.unwrap());
    assert!(cat.probe(&meta, &[]).await.unwrap());
    let misses = futures::future::join_all((0..500).map(|i| {
        let cat = cat.clone();
        let meta = meta.clone();
        async move {
            let t = format!("absent-{i}");
            cat.probe(&meta, &[t.as_str()]).await.unwrap()
        }
    }))
    .await;
    assert!(misses.iter().filter(|m| **m).count() < 25);
    let results = cat
        .probe_all(vec![meta.clone(), meta.clone()], &[ids[3].as_str()])
        .await;
    assert!(
        results
            .iter()
            .all(|(_, r)| matches!(r, Ok(Probe::RowGroups(g)) if !g.is_empty()))
    );
}

#[tokio::test]
async fn row_group_probes_name_the_row_groups_that_may_hold_the_tokens() {
    let f = fixture();
    let cat = catalog(&f);
    let evs: Vec<LogEvent> = SampleLogs::new(3, "api", T0, 100, Entropy::Realistic)
        .take(3_000)
        .collect();
    let opts = SegmentOptions {
        row_group_rows: 500,
        ..SegmentOptions::default()
    };
    let mut w = SegmentWriter::create(f.spool.path(), "api", 7, opts).unwrap();
    for (i, e) in evs.iter().enumerate() {
        w.append_event(1 + (i / 100) as u64, (i % 100) as u32, e)
            .unwrap();
    }
    let meta = cat.publish(&w.finish().unwrap()).await.unwrap();
    assert_eq!(
        meta.header.row_group_filters.as_ref().unwrap().blocks.len(),
        6
    );
    // Where each request id really is, read back row group by row group.
    let reader = cat.read_segment(&meta).await.unwrap();
    let mut holders: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for rg in 0..reader.row_groups() {
        for ev in reader.newest_first_in(TsRange::ALL, Some(&[rg]), &[]) {
            if let Some(FieldValue::Str(id)) = ev.unwrap().event.fields.get("request_id") {
                let h = holders.entry(id.clone()).or_default();
                if !h.contains(&rg) {
                    h.push(rg);
                }
            }
        }
    }
    let mut extra = 0;
    for (id, rgs) in holders.iter().take(300) {
        match cat.probe_row_groups(&meta, &[id.as_str()]).await.unwrap() {
            Probe::RowGroups(got) => {
                assert!(
                    rgs.iter().all(|g| got.contains(g)),
                    "{id}: {got:?} misses {rgs:?}"
                );
                extra += got.len() - rgs.len();
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert!(extra < 30, "{extra} false row groups over 300 ids");
    assert_eq!(
        cat.probe_row_groups(&meta, &["absent-token-77"])
            .await
            .unwrap(),
        Probe::Absent
    );
    assert_eq!(
        cat.probe_row_groups(&meta, &[]).await.unwrap(),
        Probe::AllRowGroups
    );
}

#[tokio::test]
async fn contains_seq_finds_archived_messages_only() {
    let f = fixture();
    let writer = catalog(&f);
    let (a, _) = segment(&f, "api", T0, 200, &[10, 12, 15, 40]);
    let (b, _) = segment(&f, "api", T0, 200, &[11, 13]);
    let (c, _) = segment(&f, "web", T0, 200, &[14]);
    for s in [&a, &b, &c] {
        writer.publish(s).await.unwrap();
    }
    let cat = catalog(&f);
    cat.refresh_recent().await.unwrap();
    let published = chrono::Utc::now().timestamp_millis() - 1_000;
    for (seq, want) in [
        (10, true),
        (11, true),
        (12, true),
        (13, true),
        (14, false),
        (15, true),
        (16, false),
        (40, true),
        (9, false),
        (41, false),
    ] {
        assert_eq!(
            cat.contains_seq("api", 7, seq, published).await.unwrap(),
            want,
            "seq {seq}"
        );
    }
    assert!(cat.contains_seq("web", 7, 14, published).await.unwrap());
    // Another incarnation of the stream: same numbers, other messages.
    assert!(!cat.contains_seq("api", 8, 12, published).await.unwrap());
    // Published after the segment was created (beyond the clock skew): not in it.
    let future = published + 3_600_000;
    assert!(!cat.contains_seq("api", 7, 12, future).await.unwrap());
}

#[tokio::test]
async fn delete_removes_segment_and_index_and_other_replicas_forget_it() {
    let f = fixture();
    let cat = catalog(&f);
    let (a, _) = segment(&f, "api", T0, 100, &[1]);
    let (b, _) = segment(&f, "api", T0 + MIN, 100, &[2]);
    let ma = cat.publish(&a).await.unwrap();
    cat.publish(&b).await.unwrap();
    let other = catalog(&f);
    other.refresh_all().await.unwrap();
    assert_eq!(other.len(), 2);

    cat.delete(&ma).await.unwrap();
    assert_eq!(cat.len(), 1);
    assert!(
        f.store
            .get(&ma.header.segment)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        f.store
            .get(&ma.index_path)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Deleting again is fine.
    cat.delete(&ma).await.unwrap();
    // A recent refresh adds, it does not forget; a full refresh does.
    assert_eq!(other.refresh_recent().await.unwrap().removed, 0);
    assert_eq!(other.len(), 2);
    let r = other.refresh_all().await.unwrap();
    assert_eq!((r.removed, r.segments), (1, 1));
    // Reading a deleted segment through a stale entry is a not-found error.
    assert!(other.read_segment(&ma).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn unreadable_index_objects_are_reported_and_skipped() {
    let f = fixture();
    let cat = catalog(&f);
    let (a, _) = segment(&f, "api", T0, 100, &[1]);
    let meta = cat.publish(&a).await.unwrap();
    // A truncated copy under another commit hour, and garbage under a valid name.
    let bytes = f.store.get(&meta.index_path).await.unwrap();
    let name = crate::archive::layout::parse_index_path(&meta.index_path)
        .unwrap()
        .name;
    let truncated = name.index_path("api", 1_000_000_000_000);
    f.store
        .put(&truncated, bytes.slice(..bytes.len() - 10))
        .await
        .unwrap();
    let garbage = name.index_path("api", 2_000_000_000_000);
    f.store
        .put(&garbage, Bytes::from_static(b"LJIX\x01\xff\xff\xff\x00"))
        .await
        .unwrap();
    f.store
        .put("index/README", Bytes::from_static(b"not an index"))
        .await
        .unwrap();
    let other = catalog(&f);
    let r = other.refresh_all().await.unwrap();
    assert_eq!(r.segments, 1);
    assert_eq!(r.failed.len(), 2, "{:?}", r.failed);
    assert_eq!(other.unreadable().len(), 2);
    // A corrupt segment object is an error when read, the catalog entry stays.
    f.store
        .put(&meta.header.segment, Bytes::from_static(b"PAR1garbage"))
        .await
        .unwrap();
    let e = other.read_segment(&other.segments()[0]).await.unwrap_err();
    assert!(matches!(e, ArchiveError::Corrupt { .. }), "{e}");
}

#[tokio::test]
async fn retention_and_orphans() {
    let f = fixture();
    let cat = catalog(&f);
    let (old, _) = segment(&f, "debug-api", T0, 50, &[1]);
    let (kept, _) = segment(&f, "payments", T0, 50, &[2]);
    cat.publish(&old).await.unwrap();
    cat.publish(&kept).await.unwrap();
    let rules: RetentionRules = "payments=30d,debug-*=1d,7d".parse().unwrap();
    let now = T0 + 2 * 86_400 * 1_000_000_000;
    let expired = cat.expired(&rules, now);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].service(), "debug-api");
    assert!(cat.expired(&rules, T0 + MIN).is_empty());
    // A segment uploaded without its index object is an orphan once the grace has passed.
    let (orphan, _) = segment(&f, "api", T0, 50, &[3]);
    f.store
        .put(
            &orphan.header.segment,
            Bytes::from(std::fs::read(&orphan.file).unwrap()),
        )
        .await
        .unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        cat.find_orphans(Duration::from_secs(3600), now_ms)
            .await
            .unwrap()
            .is_empty()
    );
    let found = cat
        .find_orphans(Duration::from_secs(3600), now_ms + 7_200_000)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].path, orphan.header.segment);
}

#[tokio::test]
async fn concurrent_refreshes_and_commits_agree() {
    let f = fixture();
    let cat = catalog(&f);
    let mut segs = Vec::new();
    for i in 0..12u64 {
        segs.push(segment(&f, "api", T0 + i as i64 * MIN, 20, &[100 + i]).0);
    }
    let publishing = {
        let cat = cat.clone();
        async move {
            for s in &segs {
                cat.publish(s).await.unwrap();
            }
        }
    };
    let refreshing = {
        let cat = cat.clone();
        async move {
            for _ in 0..10 {
                cat.refresh_all().await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::join!(publishing, refreshing);
    assert_eq!(cat.len(), 12);
    cat.refresh_all().await.unwrap();
    assert_eq!(cat.len(), 12);
}
