//! One page from the archive: the segments that may match, pruned by the catalog (time,
//! service, level counts) and their token filters, read a few at a time in parallel under a
//! memory budget, merged newest first.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use logjet_core::archive::{
    ArchiveError, ArchivedEvent, Probe, SegmentMeta, SegmentReader, TsRange,
};
use logjet_core::{Level, LogEvent};

use super::{ArchiveMerge, ArchiveTier, Key, next_group};
use crate::search::{Budget, EventQuery};

/// What one archive page reads.
#[derive(Debug, Clone)]
pub struct ArchiveScan {
    pub q: Arc<EventQuery>,
    /// Oldest event time (ns, inclusive).
    pub since: i64,
    /// Events from here on (ns) are Redis's.
    pub end: i64,
    /// Of stream incarnation `incarnation`, only messages at or below `floor` are the archive's.
    pub floor: u64,
    pub incarnation: u64,
    /// Continue strictly below this.
    pub below: Option<Key>,
    pub want: usize,
}

impl ArchiveScan {
    /// Whether an event of message `seq` of `incarnation` is the archive's to answer.
    pub fn owns(&self, incarnation: u64, seq: u64) -> bool {
        incarnation != self.incarnation || seq <= self.floor
    }

    fn range(&self) -> TsRange {
        let mut until = self.end.saturating_sub(1);
        if let Some(u) = self.q.until_nanos {
            until = until.min(u);
        }
        if let Some(b) = self.below {
            until = until.min(b.0);
        }
        TsRange {
            since: self.since,
            until,
        }
    }

    /// A segment's matching events below the cursor, newest first, at most `want`; and the
    /// events decoded. Reads only the row groups `only` when given (what the row groups'
    /// token filters left).
    pub fn scan(
        &self,
        reader: &SegmentReader,
        incarnation: u64,
        only: Option<&[usize]>,
    ) -> Result<(Vec<(Key, LogEvent)>, u64), ArchiveError> {
        let mut found = Vec::new();
        let mut scanned = 0;
        for item in reader.newest_first_in(self.range(), only, &self.q.index_tokens) {
            let ArchivedEvent {
                ts_nanos,
                stream_seq,
                event_idx,
                event,
            } = item?;
            scanned += 1;
            let key = (ts_nanos, stream_seq, event_idx);
            if self.below.is_some_and(|b| key >= b) || !self.owns(incarnation, stream_seq) {
                continue;
            }
            if self.q.matches(&event) {
                found.push((key, event));
                if found.len() >= self.want {
                    break;
                }
            }
        }
        Ok((found, scanned))
    }

    fn levels(&self) -> Option<Vec<Level>> {
        if let Some(l) = self.q.level {
            return Some(vec![l]);
        }
        self.q
            .min_level
            .map(|min| Level::ALL.iter().copied().filter(|l| *l >= min).collect())
    }
}

/// What one archive page found.
#[derive(Debug, Default)]
pub struct ArchivePage {
    pub events: Vec<LogEvent>,
    pub scanned: u64,
    /// Continue strictly below this; `None` once nothing is left.
    pub next: Option<Key>,
    pub truncated: bool,
    /// Segments (or index objects) that could not be read, named, and skipped.
    pub warnings: Vec<String>,
}

impl ArchiveTier {
    /// The segments of the archive that may hold events of `s`, newest `max_ts` first.
    pub fn candidates(&self, s: &ArchiveScan) -> Vec<SegmentMeta> {
        let levels = s.levels();
        self.catalog
            .candidates(
                s.q.service.as_ref().map(|n| n.as_str()),
                s.range(),
                levels.as_deref(),
            )
            .into_iter()
            .filter(|m| s.owns(m.header.incarnation, m.header.first_seq))
            .collect()
    }

    pub async fn page(&self, s: ArchiveScan, budget: Budget, started: Instant) -> ArchivePage {
        let mut page = ArchivePage::default();
        for (path, why) in self.catalog.unreadable() {
            page.warnings
                .push(format!("archive index object {path} skipped: {why}"));
        }
        if s.range().since > s.range().until || s.want == 0 {
            return page;
        }
        let todo = self.candidates(&s);
        let pruned = self.catalog.len().saturating_sub(todo.len());
        self.metrics
            .segments
            .with_label_values(&["pruned"])
            .inc_by(pruned as u64);
        let mut at = 0;
        let tokens: Vec<&str> = s.q.index_tokens.iter().map(String::as_str).collect();
        let mut merge = ArchiveMerge::new(s.want);
        let mut truncated = false;
        loop {
            let frontier = todo.get(at).map(|m| m.header.max_ts);
            if merge.emit(frontier) || frontier.is_none() {
                break;
            }
            // The first group is read whatever the budget: every page advances.
            if at > 0 && (page.scanned >= budget.max_events || started.elapsed() >= budget.max_time)
            {
                truncated = true;
                break;
            }
            let sizes: Vec<u64> = todo[at..].iter().map(|m| m.header.bytes).collect();
            let n = next_group(
                &sizes,
                self.settings.archive_read_concurrency,
                self.settings.archive_read_budget_bytes,
            );
            let group = todo[at..at + n].to_vec();
            at += n;
            for (meta, result) in self.read_group(group, &tokens, &s).await {
                match result {
                    Ok((found, scanned)) => {
                        page.scanned += scanned;
                        merge.add(found);
                    }
                    Err(e) => page
                        .warnings
                        .push(format!("archive segment {} skipped: {e}", meta.segment())),
                }
            }
        }
        let frontier = todo.get(at).map(|m| m.header.max_ts);
        page.truncated = truncated;
        let (events, next) = merge.finish(frontier, truncated);
        page.events = events;
        page.next = next;
        page
    }

