//! `POST /logs/query`: newest-first search over the recent-event chunks.
//!
//! Chunks are listed in a sorted set by their newest event and span under one second of event
//! time, so a k-way merge can emit events in exact `(ts, chunk, index)` descending order while
//! reading only as many chunks as the page needs. The cursor is that triple: the next page
//! continues strictly below it.

use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use logjet_core::keys::{self, CHUNK_SPAN_MS, ChunkRef};
use logjet_core::parse::parse_timestamp_str;
use logjet_core::tokens::{self, Bloom};
use logjet_core::{Level, LogEvent, ServiceName};
use redis::aio::ConnectionManager;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::QueryError;
use crate::filter::{self, Clause, Filter, Literal, Op, Target};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Chunk refs read from the index per round trip.
const INDEX_PAGE: isize = 256;
/// Chunks decoded per round trip.
const LOAD_BATCH: usize = 4;

/// The request body of `POST /logs/query`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// Only this service.
    pub service: Option<String>,
    /// Only this level.
    pub level: Option<String>,
    /// This level and above (`warn` → warn, error, fatal).
    pub min_level: Option<String>,
    /// Oldest event time: RFC 3339, epoch, or a duration ago (`15m`, `2h`).
    pub since: Option<String>,
    /// Newest event time, same forms as `since`.
    pub until: Option<String>,
    /// Case-insensitive text to find in the message or a field value. A single identifier (a
    /// digit, 4 to 128 of `[A-Za-z0-9_.:-]`, e.g. a request id or an IP) matches whole tokens and
    /// is answered from the token index.
    pub contains: Option<String>,
    /// A regular expression the message must match (linear-time engine, at most 1 KiB).
    pub regex: Option<String>,
    /// Field filters, e.g. `fields.order_id = "A-17" and http.status >= 500`.
    pub filter: Option<String>,
    /// Only events with this trace id.
    pub trace_id: Option<String>,
    /// Shorthand for equality filters: `{"order_id": "A-17"}`.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Events per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The answer of `POST /logs/query`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResponse {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<LogEvent>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Events decoded to answer this page.
    pub scanned: u64,
    /// True when the scan budget ran out before the page was full; continue with the cursor.
    pub truncated: bool,
    /// Where the events came from: `redis` (recent events), `stream` (older than Redis holds,
    /// read from JetStream) or `redis+stream`.
    pub source: String,
}

/// Position of an event in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub ts_nanos: i64,
    pub chunk: u64,
    pub idx: u32,
}

impl Position {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}:{}", self.ts_nanos, self.chunk, self.idx))
    }

    pub fn decode(s: &str) -> Option<Position> {
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let mut it = text.strip_prefix("v1:")?.split(':');
        let p = Position {
            ts_nanos: it.next()?.parse().ok()?,
            chunk: it.next()?.parse().ok()?,
            idx: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(p)
    }
}

/// Case-insensitive matching: substrings, or whole tokens when the needle is an identifier.
#[derive(Debug, Clone)]
pub struct TextMatcher {
    needle_lower: String,
    ascii: Option<AhoCorasick>,
    /// Whether the needle looks the same inside a JSON string, so raw lines can be pre-filtered.
    json_safe: bool,
    /// Set when the needle is a single identifier: match whole tokens only.
    token: Option<String>,
}

impl TextMatcher {
    pub fn new(needle: &str) -> TextMatcher {
        let token = tokens::as_single_identifier(needle);
        let ascii = needle.is_ascii().then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build([needle])
                .expect("a single literal pattern always builds")
        });
        TextMatcher {
            needle_lower: needle.to_lowercase(),
            json_safe: !needle
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control() || c == '/'),
            ascii,
            token,
        }
    }

    /// The identifier to look up in the token index, if the needle is one.
    pub fn index_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn is_match(&self, hay: &str) -> bool {
        if let Some(t) = &self.token {
            return tokens::identifier_tokens(hay).any(|h| h.eq_ignore_ascii_case(t));
        }
        match &self.ascii {
            Some(ac) => ac.is_match(hay),
            None => hay.to_lowercase().contains(&self.needle_lower),
        }
    }

    /// `false` only when the raw line certainly cannot match.
    pub fn may_match_raw(&self, raw: &[u8]) -> bool {
        if !self.json_safe {
            return true;
        }
        match &self.ascii {
            Some(ac) => ac.is_match(raw),
            None => true,
        }
    }

    pub fn matches_event(&self, ev: &LogEvent) -> bool {
        self.is_match(&ev.message)
            || ev.fields.values().any(|v| self.is_match(&v.to_text()))
            || ev.trace_id.as_deref().is_some_and(|t| self.is_match(t))
            || ev.host.as_deref().is_some_and(|h| self.is_match(h))
    }
}

