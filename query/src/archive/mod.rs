//! The archive tier of a search: the catalog of committed segments (loaded at start, refreshed
//! in the background) and one page read from the segments that may match.
//!
//! Which events are the archive's: those of messages at or below the archivers' ack floor (the
//! stream answers for the ones above it, so an event held by both is read once), and every event
//! of an older stream incarnation. The floor is read *before* each catalog refresh, so every
//! message below it was committed before the listing and its segment is known.

pub mod counts;
mod merge;
mod page;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use logjet_core::archive::{ArchiveStore, Catalog, CatalogOptions, RetentionRules};
use logjet_core::config::ArchiveReadSettings;
use prometheus::{IntCounterVec, Registry};
use tokio_util::sync::CancellationToken;

use crate::history::History;

pub use merge::{ArchiveMerge, Key, next_group};
pub use page::{ArchivePage, ArchiveScan};

/// The archivers' progress as of the catalog's last refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Messages at or below this sequence are archived (0: none known).
    pub floor: u64,
    /// The stream incarnation the floor is of (its creation time, ms).
    pub incarnation: u64,
}

#[derive(Clone)]
pub struct ArchiveTier {
    pub catalog: Catalog,
    pub rules: RetentionRules,
    pub settings: ArchiveReadSettings,
    pub metrics: ArchiveReadMetrics,
    snapshot: Arc<RwLock<Option<Snapshot>>>,
}

/// What searches read of the archive (docs/metrics.md): how well the catalog and the token
/// filters prune, in segments and row groups.
#[derive(Clone)]
pub struct ArchiveReadMetrics {
    /// `outcome`: `pruned` (by time, service or level), `filtered` (by token filters), `read`.
    pub segments: IntCounterVec,
    /// Row groups of the segments read: `outcome` `skipped` (their token filter) or `read`.
    pub row_groups: IntCounterVec,
}

impl ArchiveReadMetrics {
    /// Registers them, every outcome's series at 0 (so they exist before the first search,
    /// and whether or not this query reads an archive).
    pub fn new(registry: &Registry) -> ArchiveReadMetrics {
        use logjet_core::metrics::counter_vec;
        let m = ArchiveReadMetrics {
            segments: counter_vec(
                registry,
                "logjet_query_archive_segments_total",
                "Archive segments a search considered, by outcome: pruned by the catalog, filtered out by token filters, or read.",
                &["outcome"],
            ),
            row_groups: counter_vec(
                registry,
                "logjet_query_archive_row_groups_total",
                "Row groups of the archive segments read, by outcome: skipped by their token filter, or read.",
                &["outcome"],
            ),
        };
        for outcome in ["pruned", "filtered", "read"] {
            m.segments.with_label_values(&[outcome]);
        }
        for outcome in ["skipped", "read"] {
            m.row_groups.with_label_values(&[outcome]);
        }
        m
    }
}

impl ArchiveTier {
    pub fn new(
        store: ArchiveStore,
        rules: RetentionRules,
        settings: ArchiveReadSettings,
        metrics: ArchiveReadMetrics,
    ) -> Self {
        ArchiveTier {
            catalog: Catalog::new(store, CatalogOptions::default()),
            rules,
            settings,
            metrics,
            snapshot: Arc::new(RwLock::new(None)),
        }
    }

    /// The floor and incarnation of the last refresh; `None` until the catalog is loaded.
    pub fn snapshot(&self) -> Option<Snapshot> {
        *self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The catalog, once it is loaded (counts read before that would miss segments).
    pub fn loaded_catalog(&self) -> Option<&Catalog> {
        self.snapshot().map(|_| &self.catalog)
    }

    /// How far back the archive keeps events of `service` (of any service when `None`).
    pub fn keeps(&self, service: Option<&str>) -> Duration {
        service.map_or_else(|| self.rules.max(), |s| self.rules.for_service(s))
    }

    /// Reads the archivers' ack floor, then refreshes the catalog (a full listing when `full`).
    pub async fn refresh(&self, history: &History, full: bool) -> Result<Snapshot, String> {
        let snap = read_floor(history, &self.settings.archive_consumer).await?;
        let report = if full {
            self.catalog.refresh_all().await
        } else {
            self.catalog.refresh_recent().await
        }
        .map_err(|e| format!("archive catalog: {e}"))?;
        for (path, why) in &report.failed {
            tracing::warn!(index = %path, problem = %why, "archive index object unreadable, skipped");
        }
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(snap);
        Ok(snap)
    }

    /// Loads the catalog, then keeps it fresh until `shutdown`.
    pub async fn refresh_loop(self, history: History, shutdown: CancellationToken) {
        let mut last_full: Option<Instant> = None;
        let mut failing = false;
        loop {
            let full = last_full.is_none_or(|t| t.elapsed() >= self.settings.archive_full_refresh);
            match self.refresh(&history, full).await {
                Ok(s) => {
                    if full {
                        last_full = Some(Instant::now());
                    }
                    if failing || full {
                        tracing::info!(
                            segments = self.catalog.len(),
                            floor = s.floor,
                            "archive catalog loaded"
                        );
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "archive catalog refresh failed; retrying");
                    }
                    failing = true;
                }
            }
            let wait = if failing {
                self.settings.archive_refresh.min(Duration::from_secs(2))
            } else {
                self.settings.archive_refresh
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The archive consumer's ack floor (0 when there is no such consumer: nothing is known to be
/// archived) and the stream's incarnation.
async fn read_floor(history: &History, consumer: &str) -> Result<Snapshot, String> {
    let bounds = history.bounds().await.map_err(|e| e.to_string())?;
    let js = jetstream::new(history.client.clone());
    let stream = js
        .get_stream(&history.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", history.stream))?;
    let floor = match stream.consumer_info(consumer).await {
        Ok(info) => info.ack_floor.stream_sequence,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => 0,
        Err(e) => return Err(format!("consumer {consumer}: {e}")),
    };
    Ok(Snapshot {
        floor,
        incarnation: bounds.incarnation,
    })
}

/// The warning for a search whose `since` reaches further back than anything is kept.
pub fn retention_warning(since_ns: i64, now_ns: i64, keep: Duration, what: &str) -> Option<String> {
    let keep_ns = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
    (since_ns < now_ns.saturating_sub(keep_ns)).then(|| {
        format!(
            "`since` is before retention: {what} keeps events for {}; older ones are deleted",
            humantime::format_duration(keep)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_before_retention_says_so() {
        let day = Duration::from_secs(86_400);
        let now = 100 * 86_400 * 1_000_000_000i64;
        assert_eq!(retention_warning(now - 1, now, day, "the archive"), None);
        let w =
            retention_warning(now - 2 * 86_400 * 1_000_000_000, now, day, "the archive").unwrap();
        assert!(w.contains("before retention") && w.contains("1day"), "{w}");
    }
}
