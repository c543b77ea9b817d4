//! The shippers' protocols: Loki push, Elasticsearch `_bulk`, OTLP/HTTP logs, and Fluent Bit's
//! msgpack.
//!
//! Each module only decodes its wire format into JSON records and renames the protocol's own
//! fields to names the forgiving parser knows (a Loki line → `message`, an OTLP body →
//! `message`, severity → `level`, …). Every record then goes through core's normaliser
//! ([`normalize_object`]), exactly like a line of `POST /logs`, and the events through the same
//! publish path ([`crate::publish_events`]): acks, dedupe, limits, auth and metrics behave the same
//! whatever the protocol. What differs is only how per-record results are reported, in each
//! protocol's own shape, so that shippers retry only what failed.

pub mod elasticsearch;
pub mod loki;
pub mod msgpack;
pub mod otlp;
pub mod proto;

use axum::Router;
use axum::routing::{get, post};
use logjet_core::LogEvent;
use logjet_core::parse::{LineError, ParseOptions, Reject, normalize_object};
use serde_json::{Map, Value};

/// The protocol routes. `app` puts them in the same guarded, load-shedding, size-limited and
/// decompressing router as `POST /logs`.
pub fn routes() -> Router<crate::AppState> {
    Router::new()
        .route("/loki/api/v1/push", post(loki::push))
        .route("/v1/logs", post(otlp::export))
        .route("/_bulk", post(elasticsearch::bulk).put(elasticsearch::bulk))
        .route(
            "/{index}/_bulk",
            post(elasticsearch::bulk_index).put(elasticsearch::bulk_index),
        )
        .route("/", get(elasticsearch::info))
        .route("/_license", get(elasticsearch::license))
}

/// A record on its way to the normaliser: a JSON object with logjet's input field names.
pub type Record = Map<String, Value>;

/// Reject reason (metrics label) of a record or payload that could not be decoded at all
/// (invalid protobuf, snappy or msgpack).
pub const UNDECODABLE: &str = "undecodable";
/// Reject reason of an Elasticsearch bulk action logjet does not perform (`delete`, `update`).
pub const UNSUPPORTED_ACTION: &str = "unsupported_action";

/// Normalises one record. `position` is its 1-based place in the request (what the response
/// names), `size` its approximate size in bytes, held to the same limit as a line of `POST /logs`.
pub fn normalize(
    record: Record,
    size: usize,
    position: usize,
    opts: &ParseOptions,
) -> Result<LogEvent, Reject> {
    let result = if size > opts.max_line_bytes {
        Err(LineError::TooLong {
            len: size,
            max: opts.max_line_bytes,
        })
    } else {
        normalize_object(record, opts)
    };
    result.map_err(|e| reject(position, &e))
}

/// A [`Reject`] from a normaliser error.
pub fn reject(position: usize, err: &LineError) -> Reject {
    Reject {
        line: position,
        error: err.to_string(),
        reason: err.code(),
    }
}

/// A [`Reject`] with a protocol-level reason.
pub fn reject_with(position: usize, reason: &'static str, error: impl Into<String>) -> Reject {
    Reject {
        line: position,
        error: error.into(),
        reason,
    }
}

/// Counts a request whose payload could not be decoded at all as one rejected event, as
/// `POST /logs` counts a body that is not JSON.
pub(crate) fn count_undecodable(metrics: &crate::metrics::IngestMetrics) {
    metrics.events.with_label_values(&["rejected"]).inc();
    metrics.rejected.with_label_values(&[UNDECODABLE]).inc();
}

/// Approximate size of a JSON value in bytes (strings and keys count their length, scalars a few
/// bytes): cheap, and close enough to hold a record to the line limit.
pub fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Object(m) => m.iter().map(|(k, v)| k.len() + 4 + approx_size(v)).sum(),
        Value::Array(a) => a.iter().map(|v| approx_size(v) + 1).sum(),
        _ => 8,
    }
}

/// Approximate size of a record, see [`approx_size`].
pub fn record_size(r: &Record) -> usize {
    r.iter().map(|(k, v)| k.len() + 4 + approx_size(v)).sum()
}

/// Splits per-record results into the events to publish and the rejects, keeping for each
/// record whether it was kept.
pub fn split(results: Vec<Result<LogEvent, Reject>>) -> (Vec<LogEvent>, Vec<Reject>) {
    let mut events = Vec::with_capacity(results.len());
    let mut rejects = Vec::new();
    for r in results {
        match r {
            Ok(e) => events.push(e),
            Err(r) => rejects.push(r),
        }
    }
    (events, rejects)
}

/// A short summary of rejects for a one-line error message: the first few, then a count.
pub fn summarize(rejects: &[Reject], what: &str) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = rejects
        .iter()
        .take(SHOWN)
        .map(|r| format!("{what} {}: {}", r.line, r.error))
        .collect();
    if rejects.len() > SHOWN {
        parts.push(format!("and {} more", rejects.len() - SHOWN));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn records_go_through_the_normaliser_and_its_limits() {
        let opts = ParseOptions::new(Utc::now());
        let mut r = Record::new();
        r.insert("message".into(), Value::String("ERROR boom".into()));
        r.insert("app".into(), Value::String("API".into()));
        let size = record_size(&r);
        let ev = normalize(r.clone(), size, 1, &opts).unwrap();
        assert_eq!((ev.service.as_str(), ev.level.as_str()), ("api", "error"));
        let rej = normalize(r, opts.max_line_bytes + 1, 7, &opts).unwrap_err();
        assert_eq!((rej.line, rej.reason), (7, "too_long"));
        let rej = normalize(Record::new(), 0, 2, &opts).unwrap_err();
        assert_eq!(rej.reason, "empty_object");
    }

    #[test]
    fn summaries_are_bounded() {
        let rejects: Vec<Reject> = (1..=8)
            .map(|i| reject_with(i, UNDECODABLE, "bad"))
            .collect();
        let s = summarize(&rejects, "entry");
        assert!(s.starts_with("entry 1: bad; entry 2: bad"), "{s}");
        assert!(s.ends_with("and 3 more"), "{s}");
    }
}