/// A validated query.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub service: Option<ServiceName>,
    pub level: Option<Level>,
    pub min_level: Option<Level>,
    pub since_nanos: Option<i64>,
    pub until_nanos: Option<i64>,
    pub contains: Option<TextMatcher>,
    pub regex: Option<Regex>,
    pub filter: Option<Filter>,
    pub trace_id: Option<String>,
    pub limit: usize,
    pub cursor: Option<Position>,
    /// Lower-cased identifiers every matching event contains: chunks whose Bloom filter lacks
    /// one are skipped unread.
    pub index_tokens: Vec<String>,
}

/// Longest accepted regular expression.
pub const MAX_REGEX_BYTES: usize = 1024;

fn build_regex(pattern: &str) -> Result<Regex, QueryError> {
    if pattern.len() > MAX_REGEX_BYTES {
        return Err(QueryError::invalid(
            "regex",
            format!("longer than {MAX_REGEX_BYTES} bytes"),
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| QueryError::invalid("regex", e.to_string().replace('\n', " ")))
}

/// `{"order_id": "A-17", "status": 500}` → the filter `order_id = "A-17" and status = 500`.
fn fields_filter(
    fields: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Clause>, QueryError> {
    fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Literal::Str(s.clone()),
                serde_json::Value::Number(n) => {
                    Literal::Num(n.as_f64().unwrap_or(f64::NAN), n.to_string())
                }
                serde_json::Value::Bool(b) => Literal::Str(b.to_string()),
                _ => {
                    return Err(QueryError::invalid(
                        &format!("fields.{k}"),
                        "must be a string, number or boolean",
                    ));
                }
            };
            Ok(Clause {
                target: Target::Field(k.strip_prefix("fields.").unwrap_or(k).to_string()),
                op: Op::Eq,
                value,
            })
        })
        .collect()
}

/// A point in time as users write it: RFC 3339, epoch, or a duration ago (`15m`).
pub fn parse_time(field: &str, raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, QueryError> {
    let raw = raw.trim();
    if let Ok(d) = humantime_parse(raw) {
        return Ok(now - d);
    }
    parse_timestamp_str(raw).map_err(|e| QueryError::invalid(field, e))
}

fn humantime_parse(s: &str) -> Result<chrono::Duration, ()> {
    if s.is_empty() || !s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Err(());
    }
    // Bare numbers are epochs, not durations.
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(());
    }
    let d = humantime::parse_duration(s).map_err(|_| ())?;
    chrono::Duration::from_std(d).map_err(|_| ())
}

