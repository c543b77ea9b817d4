//! One page of `POST /logs/query` across the tiers: Redis (event times it still holds), then the
//! stream (older events), with one cursor that says which tier the next page continues in.

use std::time::Instant;

use ::redis::aio::ConnectionManager;
use chrono::{DateTime, Utc};

use super::{Budget, Cursor, EventQuery, QueryResponse, recent_horizon_ms, search};
use crate::error::QueryError;
use crate::history::{self, History, StreamPos, StreamWindow};

/// Which tiers answered: those that gave events, or, when none did, those that were read.
pub fn source(tiers: &[(&str, usize)]) -> String {
    let gave: Vec<&str> = tiers.iter().filter(|t| t.1 > 0).map(|t| t.0).collect();
    if gave.is_empty() {
        tiers.iter().map(|t| t.0).collect::<Vec<_>>().join("+")
    } else {
        gave.join("+")
    }
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
}

/// A query over Redis and, when `since` reaches further back than Redis holds, the stream.
pub async fn search_all(
    conn: &ConnectionManager,
    history: &History,
    q: &EventQuery,
    budget: Budget,
    now: DateTime<Utc>,
) -> Result<QueryResponse, QueryError> {
    let started = Instant::now();
    let since = q.since_nanos.unwrap_or(i64::MIN);
    let (mut resp, start, mut tiers) = match q.cursor {
        None | Some(Cursor::Recent(_)) => {
            let horizon_ms = recent_horizon_ms(conn, q).await?;
            let resp = search(conn, q, budget).await?;
            let Some(since) = q.since_nanos else {
                return Ok(resp);
            };
            let horizon_ns = horizon_ms.map_or_else(
                || now.timestamp_nanos_opt().unwrap_or(i64::MAX),
                |ms| ms.saturating_mul(1_000_000),
            );
            if resp.events.len() >= q.limit || resp.truncated || since >= horizon_ns {
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
        Some(Cursor::Archive { .. }) => {
            return Err(QueryError::invalid(
                "cursor",
                "an archive cursor, and this query reads no archive",
            ));
        }
    };
    let left = Budget {
        max_events: budget.max_events.saturating_sub(resp.scanned),
        max_time: budget.max_time.saturating_sub(started.elapsed()),
    };
    let unavailable = |e: history::HistoryError| QueryError::Unavailable(e.to_string());
    let bounds = history.bounds().await.map_err(unavailable)?;
    let (end, pos) = match start {
        HistoryStart::Stream { end, pos } => (end, pos),
        HistoryStart::Top { end } => {
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
    if since > i64::MIN {
        lo = lo.max(
            history
                .seq_at(since.saturating_sub(skew_ns()), &bounds)
                .await
                .map_err(unavailable)?,
        );
    }
    let window = StreamWindow { since, end, lo };
    let want = q.limit - resp.events.len();
    let page = history
        .page(q, window, pos, want, left, Instant::now())
        .await
        .map_err(unavailable)?;
    tiers.push(("stream", page.events.len()));
    resp.scanned += page.scanned;
    resp.truncated = page.truncated;
    resp.events
        .extend(page.events.into_iter().map(|(_, _, e)| e));
    resp.next_cursor = page.next.map(|p| {
        Cursor::Stream {
            end,
            seq: p.seq,
            idx: p.idx,
            slice: p.slice,
        }
        .encode()
    });
    resp.source = source(&tiers);
    Ok(resp)
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
