//! `logjet-archiver reindex`: rebuilds the index objects (the catalog) from the segment objects
//! alone, as docs/archive.md describes. Safe to repeat: a segment that already has an index
//! object is left as it is.
//!
//! Segments whose messages overlap (only possible after a crash between a segment's upload and
//! its commit, the orphan then being listed here) are resolved in creation order: a segment all
//! of whose messages are in segments kept before it is deleted, one that only partly overlaps is
//! rewritten without the overlapping messages.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use logjet_core::archive::layout::{self, SEGMENTS_DIR};
use logjet_core::archive::{
    ArchiveError, ArchiveStore, Catalog, CatalogOptions, SegmentHeader, SegmentOptions,
    SegmentReader, SegmentWriter, TsRange,
};

/// What a reindex did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Segment objects listed.
    pub segments: usize,
    /// Segments that already had an index object.
    pub already_indexed: usize,
    /// Index objects written.
    pub committed: usize,
    /// Segments deleted because every message of theirs is in a segment kept before them.
    pub duplicates_deleted: usize,
    /// Segments rewritten without the messages an earlier segment holds.
    pub rewritten: usize,
    /// Index objects deleted because their segment object is gone.
    pub dangling_deleted: usize,
    /// Segment objects that could not be read, with the reason (left in place).
    pub unreadable: Vec<(String, String)>,
}

struct Listed {
    header: SegmentHeader,
    seqs: Vec<u64>,
}

/// Rebuilds the catalog of `store`; rewritten segments are spooled in `spool_dir`.
pub async fn reindex(store: ArchiveStore, spool_dir: &Path) -> Result<ReindexReport, ArchiveError> {
    let catalog = Catalog::new(store.clone(), CatalogOptions::default());
    catalog.refresh_all().await?;
    let mut report = ReindexReport::default();
    let listed = store.list(SEGMENTS_DIR).await?;
    let paths: HashSet<String> = listed
        .iter()
        .filter(|o| layout::parse_segment_path(&o.path).is_some())
        .map(|o| o.path.clone())
        .collect();
    for meta in catalog.segments() {
        if !paths.contains(meta.segment()) {
            catalog.delete(&meta).await?;
            report.dangling_deleted += 1;
        }
    }
    let indexed: HashSet<String> = catalog
        .segments()
        .iter()
        .map(|m| m.segment().to_string())
        .collect();
    let mut segments = Vec::new();
    for path in &paths {
        report.segments += 1;
        let opened = match store.get(path).await {
            Ok(bytes) => SegmentReader::open(path, bytes, None).and_then(|r| {
                Ok(Listed {
                    header: r.index_header()?,
                    seqs: r.stream_seqs()?,
                })
            }),
            Err(e) => Err(e),
        };
        match opened {
            Ok(l) => segments.push(l),
            Err(e) if e.is_not_found() => report.segments -= 1,
            Err(e) => report.unreadable.push((path.clone(), e.to_string())),
        }
    }
    // Creation order; the name breaks ties, so every run decides the same way.
    segments.sort_by(|a, b| {
        (a.header.created, &a.header.segment).cmp(&(b.header.created, &b.header.segment))
    });
    let mut kept: HashMap<(String, u64), HashSet<u64>> = HashMap::new();
    for seg in segments {
        let key = (seg.header.service.clone(), seg.header.incarnation);
        let seen = kept.entry(key).or_default();
        let overlap: HashSet<u64> = seg
            .seqs
            .iter()
            .copied()
            .filter(|s| seen.contains(s))
            .collect();
        let path = seg.header.segment.clone();
        if overlap.is_empty() {
            seen.extend(seg.seqs.iter().copied());
            if indexed.contains(&path) {
                report.already_indexed += 1;
                continue;
            }
            let bytes = store.get(&path).await?;
            let reader = SegmentReader::open(&path, bytes, None)?;
            let (filter, row_group_filters) = reader.token_filters()?;
            catalog
                .commit(&seg.header, &seg.seqs, &filter, &row_group_filters)
                .await?;
            report.committed += 1;
        } else if overlap.len() == seg.seqs.len() {
            delete_segment(&catalog, &store, &path).await?;
            report.duplicates_deleted += 1;
        } else {
            let bytes = store.get(&path).await?;
            let reader = SegmentReader::open(&path, bytes, None)?;
            let mut writer = SegmentWriter::create(
                spool_dir,
                &seg.header.service,
                seg.header.incarnation,
                SegmentOptions::default(),
            )?;
            // Oldest first, as the writer prefers.
            let mut events = Vec::new();
            for ev in reader.newest_first(TsRange::ALL) {
                let ev = ev?;
                if !overlap.contains(&ev.stream_seq) {
                    events.push(ev);
                }
            }
            for ev in events.iter().rev() {
                writer.append_event(ev.stream_seq, ev.event_idx, &ev.event)?;
            }
            let finished = tokio::task::block_in_place(|| writer.finish())?;
            seen.extend(finished.seqs.iter().copied());
            catalog.publish(&finished).await?;
            delete_segment(&catalog, &store, &path).await?;
            report.rewritten += 1;
        }
    }
    Ok(report)
}

/// Deletes a segment and whatever index objects the catalog knows for it.
async fn delete_segment(
    catalog: &Catalog,
    store: &ArchiveStore,
    path: &str,
) -> Result<(), ArchiveError> {
    if let Some(meta) = catalog.segments().into_iter().find(|m| m.segment() == path) {
        catalog.delete(&meta).await
    } else {
        store.delete(path).await.map(|_| ())
    }
}