impl EventQuery {
    pub fn from_request(req: &QueryRequest, now: DateTime<Utc>) -> Result<EventQuery, QueryError> {
        let service = match req
            .service
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(ServiceName::sanitize(s).ok_or_else(|| {
                QueryError::invalid("service", format!("{s:?} is not a service name"))
            })?),
        };
        let level = parse_level("level", req.level.as_deref())?;
        let min_level = parse_level("min_level", req.min_level.as_deref())?;
        let since = req
            .since
            .as_deref()
            .map(|s| parse_time("since", s, now))
            .transpose()?;
        let until = req
            .until
            .as_deref()
            .map(|s| parse_time("until", s, now))
            .transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(QueryError::invalid("since", "is after `until`"));
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(QueryError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let contains = match req.contains.as_deref() {
            None | Some("") => None,
            Some(s) if s.len() > 1024 => {
                return Err(QueryError::invalid("contains", "longer than 1024 bytes"));
            }
            Some(s) => Some(TextMatcher::new(s)),
        };
        let regex = req
            .regex
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(build_regex)
            .transpose()?;
        let mut filter = match req
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            None => None,
            Some(f) => {
                Some(filter::parse(f).map_err(|e| QueryError::invalid("filter", e.to_string()))?)
            }
        };
        if let Some(fields) = &req.fields {
            let clauses = fields_filter(fields)?;
            if !clauses.is_empty() {
                filter
                    .get_or_insert_with(Filter::default)
                    .clauses
                    .extend(clauses);
            }
        }
        let trace_id = req
            .trace_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let mut index_tokens: Vec<String> = Vec::new();
        if let Some(t) = contains.as_ref().and_then(|c| c.index_token()) {
            index_tokens.push(t.to_string());
        }
        if let Some(f) = &filter {
            index_tokens.extend(f.index_tokens());
        }
        if let Some(t) = trace_id.as_deref().and_then(tokens::as_single_identifier) {
            index_tokens.push(t);
        }
        index_tokens.sort();
        index_tokens.dedup();
        let cursor = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Position::decode(c).ok_or_else(|| {
                QueryError::invalid("cursor", "not a cursor this service issued")
            })?),
        };
        Ok(EventQuery {
            service,
            level,
            min_level,
            since_nanos: since.and_then(|t| t.timestamp_nanos_opt()),
            until_nanos: until.and_then(|t| t.timestamp_nanos_opt()),
            contains,
            regex,
            filter,
            trace_id,
            limit,
            cursor,
            index_tokens,
        })
    }

    /// Whether an event passes every filter (service, level, time, content).
    pub fn matches(&self, ev: &LogEvent) -> bool {
        self.service
            .as_ref()
            .is_none_or(|s| s.as_str() == ev.service)
            && self.head_matches(ev.ts_nanos(), ev.level)
            && self.content_matches(ev)
    }

    /// Whether a decoded event passes the content filters (time and level are checked earlier).
    fn content_matches(&self, ev: &LogEvent) -> bool {
        self.contains.as_ref().is_none_or(|m| m.matches_event(ev))
            && self.regex.as_ref().is_none_or(|r| r.is_match(&ev.message))
            && self
                .trace_id
                .as_ref()
                .is_none_or(|t| ev.trace_id.as_deref() == Some(t.as_str()))
            && self.filter.as_ref().is_none_or(|f| f.matches(ev))
    }

    /// Whether a chunk can hold a matching event, from its index entry alone.
    pub fn chunk_may_match(&self, c: &ChunkRef) -> bool {
        if let Some(l) = self.level
            && !c.has_level(l)
        {
            return false;
        }
        if let Some(l) = self.min_level
            && !c.has_level_at_least(l)
        {
            return false;
        }
        if let Some(u) = self.until_nanos
            && c.min_ms.saturating_mul(1_000_000) > u
        {
            return false;
        }
        if let Some(cur) = self.cursor
            && c.min_ms.saturating_mul(1_000_000) > cur.ts_nanos
        {
            return false;
        }
        true
    }

    fn head_matches(&self, ts_nanos: i64, level: Level) -> bool {
        if self.level.is_some_and(|l| l != level) || self.min_level.is_some_and(|l| level < l) {
            return false;
        }
        if self.since_nanos.is_some_and(|s| ts_nanos < s)
            || self.until_nanos.is_some_and(|u| ts_nanos > u)
        {
            return false;
        }
        true
    }

    /// Index score bounds (ms, inclusive) of chunks that may hold matching events.
    pub fn score_bounds(&self) -> (f64, f64) {
        let mut upper = f64::INFINITY;
        if let Some(u) = self.until_nanos {
            upper = upper.min((u.div_euclid(1_000_000) + CHUNK_SPAN_MS) as f64);
        }
        if let Some(c) = self.cursor {
            upper = upper.min((c.ts_nanos.div_euclid(1_000_000) + CHUNK_SPAN_MS) as f64);
        }
        let lower = self
            .since_nanos
            .map_or(f64::NEG_INFINITY, |s| s.div_euclid(1_000_000) as f64);
        (lower, upper)
    }
}

fn parse_level(field: &str, raw: Option<&str>) -> Result<Option<Level>, QueryError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Level::from_name(s).map(Some).ok_or_else(|| {
            QueryError::invalid(
                field,
                format!("unknown level {s:?} (trace, debug, info, warn, error, fatal)"),
            )
        }),
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    ts: std::borrow::Cow<'a, str>,
    level: Level,
}

