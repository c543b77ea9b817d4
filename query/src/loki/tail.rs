//! `GET /loki/api/v1/tail`: Loki's live tail as a WebSocket, fed by logjet's live tail
//! ([`crate::tail::Tails::feed`]).
//!
//! As in Loki (`pkg/loghttp/tail.go`, `pkg/querier/http.go`): `query` is a log query, checked
//! before the upgrade (a bad one is an HTTP 400 in Loki's error shape); `limit` (default 100)
//! newest entries since `start` (default an hour ago) come first, oldest first; then live entries,
//! each held `delay_for` seconds (0–5) and sent in timestamp order. Every message is
//! `{"streams":[{"stream":{…},"values":[["<ns>","<line>"]]}]}`, plus `"dropped_entries":
//! [{"labels":{…},"timestamp":"<ns>"}]` when the client fell behind and the tail stops.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::error::LokiError;
use super::logql::{self, Expr};
use super::params::Params;
use super::pipeline::{CompiledLog, Entry, Labels};
use super::read::{Want, event_query, read};
use crate::AppState;
use crate::tail::Feed;

/// Loki's `maxDelayForInTailing`.
pub const MAX_DELAY_FOR_SECS: u64 = 5;
/// Entries per message at most (Loki's `maxEntriesPerTailResponse`).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 100;
/// The live feed starts this long before the history is read, so no event published while the
/// tail opens falls between the two (an entry in both is sent once).
const HANDOVER: Duration = Duration::from_secs(5);

/// A tail request, checked.
#[derive(Debug)]
pub struct TailRequest {
    pub log: CompiledLog,
    pub limit: usize,
    pub start_ns: i64,
    pub delay: Duration,
}

impl TailRequest {
    pub fn parse(p: &Params, field_labels: &[String], now_ns: i64) -> Result<Self, LokiError> {
        let q = p.query()?;
        let log = match logql::parse(q)? {
            Expr::Log(l) => CompiledLog::compile(&l, field_labels)?,
            Expr::Metric(_) => {
                return Err(LokiError::bad(format!(
                    "{q}: tail needs a log query (a stream selector), not a metric query"
                )));
            }
        };
        let delay_secs = match p.get("delay_for") {
            None => 0,
            Some(v) => v.parse::<u64>().map_err(|_| {
                LokiError::bad(format!(
                    "invalid parameter \"delay_for\": {v:?} must be a whole number of seconds"
                ))
            })?,
        };
        if delay_secs > MAX_DELAY_FOR_SECS {
            return Err(LokiError::bad(format!(
                "delay_for can't be greater than {MAX_DELAY_FOR_SECS}"
            )));
        }
        Ok(TailRequest {
            log,
            limit: p.limit()?,
            start_ns: p.time("start", now_ns - 3_600_000_000_000)?,
            delay: Duration::from_secs(delay_secs),
        })
    }
}

/// One tail message in Loki's shape; entries grouped by stream in the order given.
pub fn message(entries: &[Entry], dropped: &[Entry]) -> Json {
    let mut order: Vec<&Labels> = Vec::new();
    let mut by: BTreeMap<&Labels, Vec<[String; 2]>> = BTreeMap::new();
    for e in entries {
        by.entry(&e.labels)
            .or_insert_with(|| {
                order.push(&e.labels);
                Vec::new()
            })
            .push([e.ts_nanos.to_string(), e.line.clone()]);
    }
    let streams: Vec<Json> = order
        .into_iter()
        .map(|l| json!({"stream": l, "values": by[l]}))
        .collect();
    let mut m = json!({ "streams": streams });
    if !dropped.is_empty() {
        m["dropped_entries"] = dropped
            .iter()
            .map(|e| json!({"labels": e.labels, "timestamp": e.ts_nanos.to_string()}))
            .collect();
    }
    m
}

type Key = (i64, Labels, String);

fn key(e: &Entry) -> Key {
    (e.ts_nanos, e.labels.clone(), e.line.clone())
}

/// What the live feed may still send once the history went out: not what was sent already,
/// nothing before `start`, and (when the history was cut at `limit`) nothing older than it.
struct Handover {
    sent: HashSet<Key>,
    floor_ns: i64,
}

impl Handover {
    fn new(history: &[Entry], limit: usize, start_ns: i64) -> Handover {
        let oldest = history.iter().map(|e| e.ts_nanos).min();
        let floor_ns = match oldest {
            Some(t) if history.len() >= limit => t.max(start_ns),
            _ => start_ns,
        };
        Handover {
            sent: history.iter().map(key).collect(),
            floor_ns,
        }
    }

    fn admits(&self, e: &Entry) -> bool {
        e.ts_nanos >= self.floor_ns && (self.sent.is_empty() || !self.sent.contains(&key(e)))
    }
}

