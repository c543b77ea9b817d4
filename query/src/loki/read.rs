//! Reading a log query's entries: logjet's search (Redis, then the stream) page by page, with
//! the selector's `service`/`level` and the line filters' whole tokens pushed down to the index,
//! each event then run through the compiled pipeline.

use std::time::Instant;

use logjet_core::{Level, ServiceName};

use super::error::LokiError;
use super::pipeline::{CompiledLog, Entry, bounded_tokens};
use crate::AppState;
use crate::error::QueryError;
use crate::search::{self, Budget, Cursor, EventQuery};

/// How many entries a read wants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    /// The newest `n` (stop reading once found).
    Newest(usize),
    /// Every one; more than the scan budget is an error, as a partial count would be wrong.
    All,
    /// As many as the scan budget allows (samples for label values, field lists).
    Sample,
}

/// Entries (newest first) and what reading them cost.
#[derive(Debug, Default)]
pub struct Read {
    pub entries: Vec<Entry>,
    pub scanned: u64,
    pub bytes: u64,
}

/// The search that finds a log query's candidates, or `None` when none can match.
pub fn event_query(log: &CompiledLog, from_ns: i64, to_ns: i64) -> Option<EventQuery> {
    let service = match log.selected("service") {
        None => None,
        Some(s) => match ServiceName::sanitize(s) {
            Some(n) if n.as_str() == s => Some(n),
            _ => return None,
        },
    };
    let level = match log.selected("level") {
        None => None,
        Some(l) => match Level::from_name(l) {
            Some(lv) if lv.as_str() == l => Some(lv),
            _ => return None,
        },
    };
    let mut index_tokens: Vec<String> = log
        .required_substrings()
        .into_iter()
        .flat_map(bounded_tokens)
        .collect();
    index_tokens.sort();
    index_tokens.dedup();
    Some(EventQuery {
        service,
        level,
        min_level: None,
        since_nanos: Some(from_ns),
        until_nanos: Some(to_ns.saturating_sub(1)),
        contains: None,
        regex: None,
        filter: None,
        trace_id: None,
        limit: search::MAX_LIMIT,
        cursor: None,
        index_tokens,
    })
}

/// Reads the entries of `log` in `[from_ns, to_ns)`, newest first.
pub async fn read(
    st: &AppState,
    log: &CompiledLog,
    from_ns: i64,
    to_ns: i64,
    want: Want,
) -> Result<Read, LokiError> {
    let mut out = Read::default();
    let Some(mut q) = event_query(log, from_ns, to_ns) else {
        return Ok(out);
    };
    let started = Instant::now();
    let max_events = st.cfg.max_scan_events as u64;
    let now = chrono::Utc::now();
    loop {
        let left = Budget {
            max_events: max_events.saturating_sub(out.scanned).max(1),
            max_time: st.cfg.query_timeout.saturating_sub(started.elapsed()),
        };
        if left.max_time.is_zero() {
            return Err(QueryError::Timeout(st.cfg.query_timeout).into());
        }
        let page = crate::retry_once(&st.redis, || {
            search::search_all(&st.redis.conn, &st.tiers, &q, left, now)
        })
        .await?;
        out.scanned += page.scanned;
        for ev in &page.events {
            out.bytes += ev.message.len() as u64;
            if let Some(e) = log.process(ev) {
                out.entries.push(e);
                if want == Want::Newest(out.entries.len()) {
                    return Ok(out);
                }
            }
        }
        let Some(next) = page.next_cursor.as_deref().and_then(Cursor::decode) else {
            return Ok(out);
        };
        if out.scanned >= max_events {
            return match want {
                Want::Sample => Ok(out),
                _ => Err(LokiError::bad(format!(
                    "the query would read more than {max_events} events (max_scan_events): narrow the selector, add a line filter or shorten the range"
                ))),
            };
        }
        q.cursor = Some(next);
    }
}
