//! Loki's push API: `POST /loki/api/v1/push`, as Promtail, Grafana Alloy, Fluent Bit's `loki`
//! output, Vector's `loki` sink and Loki client libraries send it.
//!
//! Two encodings:
//! - `application/x-protobuf`: a `logproto.PushRequest` (see `ingest/proto/loki/push.proto`),
//!   compressed with block-format snappy (what Promtail and Alloy send);
//! - `application/json`: `{"streams": [{"stream": {labels}, "values": [["<ns>", "<line>",
//!   {structured metadata}?], …]}]}`, and the older `{"streams": [{"labels": "{a=\"b\"}",
//!   "entries": [{"ts": "<RFC 3339>", "line": "…"}]}]}`. Gzip via `Content-Encoding`.
//!
//! Each entry becomes a record: the stream's labels and the entry's structured metadata are its
//! fields, the line its message, the entry's time its timestamp. The service is the `service`
//! label, else `service_name`, `app` or `job` (in that order), else `?service=`; a `level` label
//! (or Loki 3's `detected_level`) is the level, otherwise the normaliser detects it from the line.
//!
//! Results: 204 when every entry was accepted (as Loki answers). When some entries are invalid,
//! the valid ones are published and the answer is 400 with `{"error", "details": [{"stream",
//! "entry", "error"}]}` naming each refused entry. That is what Loki itself does on a partial
//! failure (for example entries too far behind: it keeps the rest and answers 400 naming the
//! ignored ones), and what shippers expect: Promtail, Alloy and Fluent Bit do not retry a 4xx
//! (retrying would not make a bad entry good), while a 5xx or 429 makes them retry the whole batch.
//! So a 5xx is only sent when nothing was accepted: 503 when JetStream cannot take the entries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logjet_core::LogEvent;
use logjet_core::http::ApiError;
use logjet_core::parse::{LineError, ParseOptions, Reject};
use prost::Message;
use serde::Serialize;
use serde_json::{Map, Value};

use super::proto::loki as pb;
use super::{Record, normalize, record_size, reject, summarize};
use crate::{AppState, IngestError, IngestRequest, LogsParams, publish_events};

/// Labels that name the service, after the normaliser's own (`service`, `app`, …).
const SERVICE_LABELS: &[&str] = &["service_name", "app", "job"];
/// Labels the normaliser already reads as the service.
const SERVICE_ALIASES: &[&str] = &["service", "app", "service.name", "application"];

/// Where an entry was in the request: 1-based stream and entry numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryPos {
    pub stream: usize,
    pub entry: usize,
}

/// A refused entry, as listed in the 400's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryReject {
    pub stream: usize,
    pub entry: usize,
    pub error: String,
}

/// The outcome of decoding and normalising a push request.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<LogEvent>,
    /// `line` of each reject is the 1-based entry number over the whole request.
    pub rejects: Vec<Reject>,
    /// Stream and entry of every entry, by entry number - 1.
    pub positions: Vec<EntryPos>,
}

impl Decoded {
    fn push(&mut self, pos: EntryPos, result: Result<Record, LineError>, opts: &ParseOptions) {
        self.positions.push(pos);
        let n = self.positions.len();
        let outcome = result.map_err(|e| reject(n, &e)).and_then(|r| {
            let size = record_size(&r);
            normalize(r, size, n, opts)
        });
        match outcome {
            Ok(ev) => self.events.push(ev),
            Err(r) => self.rejects.push(r),
        }
    }

    /// The rejects with their stream and entry.
    pub fn entry_rejects(&self) -> Vec<EntryReject> {
        self.rejects
            .iter()
            .map(|r| {
                let p = self.positions[r.line - 1];
                EntryReject {
                    stream: p.stream,
                    entry: p.entry,
                    error: r.error.clone(),
                }
            })
            .collect()
    }
}

/// A request that cannot be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("invalid snappy-compressed protobuf push request: {0}")]
    Protobuf(String),
    #[error("invalid JSON push request: {0}")]
    Json(String),
    #[error("decompressed body would be {len} bytes, over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error(
        "unsupported content type {0:?}: send application/x-protobuf (snappy) or application/json"
    )]
    ContentType(String),
}

