//! `POST /logs/query`: newest-first search over the recent-event chunks, and beyond them the
//! stream.
//!
//! Chunks are listed in a sorted set by their newest event and span under one second of event
//! time, so a k-way merge can emit events in exact `(ts, chunk, index)` descending order while
//! reading only as many chunks as the page needs. The cursor is that triple: the next page
//! continues strictly below it.
//!
//! `request` validates the body into an [`EventQuery`], `matcher` says what matches, `merge` is
//! the merge itself (no I/O), `redis` reads the index, the Bloom filters and the chunks; [`search`]
//! drives the merge with those reads.

mod matcher;
mod merge;
mod redis;
mod request;

use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use chrono::{DateTime, Utc};

use crate::error::QueryError;

pub use logjet_api::{QueryRequest, QueryResponse};
pub use matcher::TextMatcher;
pub use merge::Position;
pub use redis::recent_horizon_ms;
pub use request::{DEFAULT_LIMIT, EventQuery, MAX_LIMIT, MAX_REGEX_BYTES, parse_time};

/// Chunks decoded per round trip.
const LOAD_BATCH: usize = 4;

/// Limits on one query's work.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_events: u64,
    pub max_time: Duration,
}

/// Runs a query against the recent-event chunks in Redis.
pub async fn search(
    conn: &ConnectionManager,
    q: &EventQuery,
    budget: Budget,
) -> ::redis::RedisResult<QueryResponse> {
    let started = Instant::now();
    let mut conn = conn.clone();
    let mut index = redis::IndexPages::new(q);
    let mut merge = merge::Merge::new(q.limit);
    let mut truncated = false;
    while !merge.emit() {
        if merge.scanned() >= budget.max_events || started.elapsed() >= budget.max_time {
            truncated = true;
            break;
        }
        if let Some(batch) = merge.next_batch(LOAD_BATCH) {
            let blobs = redis::load_chunks(&mut conn, &batch).await?;
            for (r, blob) in batch.iter().zip(blobs) {
                // A chunk expired between the index read and now: its events are gone from Redis.
                if let Some(data) = blob {
                    let mut found = Vec::new();
                    let scanned = matcher::scan_chunk(q, r.id, &data, &mut found);
                    merge.decoded(scanned, found);
                }
            }
        } else {
            let listing = index.next(&mut conn).await?;
            let wanted = merge.listed(listing, |r| q.chunk_may_match(r));
            let kept = redis::bloom_may_contain(&mut conn, wanted, &q.index_tokens).await?;
            merge.admit(kept);
        }
    }
    let page = merge.finish(truncated);
    Ok(QueryResponse {
        events: page.events,
        next_cursor: page.next_cursor.map(|p| p.encode()),
        scanned: page.scanned,
        truncated,
        source: "redis".into(),
    })
}

/// A query over Redis and, when `since` reaches further back than Redis holds, the stream.
pub async fn search_all(
    conn: &ConnectionManager,
    history: &crate::history::History,
    q: &EventQuery,
    budget: Budget,
    now: DateTime<Utc>,
) -> Result<QueryResponse, QueryError> {
    let started = Instant::now();
    let horizon_ms = recent_horizon_ms(conn, q).await?;
    let mut resp = search(conn, q, budget).await?;
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
    if let Some(c) = q.cursor {
        end = end.min(c.ts_nanos.saturating_add(1));
    }
    let left = Budget {
        max_events: budget.max_events.saturating_sub(resp.scanned),
        max_time: budget.max_time.saturating_sub(started.elapsed()),
    };
    let page = history
        .scan(
            q,
            since,
            end,
            q.limit - resp.events.len(),
            left,
            Instant::now(),
        )
        .await
        .map_err(|e| QueryError::Unavailable(e.to_string()))?;
    resp.source = if resp.events.is_empty() {
        "stream"
    } else {
        "redis+stream"
    }
    .into();
    resp.scanned += page.scanned;
    resp.truncated = page.truncated;
    let last = page.events.last().map(|(p, _)| *p);
    resp.events.extend(page.events.into_iter().map(|(_, e)| e));
    resp.next_cursor = if page.truncated || (resp.events.len() >= q.limit && !page.exhausted) {
        // Continue below the last event returned, or, if none came from the stream, below `end`.
        Some(
            last.unwrap_or(Position {
                ts_nanos: end,
                chunk: 0,
                idx: 0,
            })
            .encode(),
        )
    } else {
        None
    };
    Ok(resp)
}
#[cfg(test)]
mod test_support {
    use chrono::{DateTime, Utc};

    pub(super) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }
}
