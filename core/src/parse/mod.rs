//! The forgiving parser: whatever shape a log arrives in, it leaves as [`LogEvent`]s.
//!
//! Accepted bodies: one JSON object, a JSON array, NDJSON, or plain text lines. Input is
//! forgiving (field aliases, RFC 3339 or epoch timestamps, level names or numbers, nested objects)
//! and output is canonical. Every line is judged on its own: a bad line becomes a [`Reject`] with
//! its 1-based line number and the valid lines are kept.
//!
//! The stages, one file each: `framing` cuts a body into lines or array elements, `flatten` reads
//! a JSON object into dotted keys in one pass, `normalize` maps aliases onto the canonical event,
//! and `time` reads timestamps and checks their bounds. Decoding a message of the stream is
//! [`crate::message`].

mod borrowed;
mod each;
mod flatten;
mod framing;
mod normalize;
mod time;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::LogEvent;
use crate::subject::ServiceName;

pub use borrowed::{BorrowedEvent, FlatFields, Scalar, read_flat_line};
pub use each::{AnyEvent, parse_body_each};
pub use flatten::{FlatRecord, flatten_json_object};
pub use framing::{BodyFormat, UnsupportedContentType, extract_rejected, parse_body};
pub use normalize::{
    HOST_ALIASES, LEVEL_ALIASES, MAX_FIELDS, MESSAGE_ALIASES, SERVICE_ALIASES, TRACE_ID_ALIASES,
    TS_ALIASES, normalize_flat, normalize_object, text_event,
};
pub use time::parse_timestamp_str;

/// A line (or a JSON body) longer than this is rejected, never truncated.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Accepted clock skew for timestamps in the future.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(10 * 60);

/// Context for normalising: defaults and bounds that do not come from the event itself.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Service for events that name none (`?service=`, or the subject's token).
    pub default_service: Option<ServiceName>,
    /// Time of receipt: the timestamp of events without one, and the reference for bounds.
    pub received_at: DateTime<Utc>,
    pub max_line_bytes: usize,
    /// Events older than this (relative to `received_at`) are rejected: they would land in
    /// buckets that have already expired.
    pub max_age: Option<Duration>,
    pub max_future: Duration,
}

impl ParseOptions {
    pub fn new(received_at: DateTime<Utc>) -> ParseOptions {
        ParseOptions {
            default_service: None,
            received_at,
            max_line_bytes: MAX_LINE_BYTES,
            max_age: None,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }

    pub fn with_default_service(mut self, service: Option<ServiceName>) -> ParseOptions {
        self.default_service = service;
        self
    }

    pub fn with_max_age(mut self, max_age: Option<Duration>) -> ParseOptions {
        self.max_age = max_age;
        self
    }
}

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// 1-based line number; for a JSON array, the 1-based position of the element.
    pub line: usize,
    pub error: String,
    /// A stable, low-cardinality code for metrics (`invalid_json`, `field`, …).
    #[serde(skip)]
    pub reason: &'static str,
}

/// Why a single line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line is {len} bytes, over the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error("invalid UTF-8 at byte {at}")]
    InvalidUtf8 { at: usize },
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("expected a JSON object or string, found {0}")]
    NotAnObject(&'static str),
    #[error("empty JSON object")]
    EmptyObject,
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
    #[error("too many fields ({count}, the limit is {max})")]
    TooManyFields { count: usize, max: usize },
}

impl LineError {
    /// Every [`LineError::code`], for initialising metric label values.
    pub const CODES: [&'static str; 7] = [
        "too_long",
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "empty_object",
        "invalid_field",
        "too_many_fields",
    ];

    /// Stable code for metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            LineError::TooLong { .. } => "too_long",
            LineError::InvalidUtf8 { .. } => "invalid_utf8",
            LineError::InvalidJson(_) => "invalid_json",
            LineError::NotAnObject(_) => "not_an_object",
            LineError::EmptyObject => "empty_object",
            LineError::Field { .. } => "invalid_field",
            LineError::TooManyFields { .. } => "too_many_fields",
        }
    }

    fn field(field: &str, problem: impl Into<String>) -> LineError {
        LineError::Field {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

/// What came out of a body.
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<LogEvent>,
    pub rejects: Vec<Reject>,
}

impl Parsed {
    fn reject(&mut self, line: usize, err: LineError) {
        self.rejects.push(Reject {
            line,
            error: err.to_string(),
            reason: err.code(),
        });
    }

    fn push(&mut self, line: usize, result: Result<LogEvent, LineError>) {
        match result {
            Ok(ev) => self.events.push(ev),
            Err(e) => self.reject(line, e),
        }
    }
}

fn json_error(e: serde_json::Error) -> LineError {
    LineError::InvalidJson(e.to_string())
}

/// What the stages' tests share: a fixed "now" and bodies expected to give one event or one reject.
#[cfg(test)]
mod test_support {
    use chrono::{DateTime, Utc};

    use super::{BodyFormat, ParseOptions, Reject, parse_body};
    use crate::event::LogEvent;

    pub(super) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(super) fn opts() -> ParseOptions {
        ParseOptions::new(now())
    }

    pub(super) fn one(body: &str, format: BodyFormat) -> LogEvent {
        let p = parse_body(body.as_bytes(), format, &opts());
        assert!(p.rejects.is_empty(), "unexpected rejects: {:?}", p.rejects);
        assert_eq!(p.events.len(), 1);
        p.events.into_iter().next().unwrap()
    }

    pub(super) fn reject(body: &[u8], format: BodyFormat) -> Reject {
        let p = parse_body(body, format, &opts());
        assert!(p.events.is_empty(), "unexpected events: {:?}", p.events);
        assert_eq!(p.rejects.len(), 1, "{:?}", p.rejects);
        p.rejects.into_iter().next().unwrap()
    }
}