/// Reads a push request. `max_bytes` bounds the decompressed size of a snappy body.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    max_bytes: usize,
    opts: &ParseOptions,
) -> Result<Decoded, DecodeError> {
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => decode_protobuf(body, max_bytes, opts),
        "application/json" | "" => decode_json(body, opts),
        other => Err(DecodeError::ContentType(other.to_string())),
    }
}

/// The decompressed size of a snappy protobuf push (snappy's header says it), to reserve from
/// the memory budget before decompressing; `None` for other bodies.
pub fn snappy_len(body: &[u8], content_type: Option<&str>) -> Option<usize> {
    let mime = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    if mime != "application/x-protobuf" && mime != "application/protobuf" {
        return None;
    }
    snap::raw::decompress_len(body).ok()
}

fn decode_protobuf(
    body: &[u8],
    max_bytes: usize,
    opts: &ParseOptions,
) -> Result<Decoded, DecodeError> {
    let req = match snap::raw::decompress_len(body) {
        Ok(len) if len > max_bytes => {
            return Err(DecodeError::TooLarge {
                len,
                limit: max_bytes,
            });
        }
        Ok(_) => match snap::raw::Decoder::new().decompress_vec(body) {
            Ok(raw) => pb::PushRequest::decode(raw.as_slice()),
            // Not snappy: an uncompressed request is accepted too.
            Err(_) => pb::PushRequest::decode(body),
        },
        Err(_) => pb::PushRequest::decode(body),
    }
    .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let mut out = Decoded::default();
    for (s, stream) in req.streams.into_iter().enumerate() {
        let labels = parse_labels(&stream.labels);
        for (e, entry) in stream.entries.into_iter().enumerate() {
            let pos = EntryPos {
                stream: s + 1,
                entry: e + 1,
            };
            let record = labels.as_ref().map_err(Clone::clone).map(|labels| {
                let ts = entry
                    .timestamp
                    .map(|t| Value::from(t.seconds.saturating_mul(1_000_000_000) + t.nanos as i64));
                let metadata = entry
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, Value::String(p.value)));
                entry_record(labels, metadata, ts, entry.line, opts)
            });
            out.push(pos, record, opts);
        }
    }
    Ok(out)
}

fn decode_json(body: &[u8], opts: &ParseOptions) -> Result<Decoded, DecodeError> {
    let mut push: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Some(Value::Array(streams)) = push.remove("streams") else {
        return Err(DecodeError::Json("expected {\"streams\": [...]}".into()));
    };
    let mut out = Decoded::default();
    for (s, stream) in streams.into_iter().enumerate() {
        let Value::Object(mut stream) = stream else {
            return Err(DecodeError::Json(format!(
                "stream {} is not an object",
                s + 1
            )));
        };
        // `stream` is a label map; the older format has `labels` as a selector string.
        let labels: Result<Vec<(String, String)>, LineError> = match stream.remove("stream") {
            Some(Value::Object(m)) => Ok(m.into_iter().map(|(k, v)| (k, text(v))).collect()),
            Some(Value::Null) | None => match stream.get("labels") {
                Some(Value::String(sel)) => parse_labels(sel),
                _ => Ok(Vec::new()),
            },
            Some(_) => Err(LineError::Field {
                field: "stream".into(),
                problem: "expected an object of labels".into(),
            }),
        };
        let entries: Vec<JsonEntry> = if let Some(Value::Array(values)) = stream.remove("values") {
            values.into_iter().map(json_value_entry).collect()
        } else if let Some(Value::Array(entries)) = stream.remove("entries") {
            entries.into_iter().map(json_legacy_entry).collect()
        } else {
            Vec::new()
        };
        for (e, (ts, entry)) in entries.into_iter().enumerate() {
            let pos = EntryPos {
                stream: s + 1,
                entry: e + 1,
            };
            let record = match (&labels, entry) {
                (Err(err), _) => Err(err.clone()),
                (_, Err(err)) => Err(err),
                (Ok(labels), Ok((line, metadata))) => {
                    Ok(entry_record(labels, metadata.into_iter(), ts, line, opts))
                }
            };
            out.push(pos, record, opts);
        }
    }
    Ok(out)
}