/// A matching event waiting in the merge.
struct Candidate {
    pos: Position,
    event: LogEvent,
}

impl PartialEq for Candidate {
    fn eq(&self, o: &Self) -> bool {
        self.pos == o.pos
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.pos.cmp(&o.pos)
    }
}

/// Decodes one chunk's events that match, pushing them as candidates. Returns events decoded.
fn scan_chunk(q: &EventQuery, chunk: u64, data: &[u8], out: &mut BinaryHeap<Candidate>) -> u64 {
    let mut scanned = 0;
    for (idx, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        scanned += 1;
        let Ok(head) = serde_json::from_slice::<Head<'_>>(line) else {
            continue;
        };
        let Some(ts_nanos) = DateTime::parse_from_rfc3339(&head.ts)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
        else {
            continue;
        };
        let pos = Position {
            ts_nanos,
            chunk,
            idx: idx as u32,
        };
        if q.cursor.is_some_and(|c| pos >= c) || !q.head_matches(ts_nanos, head.level) {
            continue;
        }
        if let Some(m) = &q.contains
            && !m.may_match_raw(line)
        {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<LogEvent>(line) else {
            continue;
        };
        if q.content_matches(&event) {
            out.push(Candidate { pos, event });
        }
    }
    scanned
}

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
) -> redis::RedisResult<QueryResponse> {
    let started = Instant::now();
    let index = match &q.service {
        Some(s) => keys::index_service_key(s.as_str()),
        None => keys::index_all_key(),
    };
    let (lower, upper) = q.score_bounds();
    let mut conn = conn.clone();
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::new();
    let mut out: Vec<LogEvent> = Vec::with_capacity(q.limit);
    let mut last: Option<Position> = None;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut offset: isize = 0;
    let mut scanned: u64 = 0;
    let mut truncated = false;
    // Chunks listed by the index (and not ruled out) but not decoded yet, newest first.
    let mut pending: VecDeque<ChunkRef> = VecDeque::new();
    let mut index_done = false;
    // Chunks still in the index beyond what was listed have their newest event at or below this.
    let mut index_floor_ms: i64 = i64::MAX;
    let mut all_loaded;
    let mut frontier_ms;

    loop {
        all_loaded = index_done && pending.is_empty();
        // Every chunk not decoded yet holds events at or below this time (ms).
        frontier_ms = pending.front().map_or(index_floor_ms, |r| r.max_ms);
        let frontier_ns = if all_loaded {
            i64::MIN
        } else {
            frontier_ms
                .saturating_add(1)
                .saturating_mul(1_000_000)
                .saturating_sub(1)
        };
        // Emit what no undecoded chunk can beat.
        while out.len() < q.limit
            && heap
                .peek()
                .is_some_and(|c| all_loaded || c.pos.ts_nanos > frontier_ns)
        {
            let c = heap.pop().expect("peeked");
            last = Some(c.pos);
            out.push(c.event);
        }
        if out.len() >= q.limit || (all_loaded && heap.is_empty()) {
            break;
        }
        if all_loaded {
            continue;
        }
        if scanned >= budget.max_events || started.elapsed() >= budget.max_time {
            truncated = true;
            break;
        }
        if !pending.is_empty() {
            // Decode a few chunks at a time: a small page needs only the newest ones.
            let batch: Vec<ChunkRef> = pending.drain(..pending.len().min(LOAD_BATCH)).collect();
            let chunk_keys: Vec<String> = batch.iter().map(|r| keys::chunk_key(r.id)).collect();
            let blobs: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&chunk_keys)
                .query_async(&mut conn)
                .await?;
            for (r, blob) in batch.iter().zip(blobs) {
                // A chunk expired between the index read and now: its events are gone from Redis.
                if let Some(data) = blob {
                    scanned += scan_chunk(q, r.id, &data, &mut heap);
                }
            }
            continue;
        }
        let page: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(&index)
            .arg(score_arg(upper))
            .arg(score_arg(lower))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(offset)
            .arg(INDEX_PAGE)
            .query_async(&mut conn)
            .await?;
        offset += page.len() as isize;
        if (page.len() as isize) < INDEX_PAGE {
            index_done = true;
        }
        if let Some((_, score)) = page.last() {
            index_floor_ms = index_floor_ms.min(*score as i64);
        }
        let wanted: Vec<ChunkRef> = page
            .iter()
            .filter_map(|(m, s)| ChunkRef::parse(m, *s))
            .filter(|r| seen.insert(r.id) && q.chunk_may_match(r))
            .collect();
        if q.index_tokens.is_empty() || wanted.is_empty() {
            pending.extend(wanted);
            continue;
        }
        // Ask Redis for just the filter bits each token needs, not whole filters.
        let mut pipe = redis::pipe();
        for r in &wanted {
            let mut cmd = redis::cmd("BITFIELD_RO");
            cmd.arg(keys::bloom_key(r.id));
            if r.bloom_log2 > 0 {
                for t in &q.index_tokens {
                    for off in Bloom::redis_bit_offsets(r.bloom_log2, t) {
                        cmd.arg("GET").arg("u1").arg(off);
                    }
                }
            } else {
                cmd.arg("GET").arg("u1").arg(0);
            }
            pipe.add_command(cmd);
        }
        let bits: Vec<Vec<u8>> = pipe.query_async(&mut conn).await?;
        pending.extend(
            wanted
                .into_iter()
                .zip(bits)
                // No filter size known (an older chunk): it has to be read.
                .filter(|(r, b)| r.bloom_log2 == 0 || b.iter().all(|bit| *bit == 1))
                .map(|(r, _)| r),
        );
    }

    let exhausted = all_loaded;
    let next_cursor = if out.len() >= q.limit && !(exhausted && heap.is_empty()) {
        last.map(|p| p.encode())
    } else if truncated {
        // Resume just above everything not yet returned.
        let resume = match (last, heap.peek()) {
            (Some(l), _) => Some(l),
            (None, Some(top)) => Some(Position {
                idx: top.pos.idx.saturating_add(1),
                ..top.pos
            }),
            (None, None) => Some(Position {
                ts_nanos: frontier_ms.saturating_add(1).saturating_mul(1_000_000),
                chunk: 0,
                idx: 0,
            }),
        };
        resume.map(|p| p.encode())
    } else {
        None
    };
    Ok(QueryResponse {
        events: out,
        next_cursor,
        scanned,
        truncated,
        source: "redis".into(),
    })
}