    /// Probes a group's token filters, then reads and scans the segments that may match, in
    /// parallel (decoding on the blocking pool).
    async fn read_group(
        &self,
        group: Vec<SegmentMeta>,
        tokens: &[&str],
        s: &ArchiveScan,
    ) -> Vec<(SegmentMeta, Result<(Vec<(Key, LogEvent)>, u64), String>)> {
        let n_probed = group.len();
        let probed = self.catalog.probe_all(group, tokens).await;
        let count = |c: &prometheus::IntCounterVec, outcome: &str, n: usize| {
            c.with_label_values(&[outcome]).inc_by(n as u64);
        };
        let reads: Vec<(SegmentMeta, Option<Vec<usize>>)> = probed
            .into_iter()
            .filter_map(|(meta, probe)| match probe {
                Ok(Probe::Absent) => None,
                Ok(Probe::RowGroups(only)) if only.is_empty() => None,
                Ok(Probe::RowGroups(only)) => Some((meta, Some(only))),
                // A filter that cannot be read does not rule the segment out: its read decides.
                Ok(Probe::AllRowGroups) | Err(_) => Some((meta, None)),
            })
            .collect();
        count(&self.metrics.segments, "read", reads.len());
        count(&self.metrics.segments, "filtered", n_probed - reads.len());
        for (meta, only) in &reads {
            let groups = meta
                .header
                .row_group_filters
                .as_ref()
                .map_or(0, |r| r.blocks.len());
            if let Some(only) = only {
                count(&self.metrics.row_groups, "read", only.len());
                count(
                    &self.metrics.row_groups,
                    "skipped",
                    groups.saturating_sub(only.len()),
                );
            }
        }
        futures::stream::iter(reads)
            .map(|(meta, only)| async move {
                let r = self.read_one(&meta, s, only).await;
                (meta, r)
            })
            .buffer_unordered(self.settings.archive_read_concurrency.max(1))
            .collect()
            .await
    }

    async fn read_one(
        &self,
        meta: &SegmentMeta,
        s: &ArchiveScan,
        only: Option<Vec<usize>>,
    ) -> Result<(Vec<(Key, LogEvent)>, u64), String> {
        let reader = self
            .catalog
            .read_segment(meta)
            .await
            .map_err(|e| e.to_string())?;
        let s = s.clone();
        let incarnation = meta.header.incarnation;
        tokio::task::spawn_blocking(move || s.scan(&reader, incarnation, only.as_deref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Cursor, QueryRequest};

    fn scan(req: QueryRequest, below: Option<Key>) -> ArchiveScan {
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mut q = EventQuery::from_request(&req, now).unwrap();
        q.cursor = below.map(|key| Cursor::Archive {
            end: 0,
            floor: 0,
            incarnation: 0,
            key,
        });
        ArchiveScan {
            q: Arc::new(q),
            since: 100,
            end: 1_000,
            floor: 50,
            incarnation: 7,
            below,
            want: 10,
        }
    }

    #[test]
    fn the_archive_owns_what_is_acknowledged_and_older_incarnations() {
        let s = scan(QueryRequest::default(), None);
        assert!(s.owns(7, 50));
        assert!(!s.owns(7, 51), "above the floor: the stream's");
        assert!(s.owns(6, 51), "an older incarnation: the archive's alone");
    }

    #[test]
    fn the_range_ends_below_end_until_and_the_cursor() {
        assert_eq!(
            scan(QueryRequest::default(), None).range(),
            TsRange {
                since: 100,
                until: 999
            }
        );
        assert_eq!(
            scan(QueryRequest::default(), Some((500, 3, 1)))
                .range()
                .until,
            500
        );
    }

    #[test]
    fn levels_from_level_or_min_level() {
        let s = scan(
            QueryRequest {
                min_level: Some("error".into()),
                ..Default::default()
            },
            None,
        );
        assert_eq!(s.levels(), Some(vec![Level::Error, Level::Fatal]));
        assert_eq!(scan(QueryRequest::default(), None).levels(), None);
    }
}