type JsonEntry = (
    Option<Value>,
    Result<(String, Vec<(String, Value)>), LineError>,
);

/// Loki's timestamps are strings of nanoseconds: read them as a number here, which the
/// normaliser takes without trying the date formats first.
fn timestamp(v: Value) -> Value {
    match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().map_or(Value::String(s), Value::from)
        }
        other => other,
    }
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {structured metadata}]`.
fn json_value_entry(v: Value) -> JsonEntry {
    let bad = || {
        (
            None,
            Err(LineError::Field {
                field: "values".into(),
                problem: "an entry must be [\"<unix ns>\", \"<line>\"]".into(),
            }),
        )
    };
    let Value::Array(parts) = v else {
        return bad();
    };
    let mut parts = parts.into_iter();
    let (Some(ts), Some(Value::String(line))) = (parts.next(), parts.next()) else {
        return bad();
    };
    let metadata = match parts.next() {
        Some(Value::Object(m)) => m.into_iter().collect(),
        _ => Vec::new(),
    };
    (Some(timestamp(ts)), Ok((line, metadata)))
}

/// `{"ts": "<RFC 3339>", "line": "<line>"}` (Loki's older JSON).
fn json_legacy_entry(v: Value) -> JsonEntry {
    let bad = || {
        (
            None,
            Err(LineError::Field {
                field: "entries".into(),
                problem: "an entry must be {\"ts\": \"…\", \"line\": \"…\"}".into(),
            }),
        )
    };
    let Value::Object(mut m) = v else {
        return bad();
    };
    match (m.remove("ts"), m.remove("line")) {
        (ts, Some(Value::String(line))) => (ts.map(timestamp), Ok((line, Vec::new()))),
        _ => bad(),
    }
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The record of one entry: labels, then structured metadata, then the entry's own time and line.
fn entry_record(
    labels: &[(String, String)],
    metadata: impl Iterator<Item = (String, Value)>,
    ts: Option<Value>,
    line: String,
    opts: &ParseOptions,
) -> Record {
    let mut r = Record::new();
    for (k, v) in labels {
        r.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in metadata {
        r.insert(k, v);
    }
    if !SERVICE_ALIASES.iter().any(|a| r.contains_key(*a))
        && let Some(service) = SERVICE_LABELS.iter().find_map(|l| r.get(*l)).cloned()
    {
        r.insert("service".into(), service);
    }
    if !r.contains_key("level")
        && let Some(level) = r.remove("detected_level")
    {
        r.insert("level".into(), level);
    }
    r.insert(
        "ts".into(),
        ts.unwrap_or_else(|| {
            Value::from(opts.received_at.timestamp_nanos_opt().unwrap_or_default())
        }),
    );
    r.insert("message".into(), Value::String(line));
    r
}

/// Parses a Prometheus label set: `{job="varlogs", app="api"}` (`\"`, `\\` and `\n` escapes).
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, LineError> {
    let bad = |problem: String| LineError::Field {
        field: "labels".into(),
        problem,
    };
    let inner = s.trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let inner = inner
        .strip_prefix('{')
        .and_then(|i| i.strip_suffix('}'))
        .ok_or_else(|| bad(format!("{s:?} is not a label set like {{job=\"x\"}}")))?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return Err(bad(format!("{s:?}: expected name=\"value\"")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('"') {
            return Err(bad(format!("{s:?}: the value of {name} is not quoted")));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => return Err(bad(format!("{s:?}: unterminated value"))),
                },
                Some(c) => value.push(c),
                None => return Err(bad(format!("{s:?}: unterminated value"))),
            }
        }
        out.push((name, value));
    }
}

