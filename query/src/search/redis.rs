//! The Redis side of a search: pages of the chunk index, Bloom filter probes and chunk reads.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use logjet_core::keys::{self, CHUNK_SPAN_MS, ChunkRef};
use logjet_core::store::RedisConn;
use logjet_core::tokens::Bloom;

use super::EventQuery;
use super::merge::Listing;

/// Chunk refs read from the index per round trip.
const INDEX_PAGE: usize = 1024;

/// The index a query reads: one service's, or every service's.
fn index_key(q: &EventQuery) -> String {
    match &q.service {
        Some(s) => keys::index_service_key(s.as_str()),
        None => keys::index_all_key(),
    }
}

/// The chunk index of a query, read page by page, newest first, within the query's score bounds.
///
/// A page starts at a score, not at an offset from the top: `ZREVRANGEBYSCORE … LIMIT offset`
/// walks the skip list past `offset` members, so reading an index of N chunks by offsets cost
/// O(N²) (265 µs per page of 256 and 16 % of Redis's time in a needle search over 11,000
/// chunks). Only the members tied at the page's last score are skipped by count.
pub(super) struct IndexPages {
    key: String,
    lower: f64,
    start: PageStart,
}

/// Where the next page of the index starts: at or below `upper`, after the `ties` members read
/// already whose score is exactly `upper`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PageStart {
    upper: f64,
    ties: usize,
}

impl PageStart {
    /// The start of the page after one with these scores (newest first).
    fn after(self, scores: &[f64]) -> PageStart {
        let Some(&last) = scores.last() else {
            return self;
        };
        let at_last = scores.iter().rev().take_while(|s| **s == last).count();
        PageStart {
            upper: last,
            // A page all at the start's score skips those too.
            ties: if last == self.upper {
                self.ties + at_last
            } else {
                at_last
            },
        }
    }
}

impl IndexPages {
    pub(super) fn new(q: &EventQuery) -> IndexPages {
        let (lower, upper) = q.score_bounds();
        IndexPages {
            key: index_key(q),
            lower,
            start: PageStart { upper, ties: 0 },
        }
    }

    pub(super) async fn next(&mut self, conn: &mut RedisConn) -> redis::RedisResult<Listing> {
        let page: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(&self.key)
            .arg(score_arg(self.start.upper))
            .arg(score_arg(self.lower))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(self.start.ties)
            .arg(INDEX_PAGE)
            .query_async(conn)
            .await?;
        let scores: Vec<f64> = page.iter().map(|(_, score)| *score).collect();
        self.start = self.start.after(&scores);
        Ok(Listing {
            last_page: page.len() < INDEX_PAGE,
            floor_ms: page.last().map(|(_, score)| *score as i64),
            chunks: page
                .iter()
                .filter_map(|(m, s)| ChunkRef::parse(m, *s))
                .collect(),
        })
    }
}

/// The server-side probe ([`keys::BLOOM_PROBE_SCRIPT`]), hashed once.
static BLOOM_PROBE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(keys::BLOOM_PROBE_SCRIPT));

/// For each filter size among `chunks`, the bit offsets every token needs, as the JSON object
/// the probe script takes (`{"14":[…],"16":[…]}`). A chunk with no known filter size
/// (`bloom_log2` 0) is not listed, so the script keeps it.
fn probe_offsets(chunks: &[ChunkRef], tokens: &[String]) -> String {
    let sizes: BTreeSet<u8> = chunks
        .iter()
        .map(|r| r.bloom_log2)
        .filter(|l| *l > 0)
        .collect();
    let object: serde_json::Map<String, serde_json::Value> = sizes
        .into_iter()
        .map(|log2| {
            let offsets: Vec<u64> = tokens
                .iter()
                .flat_map(|t| Bloom::redis_bit_offsets(log2, t))
                .collect();
            (log2.to_string(), offsets.into())
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// The chunks whose Bloom filters may hold every token (all of them when there is no token),
/// probed on the server in one call.
pub(super) async fn bloom_may_contain(
    conn: &mut RedisConn,
    chunks: Vec<ChunkRef>,
    tokens: &[String],
) -> redis::RedisResult<Vec<ChunkRef>> {
    if tokens.is_empty() || chunks.is_empty() {
        return Ok(chunks);
    }
    let mut call = BLOOM_PROBE.prepare_invoke();
    call.arg(keys::bloom_key_prefix())
        .arg(probe_offsets(&chunks, tokens));
    for r in &chunks {
        call.arg(r.id).arg(r.bloom_log2);
    }
    let kept: Vec<usize> = call.invoke_async(conn).await?;
    Ok(kept
        .into_iter()
        .filter_map(|i| chunks.get(i).copied())
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
    fn pages_start_below_the_last_score_skipping_only_its_ties() {
        let top = PageStart {
            upper: f64::INFINITY,
            ties: 0,
        };
        let next = top.after(&[9.0, 8.0, 8.0]);
        assert_eq!(
            next,
            PageStart {
                upper: 8.0,
                ties: 2
            }
        );
        // A page all at the same score: its ties add to those skipped before.
        let next = next.after(&[8.0, 8.0, 8.0]);
        assert_eq!(
            next,
            PageStart {
                upper: 8.0,
                ties: 5
            }
        );
        assert_eq!(
            next.after(&[8.0, 7.0]),
            PageStart {
                upper: 7.0,
                ties: 1
            }
        );
        // An empty page (the end) leaves the start as it was.
        assert_eq!(next.after(&[]), next);
    }

    #[test]
    fn probe_offsets_list_each_known_filter_size_once() {
        let chunk = |id, bloom_log2| ChunkRef {
            id,
            min_ms: 0,
            max_ms: 0,
            count: 1,
            levels: 1,
            bloom_log2,
        };
        let tokens = vec!["abcd1234".to_string(), "req-77".to_string()];
        let json = probe_offsets(
            &[chunk(1, 12), chunk(2, 0), chunk(3, 12), chunk(4, 9)],
            &tokens,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let sizes = v.as_object().unwrap();
        assert_eq!(sizes.keys().collect::<Vec<_>>(), ["12", "9"]);
        let twelve: Vec<u64> = serde_json::from_value(v["12"].clone()).unwrap();
        let mut want = Bloom::redis_bit_offsets(12, "abcd1234");
        want.extend(Bloom::redis_bit_offsets(12, "req-77"));
        assert_eq!(twelve, want);
        assert_eq!(probe_offsets(&[chunk(2, 0)], &tokens), "{}");
    }

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
