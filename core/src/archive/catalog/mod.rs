//! [`Catalog`]: every committed segment's header, in memory.
//!
//! A segment is part of the archive exactly when its index object exists. The catalog lists
//! `index/`, reads each index object's header with a ranged GET, and answers which segments a
//! search must read ([`Catalog::candidates`], [`Catalog::probe`]), whether a redelivered
//! message is already archived ([`Catalog::contains_seq`]), and which segments retention
//! removes ([`Catalog::expired`]). It also writes: [`Catalog::publish`] uploads a finished
//! segment and commits it, [`Catalog::delete`] removes one.
//!
//! Cheap to clone (an `Arc` inside) and safe to share: refreshes, commits and reads may run
//! concurrently. Entries are keyed by segment path; two index objects naming the same segment
//! (a commit repeated after a crash) are one entry, and deleting it deletes both.

mod load;
mod probe;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;

use super::ArchiveError;
use super::bloom::TokenFilter;
use super::header::SegmentHeader;
use super::index::{self, HeaderProbe};
use super::layout::SegmentName;
use super::retention::RetentionRules;
use super::segment::{FinishedSegment, SegmentReader, TsRange};
use super::store::{ArchiveStore, ListedObject};
use crate::Level;

pub use load::RefreshReport;
pub use probe::Probe;

/// A committed segment as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The complete header (with `bytes`, `checksum` and `filter`).
    pub header: Arc<SegmentHeader>,
    /// The index object the header was read from.
    pub index_path: String,
    /// Where the seq list starts in that index object.
    pub header_end: u64,
}

impl SegmentMeta {
    pub fn segment(&self) -> &str {
        &self.header.segment
    }

    pub fn service(&self) -> &str {
        &self.header.service
    }
}

/// Tuning of a catalog.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// Index objects loaded, and segments probed, at once.
    pub concurrency: usize,
    /// How much earlier than a message's publish time its segment may say it was created
    /// (clocks of different machines): [`Catalog::contains_seq`] looks no further back.
    pub clock_skew: Duration,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            concurrency: 32,
            clock_skew: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    store: ArchiveStore,
    opts: CatalogOptions,
    state: RwLock<State>,
    /// Bumped by every full refresh; entries remember the epoch they were added in, so a full
    /// refresh forgets only entries that existed before its listing began.
    epoch: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Segment path → entry.
    segments: HashMap<String, SegmentMeta>,
    /// Every known index object → (segment path, epoch it was added in).
    index: HashMap<String, (String, u64)>,
    /// Index objects that could not be read → why (skipped until the next full refresh).
    bad: HashMap<String, String>,
}

impl State {
    fn insert(&mut self, meta: SegmentMeta, epoch: u64) -> bool {
        self.bad.remove(&meta.index_path);
        self.index.insert(
            meta.index_path.clone(),
            (meta.header.segment.clone(), epoch),
        );
        let key = meta.header.segment.clone();
        if self.segments.contains_key(&key) {
            return false;
        }
        self.segments.insert(key, meta);
        true
    }

    /// Forgets one index object, and its segment's entry when that entry was read from it.
    /// Other index objects of the same segment are then forgotten too, so the next refresh
    /// reads the segment again from one of them.
    fn remove_index(&mut self, index_path: &str) {
        let Some((segment, _)) = self.index.remove(index_path) else {
            return;
        };
        if self
            .segments
            .get(&segment)
            .is_some_and(|m| m.index_path == index_path)
        {
            self.segments.remove(&segment);
            self.index.retain(|_, (s, _)| *s != segment);
        }
    }
}

impl Catalog {
    /// An empty catalog over `store`; call [`Catalog::refresh_all`] to load it.
    pub fn new(store: ArchiveStore, opts: CatalogOptions) -> Catalog {
        Catalog {
            inner: Arc::new(Inner {
                store,
                opts,
                state: RwLock::new(State::default()),
                epoch: AtomicU64::new(0),
            }),
        }
    }