/// Push logs the way Loki accepts them (Promtail, Grafana Alloy, Fluent Bit `loki`, Vector `loki`).
#[utoipa::path(
    post,
    path = "/loki/api/v1/push",
    tag = "shippers",
    params(
        LogsParams,
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key is counted once (within 2 minutes)."),
    ),
    request_body(
        description = "A Loki push request: snappy-compressed protobuf `logproto.PushRequest`, or JSON `{\"streams\": [{\"stream\": {labels}, \"values\": [[\"<unix ns>\", \"<line>\"]]}]}`.",
        content(
            (Vec<u8> = "application/x-protobuf"),
            (Object = "application/json")
        )
    ),
    responses(
        (status = 204, description = "Every entry accepted: JetStream acknowledged them"),
        (status = 400, description = "Undecodable request, or some entries refused: the valid ones were accepted; `details` names each refused entry `{stream, entry, error}`", body = logjet_core::http::ErrorBody),
        (status = 413, description = "Body over the limit (after decompression)", body = logjet_core::http::ErrorBody),
        (status = 415, description = "Unsupported content type or encoding", body = logjet_core::http::ErrorBody),
        (status = 503, description = "JetStream unavailable, nothing accepted; retry after the given seconds", body = logjet_core::http::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn push(
    State(st): State<AppState>,
    mut req: IngestRequest,
) -> Result<Response, IngestError> {
    // The decompressed protobuf is held beside the body, and the payload is encoded from it:
    // reserve them first (over the body limit `decode` refuses it without decompressing).
    if let Some(len) = snappy_len(&req.body, req.content_type())
        && len <= st.cfg.max_body_bytes
    {
        let total = req.body.len() as u64 + crate::budget::with_payload(len as u64);
        req.reservation
            .ensure(total)
            .map_err(|e| crate::request::over_budget(e, &st.cfg))?;
    }
    let decoded = match decode(
        &req.body,
        req.content_type(),
        st.cfg.max_body_bytes,
        &req.options,
    ) {
        Ok(d) => d,
        Err(DecodeError::TooLarge { limit, .. }) => return Err(IngestError::TooLarge { limit }),
        Err(e @ DecodeError::ContentType(_)) => {
            return Ok(
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()).into_response(),
            );
        }
        Err(e) => {
            super::count_undecodable(&st.metrics);
            return Ok(ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response());
        }
    };
    let entry_rejects = decoded.entry_rejects();
    let total = decoded.positions.len();
    let rejects = decoded.rejects;
    let outcome =
        publish_events(&st, decoded.events, &rejects, &req.headers, req.received_at).await?;
    if rejects.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let accepted = outcome.accepted + outcome.duplicates;
    let err = ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "{} of {total} entries refused, the other {accepted} were accepted: {}",
            rejects.len(),
            summarize(&rejects, "entry")
        ),
    )
    .with_details(&entry_rejects);
    Ok(err.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn opts() -> ParseOptions {
        ParseOptions::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())
            .with_max_age(Some(Duration::from_secs(24 * 3600)))
    }

    fn ns(secs_ago: i64) -> i64 {
        (opts().received_at.timestamp() - secs_ago) * 1_000_000_000 + 42
    }

    #[test]
    fn labels_parse_like_prometheus() {
        assert_eq!(
            parse_labels(r#"{job="varlogs", app="api",  msg="a \"q\" \\ b"}"#).unwrap(),
            vec![
                ("job".into(), "varlogs".into()),
                ("app".into(), "api".into()),
                ("msg".into(), r#"a "q" \ b"#.into())
            ]
        );
        assert_eq!(parse_labels("{}").unwrap(), vec![]);
        assert!(parse_labels("job=x").is_err());
        assert!(parse_labels(r#"{job="x}"#).is_err());
        assert!(parse_labels(r#"{job=x}"#).is_err());
    }

    #[test]
    fn json_push_maps_labels_service_level_and_metadata() {
        let body = serde_json::json!({"streams": [
            {"stream": {"service_name": "Checkout", "job": "varlogs", "level": "warn", "env": "prod"},
             "values": [[ns(5).to_string(), "slow payment"], [ns(4).to_string(), "ok", {"trace_id": "abc", "user": "u1"}]]},
            {"stream": {"job": "nginx"}, "values": [[ns(3).to_string(), "ERROR upstream timed out"]]},
            {"labels": "{app=\"legacy\"}", "entries": [{"ts": "2026-11-26T11:59:00Z", "line": "old format"}]}
        ]});
        let d = decode(
            body.to_string().as_bytes(),
            Some("application/json"),
            1 << 20,
            &opts(),
        )
        .unwrap();
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        let e = &d.events;
        assert_eq!(e.len(), 4);
        assert_eq!(
            (
                e[0].service.as_str(),
                e[0].level.as_str(),
                e[0].message.as_str()
            ),
            ("checkout", "warn", "slow payment")
        );
        assert_eq!(e[0].ts_nanos(), ns(5));
        assert_eq!(e[0].fields["env"].to_text(), "prod");
        assert_eq!(e[0].fields["job"].to_text(), "varlogs");
        assert_eq!(e[1].trace_id.as_deref(), Some("abc"));
        assert_eq!(e[1].fields["user"].to_text(), "u1");
        assert_eq!(
            (e[2].service.as_str(), e[2].level.as_str()),
            ("nginx", "error")
        );
        assert_eq!(
            (e[3].service.as_str(), e[3].message.as_str()),
            ("legacy", "old format")
        );
    }

    #[test]
    fn protobuf_push_with_snappy() {
        let req = pb::PushRequest {
            streams: vec![pb::StreamAdapter {
                labels: r#"{app="api", detected_level="error"}"#.into(),
                entries: vec![
                    pb::EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: ns(2) / 1_000_000_000,
                            nanos: 42,
                        }),
                        line: "boom".into(),
                        structured_metadata: vec![pb::LabelPairAdapter {
                            name: "pod".into(),
                            value: "api-1".into(),
                        }],
                    },
                    pb::EntryAdapter {
                        // Older than the retention: refused, the first is kept.
                        timestamp: Some(prost_types::Timestamp {
                            seconds: ns(3 * 86400) / 1_000_000_000,
                            nanos: 0,
                        }),
                        line: "ancient".into(),
                        structured_metadata: vec![],
                    },
                ],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let d = decode(&body, Some("application/x-protobuf"), 1 << 20, &opts()).unwrap();
        assert_eq!(d.events.len(), 1);
        let e = &d.events[0];
        assert_eq!(
            (e.service.as_str(), e.level.as_str(), e.message.as_str()),
            ("api", "error", "boom")
        );
        assert_eq!(e.ts_nanos(), ns(2));
        assert_eq!(e.fields["pod"].to_text(), "api-1");
        assert_eq!(
            d.entry_rejects(),
            vec![EntryReject {
                stream: 1,
                entry: 2,
                error: d.rejects[0].error.clone()
            }]
        );
        assert!(
            d.rejects[0].error.contains("older than the retention"),
            "{}",
            d.rejects[0].error
        );
        // Too large once decompressed.
        assert!(matches!(
            decode(&body, Some("application/x-protobuf"), 10, &opts()),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_requests_and_bad_entries() {
        assert!(matches!(
            decode(
                b"\x00\x01garbage",
                Some("application/x-protobuf"),
                1 << 20,
                &opts()
            ),
            Err(DecodeError::Protobuf(_))
        ));
        assert!(matches!(
            decode(b"{", Some("application/json"), 1 << 20, &opts()),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(b"{}", Some("application/json"), 1 << 20, &opts()),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(b"x", Some("text/plain"), 1 << 20, &opts()),
            Err(DecodeError::ContentType(_))
        ));
        let body = serde_json::json!({"streams": [{"stream": {"app": "a"}, "values": [["x"], [ns(1).to_string(), "fine"], [ns(1).to_string(), "bad level"]]},
            {"labels": "not a selector", "entries": [{"ts": "2026-11-26T11:59:00Z", "line": "x"}]}]});
        let mut body = body;
        body["streams"][0]["values"][2] =
            serde_json::json!([ns(1).to_string(), "m", {"level": "banana"}]);
        let d = decode(body.to_string().as_bytes(), None, 1 << 20, &opts()).unwrap();
        assert_eq!(d.events.len(), 1);
        let r = d.entry_rejects();
        assert_eq!(
            r.iter().map(|r| (r.stream, r.entry)).collect::<Vec<_>>(),
            vec![(1, 1), (1, 3), (2, 1)]
        );
        assert!(r[1].error.contains("level"), "{}", r[1].error);
    }
}
