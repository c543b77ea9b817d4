//! One page of `POST /logs/query` across the tiers: Redis (event times it still holds), then the
//! stream (older events of messages not archived yet), then the archive, with one cursor that
//! says which tier the next page continues in. Events are split between the tiers by time
//! (Redis answers from its horizon on) and by stream sequence (the stream above the archivers'
//! ack floor, the archive at or below it), so an event two tiers hold is returned once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use logjet_core::store::RedisConn;

use super::{Budget, Cursor, EventQuery, QueryResponse, recent_horizon_ms, search};
use crate::archive::{ArchiveScan, ArchiveTier, Key, retention_warning};
use crate::error::QueryError;
use crate::history::{self, History, StreamPos, StreamWindow};

/// Which tiers answered: those that gave events, or, when none did, those that were read.
pub(super) fn source(tiers: &[(&str, usize)]) -> String {
    let gave: Vec<&str> = tiers.iter().filter(|t| t.1 > 0).map(|t| t.0).collect();
    if gave.is_empty() {
        tiers.iter().map(|t| t.0).collect::<Vec<_>>().join("+")
    } else {
        gave.join("+")
    }
}

/// What a search reads beyond Redis.
#[derive(Clone)]
pub struct Tiers {
    pub history: History,
    /// `None` when `archive_url` is `off`.
    pub archive: Option<ArchiveTier>,
    /// How long the stream keeps messages (its `max_age`).
    pub stream_retention: Duration,
}

/// Where the history part of a page starts.
enum HistoryStart {
    /// Below Redis's horizon, from the top of the stream.
    Top {
        end: i64,
    },
    Stream {
        end: i64,
        pos: StreamPos,
    },
    Archive {
        end: i64,
        floor: u64,
        incarnation: u64,
        key: Key,
    },
}