/// The oldest event time (ms) the recent-event index still covers, if it holds anything.
pub async fn recent_horizon_ms(
    conn: &ConnectionManager,
    q: &EventQuery,
) -> redis::RedisResult<Option<i64>> {
    let index = match &q.service {
        Some(s) => keys::index_service_key(s.as_str()),
        None => keys::index_all_key(),
    };
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

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn cursor_round_trip_and_garbage() {
        let p = Position {
            ts_nanos: 1_795_694_400_123_456_789,
            chunk: 42,
            idx: 7,
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("not-a-cursor"), None);
        assert_eq!(Position::decode(&URL_SAFE_NO_PAD.encode("v1:1:2")), None);
    }

    #[test]
    fn request_validation_names_the_field() {
        let bad = |req: QueryRequest| {
            EventQuery::from_request(&req, now())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(QueryRequest {
                level: Some("loud".into()),
                ..Default::default()
            })
            .contains("`level`")
        );
        assert!(
            bad(QueryRequest {
                limit: Some(0),
                ..Default::default()
            })
            .contains("`limit`")
        );
        assert!(
            bad(QueryRequest {
                limit: Some(1001),
                ..Default::default()
            })
            .contains("`limit`")
        );
        assert!(
            bad(QueryRequest {
                since: Some("yesterday-ish".into()),
                ..Default::default()
            })
            .contains("`since`")
        );
        assert!(
            bad(QueryRequest {
                cursor: Some("zzz".into()),
                ..Default::default()
            })
            .contains("`cursor`")
        );
        assert!(
            bad(QueryRequest {
                since: Some("1m".into()),
                until: Some("2h".into()),
                ..Default::default()
            })
            .contains("after")
        );
    }

    #[test]
    fn the_design_example_body_works() {
        let req: QueryRequest =
            serde_json::from_str(r#"{"service": "load-test", "limit": 10}"#).unwrap();
        let q = EventQuery::from_request(&req, now()).unwrap();
        assert_eq!(q.service.unwrap().as_str(), "load-test");
        assert_eq!(q.limit, 10);
    }

    #[test]
    fn relative_and_absolute_times() {
        let q = EventQuery::from_request(
            &QueryRequest {
                since: Some("15m".into()),
                until: Some("2026-11-26T12:00:00Z".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(
            q.since_nanos.unwrap(),
            (now() - chrono::Duration::minutes(15))
                .timestamp_nanos_opt()
                .unwrap()
        );
        assert_eq!(q.until_nanos.unwrap(), now().timestamp_nanos_opt().unwrap());
    }

    #[test]
    fn matcher_is_case_insensitive_and_prefilters_safely() {
        let m = TextMatcher::new("TimeOut");
        assert!(m.is_match("upstream timeout after 3s"));
        assert!(!m.may_match_raw(br#"{"message":"all good"}"#));
        let q = TextMatcher::new("say \"hi\"");
        assert!(q.may_match_raw(b"anything")); // quotes are escaped in JSON: no prefilter
        let u = TextMatcher::new("ÜBER");
        assert!(u.is_match("das ist über alles"));
    }

    #[test]
    fn scan_chunk_applies_filters_and_cursor() {
        let lines = [
            r#"{"ts":"2026-11-26T11:59:59.100Z","service":"api","level":"info","message":"hello"}"#,
            r#"{"ts":"2026-11-26T11:59:59.200Z","service":"api","level":"error","message":"boom"}"#,
            r#"{"ts":"2026-11-26T11:59:59.300Z","service":"api","level":"warn","message":"slow","fields":{"order":"A-17"}}"#,
        ]
        .join("\n");
        let mut q = EventQuery::from_request(
            &QueryRequest {
                min_level: Some("warn".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        let mut heap = BinaryHeap::new();
        assert_eq!(scan_chunk(&q, 1, lines.as_bytes(), &mut heap), 3);
        assert_eq!(heap.len(), 2);
        assert_eq!(heap.peek().unwrap().event.message, "slow");
        q.min_level = None;
        q.contains = Some(TextMatcher::new("a-17"));
        let mut heap = BinaryHeap::new();
        scan_chunk(&q, 1, lines.as_bytes(), &mut heap);
        assert_eq!(heap.len(), 1);
        q.contains = None;
        q.cursor = Some(Position {
            ts_nanos: DateTime::parse_from_rfc3339("2026-11-26T11:59:59.300Z")
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap(),
            chunk: 1,
            idx: 2,
        });
        let mut heap = BinaryHeap::new();
        scan_chunk(&q, 1, lines.as_bytes(), &mut heap);
        assert_eq!(heap.len(), 2);
    }

    #[test]
    fn identifier_needles_match_whole_tokens() {
        let m = TextMatcher::new("req-42");
        assert_eq!(m.index_token(), Some("req-42"));
        assert!(m.is_match("failed REQ-42 twice"));
        assert!(!m.is_match("failed req-420"));
        assert!(TextMatcher::new("time").is_match("timeout"));
    }

    #[test]
    fn regex_filter_and_fields_build_index_tokens() {
        let q = EventQuery::from_request(
            &QueryRequest {
                contains: Some("Order-991".into()),
                filter: Some("http.status >= 500".into()),
                fields: Some([("customer".to_string(), serde_json::json!("C-77x"))].into()),
                trace_id: Some("4bf92f3577b34da6".into()),
                regex: Some("^GET /items/\\d+$".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(
            q.index_tokens,
            vec!["4bf92f3577b34da6", "c-77x", "order-991"]
        );
        assert!(q.regex.unwrap().is_match("GET /items/12"));
        let bad = |req: QueryRequest| {
            EventQuery::from_request(&req, now())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(QueryRequest {
                regex: Some("(".into()),
                ..Default::default()
            })
            .contains("`regex`")
        );
        assert!(
            bad(QueryRequest {
                regex: Some("a".repeat(2000)),
                ..Default::default()
            })
            .contains("`regex`")
        );
        assert!(
            bad(QueryRequest {
                filter: Some("x >".into()),
                ..Default::default()
            })
            .contains("`filter`")
        );
        assert!(
            bad(QueryRequest {
                fields: Some([("a".to_string(), serde_json::json!([1]))].into()),
                ..Default::default()
            })
            .contains("`fields.a`")
        );
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
