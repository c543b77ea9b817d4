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

mod cursor;
mod matcher;
mod merge;
mod redis;
mod request;
mod tiers;

use std::time::{Duration, Instant};

use logjet_core::store::RedisConn;

pub use cursor::Cursor;
pub use logjet_api::{QueryRequest, QueryResponse};
pub use matcher::TextMatcher;
pub use merge::Position;
pub use redis::recent_horizon_ms;
pub use request::{DEFAULT_LIMIT, EventQuery, MAX_LIMIT, MAX_REGEX_BYTES, parse_time};
pub use tiers::{Tiers, search_all};

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
    conn: &RedisConn,
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
        ..QueryResponse::default()
    })
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