/// The page being built.
struct Answer {
    resp: QueryResponse,
    tiers: Vec<(&'static str, usize)>,
}

/// Milliseconds since `t`, as `tier_ms` reports them (to the microsecond).
fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl Answer {
    fn done(mut self) -> QueryResponse {
        self.resp.source = source(&self.tiers);
        self.resp
    }
}

/// A query over Redis and, when `since` reaches further back than Redis holds, the stream and
/// the archive.
pub async fn search_all(
    conn: &RedisConn,
    t: &Tiers,
    q: &EventQuery,
    budget: Budget,
    now: DateTime<Utc>,
) -> Result<QueryResponse, QueryError> {
    let started = Instant::now();
    let since = q.since_nanos.unwrap_or(i64::MIN);
    let mut warnings = Vec::new();
    if let Some(s) = q.since_nanos {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let w = match &t.archive {
            Some(a) => {
                let keep = q
                    .service
                    .as_ref()
                    .map_or_else(|| a.rules.max(), |n| a.rules.for_service(n.as_str()));
                retention_warning(s, now_ns, keep, "the archive")
            }
            None => retention_warning(s, now_ns, t.stream_retention, "the stream (no archive)"),
        };
        warnings.extend(w);
    }
    let (resp, start, tiers) = match q.cursor {
        None | Some(Cursor::Recent(_)) => {
            let redis_started = Instant::now();
            let horizon_ms = recent_horizon_ms(conn, q).await?;
            let mut resp = search(conn, q, budget).await?;
            resp.tier_ms.insert("redis".into(), ms_since(redis_started));
            let Some(since) = q.since_nanos else {
                return Ok(resp);
            };
            let horizon_ns = horizon_ms.map_or_else(
                || now.timestamp_nanos_opt().unwrap_or(i64::MAX),
                |ms| ms.saturating_mul(1_000_000),
            );
            if resp.events.len() >= q.limit || resp.truncated || since >= horizon_ns {
                resp.warnings = warnings;
                return Ok(resp);
            }
            let mut end = horizon_ns;
            if let Some(u) = q.until_nanos {
                end = end.min(u.saturating_add(1));
            }
            if let Some(c) = q.recent_cursor() {
                end = end.min(c.ts_nanos.saturating_add(1));
            }
            let n = resp.events.len();
            (resp, HistoryStart::Top { end }, vec![("redis", n)])
        }
        Some(Cursor::Stream {
            end,
            seq,
            idx,
            slice,
        }) => (
            QueryResponse::default(),
            HistoryStart::Stream {
                end,
                pos: StreamPos { seq, idx, slice },
            },
            Vec::new(),
        ),
        Some(Cursor::Archive {
            end,
            floor,
            incarnation,
            key,
        }) => (
            QueryResponse::default(),
            HistoryStart::Archive {
                end,
                floor,
                incarnation,
                key,
            },
            Vec::new(),
        ),
    };
    let mut a = Answer { resp, tiers };
    a.resp.warnings = warnings;
    let left = Budget {
        max_events: budget.max_events.saturating_sub(a.resp.scanned),
        max_time: budget.max_time.saturating_sub(started.elapsed()),
    };
    let archive_from = match start {
        HistoryStart::Archive {
            end,
            floor,
            incarnation,
            key,
        } => (end, floor, incarnation, Some(key)),
        HistoryStart::Top { .. } | HistoryStart::Stream { .. } => {
            match stream_part(&mut a, t, q, since, start, left).await? {
                Some((end, floor, incarnation)) => (end, floor, incarnation, None),
                None => return Ok(a.done()),
            }
        }
    };
    let Some(archive) = &t.archive else {
        return Err(QueryError::invalid(
            "cursor",
            "an archive cursor, and this query reads no archive",
        ));
    };
    let (end, floor, incarnation, below) = archive_from;
    let scan = ArchiveScan {
        q: Arc::new(q.clone()),
        since,
        end,
        floor,
        incarnation,
        below,
        want: q.limit - a.resp.events.len(),
    };
    let left = Budget {
        max_events: budget.max_events.saturating_sub(a.resp.scanned),
        max_time: budget.max_time.saturating_sub(started.elapsed()),
    };
    let archive_started = Instant::now();
    let page = archive.page(scan, left, archive_started).await;
    a.resp
        .tier_ms
        .insert("archive".into(), ms_since(archive_started));
    a.tiers.push(("archive", page.events.len()));
    a.resp.scanned += page.scanned;
    a.resp.truncated = page.truncated;
    a.resp.warnings.extend(page.warnings);
    a.resp.events.extend(page.events);
    a.resp.next_cursor = page.next.map(|key| {
        Cursor::Archive {
            end,
            floor,
            incarnation,
            key,
        }
        .encode()
    });
    Ok(a.done())
}

/// The stream's part of a page. Returns where the archive continues (`end`, floor,
/// incarnation) when the stream is read to its bottom and the page has room for the archive.
async fn stream_part(
    a: &mut Answer,
    t: &Tiers,
    q: &EventQuery,
    since: i64,
    start: HistoryStart,
    left: Budget,
) -> Result<Option<(i64, u64, u64)>, QueryError> {
    let stream_started = Instant::now();
    let history = &t.history;
    let unavailable = |e: history::HistoryError| QueryError::Unavailable(e.to_string());
    let bounds = history.bounds().await.map_err(unavailable)?;
    let (end, pos) = match start {
        HistoryStart::Stream { end, pos } => (end, pos),
        HistoryStart::Top { end } | HistoryStart::Archive { end, .. } => {
            let top = history
                .seq_at(end.saturating_add(skew_ns()), &bounds)
                .await
                .map_err(unavailable)?;
            let pos = StreamPos {
                seq: top,
                idx: 0,
                slice: history::FIRST_SLICE,
            };
            (end, pos)
        }
    };
    let mut lo = bounds.first_seq.max(1);
    // The archive answers for what its consumer acknowledged, and for what the stream lost.
    let floor = match t.archive.as_ref().map(|x| x.snapshot()) {
        None => None,
        Some(None) => {
            a.resp.warnings.push(
                "the archive catalog is not loaded yet: only Redis and the stream were searched"
                    .into(),
            );
            None
        }
        Some(Some(s)) => {
            let acked = if s.incarnation == bounds.incarnation {
                s.floor
            } else {
                0
            };
            Some(acked.max(lo - 1))
        }
    };
    if let Some(f) = floor {
        lo = lo.max(f + 1);
    }
    if since > i64::MIN {
        lo = lo.max(
            history
                .seq_at(since.saturating_sub(skew_ns()), &bounds)
                .await
                .map_err(unavailable)?,
        );
    }
    let window = StreamWindow { since, end, lo };
    let want = q.limit - a.resp.events.len();
    let page = history
        .page(q, window, pos, want, left, Instant::now())
        .await
        .map_err(unavailable)?;
    a.resp
        .tier_ms
        .insert("stream".into(), ms_since(stream_started));
    a.tiers.push(("stream", page.events.len()));
    a.resp.scanned += page.scanned;
    a.resp.truncated = page.truncated;
    a.resp
        .events
        .extend(page.events.into_iter().map(|(_, _, e)| e));
    a.resp.next_cursor = page.next.map(|p| {
        Cursor::Stream {
            end,
            seq: p.seq,
            idx: p.idx,
            slice: p.slice,
        }
        .encode()
    });
    if page.next.is_some() || a.resp.events.len() >= q.limit {
        return Ok(None);
    }
    Ok(floor.map(|f| (end, f, bounds.incarnation)))
}

fn skew_ns() -> i64 {
    history::PUBLISH_SKEW.as_nanos() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_the_tiers_that_gave_events() {
        assert_eq!(source(&[("redis", 3), ("stream", 0)]), "redis");
        assert_eq!(source(&[("redis", 3), ("stream", 1)]), "redis+stream");
        assert_eq!(source(&[("redis", 0), ("stream", 0)]), "redis+stream");
        assert_eq!(source(&[("stream", 0), ("archive", 2)]), "archive");
    }
}
