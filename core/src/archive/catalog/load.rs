//! Loading index headers: full and recent refreshes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::{Catalog, SegmentMeta};
use crate::archive::ArchiveError;
use crate::archive::index::{self, HEADER_PROBE_BYTES, HeaderProbe};
use crate::archive::layout::{self, INDEX_DIR};
use crate::archive::store::ListedObject;

/// What a refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Segments newly known.
    pub added: usize,
    /// Segments forgotten (their index objects are gone).
    pub removed: usize,
    /// Segments known after the refresh.
    pub segments: usize,
    /// Index objects that could not be read, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Catalog {
    /// Lists every index object: loads the new ones, retries unreadable ones, and forgets
    /// entries whose index objects are gone (deleted by retention on another replica).
    pub async fn refresh_all(&self) -> Result<RefreshReport, ArchiveError> {
        // Entries added from now on carry the new epoch and survive this refresh's forgetting.
        let epoch = self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        let listed = self.store().list(INDEX_DIR).await?;
        let listed_paths: HashSet<&str> = listed.iter().map(|o| o.path.as_str()).collect();
        let removed = {
            let mut state = self.write();
            state.bad.clear();
            let gone: Vec<String> = state
                .index
                .iter()
                .filter(|(p, (_, e))| *e <= epoch && !listed_paths.contains(p.as_str()))
                .map(|(p, _)| p.clone())
                .collect();
            let before = state.segments.len();
            for p in gone {
                state.remove_index(&p);
            }
            before - state.segments.len()
        };
        let mut report = self.load_new(listed).await;
        report.removed = removed;
        Ok(report)
    }

    /// Lists the index objects committed in the current and the previous hour (by the wall
    /// clock) and loads the new ones: what a running replica does every `archive_refresh`.
    pub async fn refresh_recent(&self) -> Result<RefreshReport, ArchiveError> {
        self.refresh_recent_at(chrono::Utc::now().timestamp_millis())
            .await
    }

    /// [`Catalog::refresh_recent`] as of `now_ms`.
    pub async fn refresh_recent_at(&self, now_ms: i64) -> Result<RefreshReport, ArchiveError> {
        let mut listed = Vec::new();
        for ms in [now_ms - 3_600_000, now_ms] {
            listed.extend(self.store().list(&layout::index_hour_prefix(ms)).await?);
        }
        Ok(self.load_new(listed).await)
    }

    /// Loads the listed index objects not known yet (nor known to be unreadable).
    async fn load_new(&self, listed: Vec<ListedObject>) -> RefreshReport {
        let new: Vec<ListedObject> = {
            let state = self.read();
            listed
                .into_iter()
                .filter(|o| layout::parse_index_path(&o.path).is_some())
                .filter(|o| !state.index.contains_key(&o.path) && !state.bad.contains_key(&o.path))
                .collect()
        };
        let epoch = self.current_epoch();
        let mut loads = futures::stream::iter(new)
            .map(|o| async move {
                let r = self.load_header(&o).await;
                (o.path, r)
            })
            .buffer_unordered(self.inner.opts.concurrency.max(1));
        let mut report = RefreshReport::default();
        while let Some((path, result)) = loads.next().await {
            match result {
                Ok(meta) => {
                    if self.write().insert(meta, epoch) {
                        report.added += 1;
                    }
                }
                // Deleted between the listing and the read: nothing to know.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    let why = e.to_string();
                    self.write().bad.insert(path.clone(), why.clone());
                    report.failed.push((path, why));
                }
            }
        }
        report.segments = self.len();
        report
    }

    /// Reads one index object's header: the first 4 KiB, then the rest of the header if it is
    /// longer. Checks that the header agrees with the object's name.
    async fn load_header(&self, obj: &ListedObject) -> Result<SegmentMeta, ArchiveError> {
        let first = self
            .store()
            .get_range(&obj.path, 0..HEADER_PROBE_BYTES.min(obj.size))
            .await?;
        let (header, header_end) = match index::decode_header(&obj.path, &first)? {
            HeaderProbe::Complete { header, header_end } => (*header, header_end),
            HeaderProbe::NeedBytes(end) => {
                if end > obj.size {
                    return Err(ArchiveError::corrupt(
                        &obj.path,
                        "truncated inside the header",
                    ));
                }
                let all = self.store().get_range(&obj.path, 0..end).await?;
                match index::decode_header(&obj.path, &all)? {
                    HeaderProbe::Complete { header, header_end } => (*header, header_end),
                    HeaderProbe::NeedBytes(_) => {
                        return Err(ArchiveError::corrupt(&obj.path, "header keeps growing"));
                    }
                }
            }
        };
        let named = layout::parse_index_path(&obj.path)
            .ok_or_else(|| ArchiveError::corrupt(&obj.path, "not an index object name"))?;
        let expected_size = index::object_len(&header);
        if named.service != header.service
            || named.name.to_string() != segment_stem(&header.segment)
            || expected_size != Some(obj.size)
        {
            return Err(ArchiveError::corrupt(
                &obj.path,
                "header disagrees with the object's name or size",
            ));
        }
        Ok(SegmentMeta {
            header: Arc::new(header),
            index_path: obj.path.clone(),
            header_end,
        })
    }
}

/// `segments/<service>/<day>/<name>.parquet` → `<name>`
fn segment_stem(segment: &str) -> &str {
    let file = segment.rsplit('/').next().unwrap_or(segment);
    file.strip_suffix(layout::SEGMENT_SUFFIX).unwrap_or(file)
}
