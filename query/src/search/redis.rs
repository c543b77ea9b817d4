//! The Redis side of a search: pages of the chunk index, Bloom filter probes and chunk reads.

use logjet_core::keys::{self, CHUNK_SPAN_MS, ChunkRef};
use logjet_core::store::RedisConn;
use logjet_core::tokens::Bloom;

use super::EventQuery;
use super::merge::Listing;

/// Chunk refs read from the index per round trip.
const INDEX_PAGE: isize = 256;

/// The index a query reads: one service's, or every service's.
fn index_key(q: &EventQuery) -> String {
    match &q.service {
        Some(s) => keys::index_service_key(s.as_str()),
        None => keys::index_all_key(),
    }
}

/// The chunk index of a query, read page by page, newest first, within the query's score bounds.
pub(super) struct IndexPages {
    key: String,
    lower: f64,
    upper: f64,
    offset: isize,
}

impl IndexPages {
    pub(super) fn new(q: &EventQuery) -> IndexPages {
        let (lower, upper) = q.score_bounds();
        IndexPages {
            key: index_key(q),
            lower,
            upper,
            offset: 0,
        }
    }

    pub(super) async fn next(&mut self, conn: &mut RedisConn) -> redis::RedisResult<Listing> {
        let page: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(&self.key)
            .arg(score_arg(self.upper))
            .arg(score_arg(self.lower))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(self.offset)
            .arg(INDEX_PAGE)
            .query_async(conn)
            .await?;
        self.offset += page.len() as isize;
        Ok(Listing {
            last_page: (page.len() as isize) < INDEX_PAGE,
            floor_ms: page.last().map(|(_, score)| *score as i64),
            chunks: page
                .iter()
                .filter_map(|(m, s)| ChunkRef::parse(m, *s))
                .collect(),
        })
    }
}

/// The chunks whose Bloom filters may hold every token (all of them when there is no token).
pub(super) async fn bloom_may_contain(
    conn: &mut RedisConn,
    chunks: Vec<ChunkRef>,
    tokens: &[String],
) -> redis::RedisResult<Vec<ChunkRef>> {
    if tokens.is_empty() || chunks.is_empty() {
        return Ok(chunks);
    }
    // Ask Redis for just the filter bits each token needs, not whole filters.
    let mut pipe = redis::pipe();
    for r in &chunks {
        let mut cmd = redis::cmd("BITFIELD_RO");
        cmd.arg(keys::bloom_key(r.id));
        if r.bloom_log2 > 0 {
            for t in tokens {
                for off in Bloom::redis_bit_offsets(r.bloom_log2, t) {
                    cmd.arg("GET").arg("u1").arg(off);
                }
            }
        } else {
            cmd.arg("GET").arg("u1").arg(0);
        }
        pipe.add_command(cmd);
    }
    let bits: Vec<Vec<u8>> = pipe.query_async(conn).await?;
    Ok(chunks
        .into_iter()
        .zip(bits)
        // No filter size known (an older chunk): it has to be read.
        .filter(|(r, b)| r.bloom_log2 == 0 || b.iter().all(|bit| *bit == 1))
        .map(|(r, _)| r)
        .collect())
}

/// The chunks' NDJSON, in order; `None` for a chunk that expired since the index was read.
pub(super) async fn load_chunks(
    conn: &mut RedisConn,
    batch: &[ChunkRef],
) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
    let chunk_keys: Vec<String> = batch.iter().map(|r| keys::chunk_key(r.id)).collect();
    redis::cmd("MGET").arg(&chunk_keys).query_async(conn).await
}

/// The oldest event time (ms) the recent-event index still covers, if it holds anything.
pub async fn recent_horizon_ms(
    conn: &RedisConn,
    q: &EventQuery,
) -> redis::RedisResult<Option<i64>> {
    let index = index_key(q);
    let mut conn = conn.clone();
    let oldest: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(0)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await?;
    Ok(oldest
        .first()
        .and_then(|(m, s)| ChunkRef::parse(m, *s))
        .map(|c| c.min_ms))
}

impl EventQuery {
    /// Index score bounds (ms, inclusive) of chunks that may hold matching events.
    pub fn score_bounds(&self) -> (f64, f64) {
        let mut upper = f64::INFINITY;
        if let Some(u) = self.until_nanos {
            upper = upper.min((u.div_euclid(1_000_000) + CHUNK_SPAN_MS) as f64);
        }
        if let Some(c) = self.recent_cursor() {
            upper = upper.min((c.ts_nanos.div_euclid(1_000_000) + CHUNK_SPAN_MS) as f64);
        }
        let lower = self
            .since_nanos
            .map_or(f64::NEG_INFINITY, |s| s.div_euclid(1_000_000) as f64);
        (lower, upper)
    }
}

fn score_arg(v: f64) -> String {
    if v == f64::INFINITY {
        "+inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{}", v as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logjet_core::keys::CHUNK_SPAN_MS;

    use crate::search::QueryRequest;
    use crate::search::test_support::now;

    #[test]
    fn score_bounds_allow_for_chunk_span() {
        let q = EventQuery::from_request(
            &QueryRequest {
                since: Some("2026-11-26T11:00:00Z".into()),
                until: Some("2026-11-26T11:30:00Z".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        let (lo, hi) = q.score_bounds();
        assert_eq!(lo, 1_795_690_800_000.0);
        assert_eq!(hi, 1_795_692_600_000.0 + CHUNK_SPAN_MS as f64);
    }
}