    pub fn store(&self) -> &ArchiveStore {
        &self.inner.store
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave the maps half-updated in a way
        // that matters here (each update is one insert or remove), so poisoning is ignored.
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Committed segments known.
    pub fn len(&self) -> usize {
        self.read().segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every known segment, newest `max_ts` first.
    pub fn segments(&self) -> Vec<SegmentMeta> {
        self.candidates(None, TsRange::ALL, None)
    }

    /// Index objects the last refreshes could not read, with the reason.
    pub fn unreadable(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .read()
            .bad
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Segments that may hold events of `service` (any when `None`) in `range` at one of
    /// `levels` (any when `None`), pruned by the exact per-minute counts of their headers;
    /// newest `max_ts` first.
    pub fn candidates(
        &self,
        service: Option<&str>,
        range: TsRange,
        levels: Option<&[Level]>,
    ) -> Vec<SegmentMeta> {
        let mut out: Vec<SegmentMeta> = self
            .read()
            .segments
            .values()
            .filter(|m| service.is_none_or(|s| m.header.service == s))
            .filter(|m| m.header.count_in(range.since, range.until, levels) > 0)
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (b.header.max_ts, &b.header.segment).cmp(&(a.header.max_ts, &a.header.segment))
        });
        out
    }

    /// Segments whose newest event is older than their service's retention at `now_nanos`.
    pub fn expired(&self, rules: &RetentionRules, now_nanos: i64) -> Vec<SegmentMeta> {
        let mut out: Vec<SegmentMeta> = self
            .read()
            .segments
            .values()
            .filter(|m| {
                let keep = rules.for_service(&m.header.service).as_nanos();
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                m.header.max_ts < now_nanos.saturating_sub(keep)
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.header.segment.cmp(&b.header.segment));
        out
    }

    /// Uploads a finished segment, then commits it (writes its index object). Either step may
    /// fail; retrying the whole call is safe (both objects are overwritten with the same name).
    pub async fn publish(&self, seg: &FinishedSegment) -> Result<SegmentMeta, ArchiveError> {
        let bytes = Bytes::from(tokio::fs::read(&seg.file).await?);
        if bytes.len() as u64 != seg.header.bytes {
            return Err(ArchiveError::corrupt(
                seg.file.display().to_string(),
                "the spool file changed since it was finished",
            ));
        }
        self.store().put(&seg.header.segment, bytes).await?;
        self.commit(&seg.header, &seg.seqs, &seg.filter, &seg.row_group_filters)
            .await
    }

    /// Writes a segment's index object (the commit point), under the current hour, and adds it
    /// to the catalog. The segment object must already be written.
    pub async fn commit(
        &self,
        header: &SegmentHeader,
        seqs: &[u64],
        filter: &TokenFilter,
        row_group_filters: &[TokenFilter],
    ) -> Result<SegmentMeta, ArchiveError> {
        let name = SegmentName::for_seqs(header.incarnation, seqs)
            .ok_or_else(|| ArchiveError::corrupt(&header.segment, "no sequences"))?;
        let encoded = index::encode(header, seqs, filter, row_group_filters)?;
        let index_path = name.index_path(&header.service, chrono::Utc::now().timestamp_millis());
        let HeaderProbe::Complete {
            header: written,
            header_end,
        } = index::decode_header(&index_path, &encoded)?
        else {
            return Err(ArchiveError::corrupt(
                &index_path,
                "encoded header incomplete",
            ));
        };
        self.store().put(&index_path, Bytes::from(encoded)).await?;
        let meta = SegmentMeta {
            header: Arc::from(written),
            index_path,
            header_end,
        };
        let epoch = self.current_epoch();
        self.write().insert(meta.clone(), epoch);
        Ok(meta)
    }

    /// Deletes a segment: the segment object first, then every index object naming it (so a
    /// crash in between leaves an index object whose segment is gone, which readers report and
    /// the next delete finishes, never an orphan nobody knows of). Idempotent.
    pub async fn delete(&self, meta: &SegmentMeta) -> Result<(), ArchiveError> {
        self.store().delete(&meta.header.segment).await?;
        let mut index_paths: Vec<String> = self
            .read()
            .index
            .iter()
            .filter(|(_, (s, _))| *s == meta.header.segment)
            .map(|(p, _)| p.clone())
            .collect();
        if !index_paths.contains(&meta.index_path) {
            index_paths.push(meta.index_path.clone());
        }
        for p in index_paths {
            self.store().delete(&p).await?;
            self.write().remove_index(&p);
        }
        Ok(())
    }

    /// Reads a whole segment and verifies it against its header.
    pub async fn read_segment(&self, meta: &SegmentMeta) -> Result<SegmentReader, ArchiveError> {
        let bytes = self.store().get(&meta.header.segment).await?;
        SegmentReader::open(&meta.header.segment, bytes, Some(&meta.header))
    }

    /// Segment objects without an index object (uploads whose commit never happened) last
    /// modified more than `grace` before `now_ms`. Lists `segments/` first and `index/` after
    /// (a full refresh), so a segment committed in between is never taken for an orphan.
    pub async fn find_orphans(
        &self,
        grace: Duration,
        now_ms: i64,
    ) -> Result<Vec<ListedObject>, ArchiveError> {
        let listed = self.store().list(super::layout::SEGMENTS_DIR).await?;
        self.refresh_all().await?;
        let cutoff = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        let state = self.read();
        Ok(listed
            .into_iter()
            .filter(|o| o.last_modified_ms < cutoff && !state.segments.contains_key(&o.path))
            .collect())
    }

    fn current_epoch(&self) -> u64 {
        self.inner.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;