pub async fn tail(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match open(st, raw, ws).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(
    st: AppState,
    raw: Option<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, LokiError> {
    let now = Utc::now();
    let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let p = Params::from_query(raw.as_deref());
    let req = TailRequest::parse(&p, &st.cfg.loki.labels(), now_ns)?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return Ok(r.into_response()),
    };
    // The live feed first (from a little earlier), then the history: nothing falls between.
    let service = event_query(&req.log, req.start_ns, now_ns).and_then(|q| q.service);
    let log = req.log.clone();
    let feed = st
        .tails
        .feed(
            service.as_ref(),
            Some(now - chrono::Duration::from_std(HANDOVER).unwrap_or_default()),
            move |ev| log.process(ev),
        )
        .await?;
    let mut history = read(
        &st,
        &req.log,
        req.start_ns,
        now_ns.saturating_add(1),
        Want::Newest(req.limit),
    )
    .await?
    .entries;
    history.truncate(req.limit);
    history.reverse();
    let handover = Handover::new(&history, req.limit, req.start_ns);
    Ok(ws.on_upgrade(move |socket| stream(socket, history, handover, feed, req.delay)))
}

async fn send(socket: &mut WebSocket, m: &Json) -> bool {
    socket
        .send(Message::Text(m.to_string().into()))
        .await
        .is_ok()
}

/// Writes the history, then live entries after `delay`, until the client leaves or the feed ends.
async fn stream(
    mut socket: WebSocket,
    history: Vec<Entry>,
    handover: Handover,
    mut feed: Feed<Entry>,
    delay: Duration,
) {
    for chunk in history.chunks(MAX_ENTRIES_PER_MESSAGE) {
        if !send(&mut socket, &message(chunk, &[])).await {
            return;
        }
    }
    // Entries waiting out `delay`, with when each may go.
    let mut pending: Vec<(Instant, Entry)> = Vec::new();
    let mut feed_open = true;
    while feed_open || !pending.is_empty() {
        let due = pending.first().map(|(t, _)| *t);
        tokio::select! {
            e = feed.items.recv(), if feed_open => match e {
                Some(e) => {
                    if handover.admits(&e) {
                        pending.push((Instant::now() + delay, e));
                    }
                    while pending.len() < MAX_ENTRIES_PER_MESSAGE
                        && let Ok(e) = feed.items.try_recv()
                    {
                        if handover.admits(&e) {
                            pending.push((Instant::now() + delay, e));
                        }
                    }
                }
                None => feed_open = false,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        }
        // Everything due goes out, in timestamp order, up to a message's worth at a time.
        let now = Instant::now();
        let ready = pending.iter().take_while(|(t, _)| *t <= now).count();
        if ready == 0 && feed_open {
            continue;
        }
        let ready = if feed_open { ready } else { pending.len() };
        let mut out: Vec<Entry> = pending.drain(..ready).map(|(_, e)| e).collect();
        out.sort_by_key(|e| e.ts_nanos);
        for chunk in out.chunks(MAX_ENTRIES_PER_MESSAGE) {
            if !send(&mut socket, &message(chunk, &[])).await {
                return;
            }
        }
    }
    // The feed stopped: the client fell behind (Loki's `dropped_entries`) or NATS went away.
    let (code, reason) = match feed.take_dropped() {
        Some(e) => {
            let _ = send(&mut socket, &message(&[], std::slice::from_ref(&e))).await;
            (close_code::AGAIN, "the client did not keep up; reconnect")
        }
        None => (close_code::AWAY, "the live tail ended; reconnect"),
    };
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, service: &str, line: &str) -> Entry {
        Entry {
            ts_nanos: ts,
            labels: [("service".to_string(), service.to_string())].into(),
            line: line.into(),
        }
    }

    #[test]
    fn messages_have_loki_shape() {
        let m = message(
            &[
                entry(2, "api", "b"),
                entry(1, "db", "x"),
                entry(3, "api", "c"),
            ],
            &[],
        );
        assert_eq!(
            m,
            json!({"streams": [
                {"stream": {"service": "api"}, "values": [["2", "b"], ["3", "c"]]},
                {"stream": {"service": "db"}, "values": [["1", "x"]]},
            ]})
        );
        let m = message(&[], &[entry(7, "api", "z")]);
        assert_eq!(
            m,
            json!({"streams": [], "dropped_entries": [{"labels": {"service": "api"}, "timestamp": "7"}]})
        );
    }

    #[test]
    fn parameters_as_loki_checks_them() {
        let p = |q: &str| Params::from_query(Some(q));
        let now = 10_000_000_000_000i64;
        let r = TailRequest::parse(&p("query=%7Bservice%3D%22api%22%7D"), &[], now).unwrap();
        assert_eq!(
            (r.limit, r.start_ns, r.delay),
            (100, now - 3_600_000_000_000, Duration::ZERO)
        );
        let r = TailRequest::parse(
            &p("query=%7Bservice%3D%22api%22%7D&delay_for=2&limit=5&start=1"),
            &[],
            now,
        )
        .unwrap();
        assert_eq!(
            (r.limit, r.start_ns, r.delay),
            (5, 1_000_000_000, Duration::from_secs(2))
        );
        let e = TailRequest::parse(&p("query=%7Bservice%3D%22api%22%7D&delay_for=6"), &[], now)
            .unwrap_err();
        assert_eq!(e.to_string(), "delay_for can't be greater than 5");
        let e = TailRequest::parse(
            &p("query=count_over_time(%7Bservice%3D%22api%22%7D%5B1m%5D)"),
            &[],
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("log query"), "{e}");
        assert!(TailRequest::parse(&p("query=%7Bservice%3D"), &[], now).is_err());
        assert!(TailRequest::parse(&p(""), &[], now).is_err());
    }

    #[test]
    fn the_live_feed_skips_what_the_history_sent() {
        let history = vec![entry(10, "api", "a"), entry(20, "api", "b")];
        let h = Handover::new(&history, 100, 5);
        assert!(!h.admits(&entry(20, "api", "b")));
        assert!(h.admits(&entry(20, "api", "c")));
        assert!(h.admits(&entry(7, "api", "old but new to the client")));
        assert!(!h.admits(&entry(4, "api", "before start")));
        // A history cut at `limit` leaves older entries out for good.
        let h = Handover::new(&history, 2, 5);
        assert!(!h.admits(&entry(7, "api", "older than the cut")));
        assert!(h.admits(&entry(30, "api", "new")));
    }
}
