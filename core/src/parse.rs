//! The forgiving parser: whatever shape a log arrives in, it leaves as [`LogEvent`]s.
//!
//! Accepted bodies: one JSON object, a JSON array, NDJSON, or plain text lines. Input is
//! forgiving (field aliases, RFC 3339 or epoch timestamps, level names or numbers, nested objects)
//! and output is canonical. Every line is judged on its own: a bad line becomes a [`Reject`] with
//! its 1-based line number and the valid lines are kept.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{FieldValue, Fields, Level, LogEvent};
use crate::subject::ServiceName;

/// A line (or a JSON body) longer than this is rejected, never truncated.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// More fields than this in one event is almost certainly a mistake (a map keyed by ids).
pub const MAX_FIELDS: usize = 256;
/// Accepted clock skew for timestamps in the future.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(10 * 60);

/// Input field names, tried in this order (ASCII case-insensitive) after flattening, so both
/// `{"log.level": "warn"}` and `{"log": {"level": "warn"}}` match `log.level`.
pub const TS_ALIASES: &[&str] = &["ts", "timestamp", "time", "@timestamp", "date"];
pub const LEVEL_ALIASES: &[&str] = &["level", "severity", "lvl", "log.level", "loglevel"];
pub const MESSAGE_ALIASES: &[&str] = &["message", "msg", "log", "body", "text"];
pub const SERVICE_ALIASES: &[&str] = &["service", "app", "service.name", "application"];
pub const TRACE_ID_ALIASES: &[&str] = &["trace_id", "traceid", "trace.id"];
pub const HOST_ALIASES: &[&str] = &["host", "hostname", "host.name"];

/// How to read a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object or a JSON array of objects (or NDJSON sent as `application/json`).
    Json,
    /// One JSON object (or a bare JSON string) per line.
    Ndjson,
    /// One message per line.
    Text,
    /// Decide per line: a line starting with `{` is JSON, anything else is text. This is how
    /// raw `nats pub` payloads are read, since they carry no content type.
    Auto,
}

/// A content type logjet cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported content type {0:?}: send application/json, application/x-ndjson or text/plain"
)]
pub struct UnsupportedContentType(pub String);

impl BodyFormat {
    /// Picks the format from a `Content-Type` header; a missing header means [`BodyFormat::Auto`].
    pub fn from_content_type(ct: Option<&str>) -> Result<BodyFormat, UnsupportedContentType> {
        let Some(ct) = ct else {
            return Ok(BodyFormat::Auto);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "text/json" => Ok(BodyFormat::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-lines"
            | "application/jsonlines" => Ok(BodyFormat::Ndjson),
            "text/plain" => Ok(BodyFormat::Text),
            "" => Ok(BodyFormat::Auto),
            _ => Err(UnsupportedContentType(ct.to_string())),
        }
    }
}

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

/// Parses a whole body. Never panics and never fails as a whole: the worst outcome is no events
/// and one reject per line.
pub fn parse_body(body: &[u8], format: BodyFormat, opts: &ParseOptions) -> Parsed {
    let mut out = Parsed::default();
    let trimmed = body.trim_ascii();
    match format {
        BodyFormat::Json => {
            if trimmed.first() == Some(&b'[') {
                parse_json_array(trimmed, opts, &mut out);
            } else if trimmed.first() == Some(&b'{') && !has_inner_newline(trimmed) {
                if trimmed.len() > opts.max_line_bytes {
                    out.reject(
                        1,
                        LineError::TooLong {
                            len: trimmed.len(),
                            max: opts.max_line_bytes,
                        },
                    );
                } else {
                    out.push(1, parse_json_line(trimmed, opts));
                }
            } else if trimmed.first() == Some(&b'{') {
                // A pretty-printed object, or NDJSON sent as application/json: try the first,
                // fall back to the second.
                match serde_json::from_slice::<Map<String, Value>>(trimmed) {
                    Ok(map) if trimmed.len() <= opts.max_line_bytes => {
                        out.push(1, normalize_object(map, opts))
                    }
                    _ => parse_lines(body, LineMode::Json, opts, &mut out),
                }
            } else {
                parse_lines(body, LineMode::Json, opts, &mut out);
            }
        }
        BodyFormat::Ndjson => parse_lines(body, LineMode::Json, opts, &mut out),
        BodyFormat::Text => parse_lines(body, LineMode::Text, opts, &mut out),
        BodyFormat::Auto => {
            if trimmed.first() == Some(&b'[') {
                parse_json_array(trimmed, opts, &mut out);
            } else if trimmed.first() == Some(&b'{') && has_inner_newline(trimmed) {
                match serde_json::from_slice::<Map<String, Value>>(trimmed) {
                    Ok(map) if trimmed.len() <= opts.max_line_bytes => {
                        out.push(1, normalize_object(map, opts))
                    }
                    _ => parse_lines(body, LineMode::Auto, opts, &mut out),
                }
            } else {
                parse_lines(body, LineMode::Auto, opts, &mut out);
            }
        }
    }
    out
}

fn has_inner_newline(b: &[u8]) -> bool {
    memchr_newline(b).is_some()
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineMode {
    Json,
    Text,
    Auto,
}

fn parse_lines(body: &[u8], mode: LineMode, opts: &ParseOptions, out: &mut Parsed) {
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > opts.max_line_bytes {
            out.reject(
                line_no,
                LineError::TooLong {
                    len: raw.len(),
                    max: opts.max_line_bytes,
                },
            );
            continue;
        }
        let line = raw.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let is_json = match mode {
            LineMode::Json => true,
            LineMode::Text => false,
            LineMode::Auto => line[0] == b'{',
        };
        if is_json {
            out.push(line_no, parse_json_line(line, opts));
        } else {
            match std::str::from_utf8(raw) {
                Ok(text) => out.events.push(text_event(text.trim_end(), opts)),
                Err(e) => out.reject(
                    line_no,
                    LineError::InvalidUtf8 {
                        at: e.valid_up_to(),
                    },
                ),
            }
        }
    }
}

fn parse_json_line(line: &[u8], opts: &ParseOptions) -> Result<LogEvent, LineError> {
    if line.first() == Some(&b'{') {
        // The common case, read in one pass (see `flatten_json_object`).
        return normalize_flat(flatten_json_object(line)?, opts);
    }
    if let Err(e) = std::str::from_utf8(line) {
        return Err(LineError::InvalidUtf8 {
            at: e.valid_up_to(),
        });
    }
    let value: Value = serde_json::from_slice(line).map_err(json_error)?;
    value_to_event(value, opts)
}

fn json_error(e: serde_json::Error) -> LineError {
    LineError::InvalidJson(e.to_string())
}

/// A JSON object as the normaliser reads it: nested objects as dotted keys, arrays as their JSON
/// text, nulls dropped, scalars kept; in document order.
pub type FlatRecord = Vec<(String, Value)>;

/// Reads one JSON object straight into a [`FlatRecord`], without building a `Value` tree and its
/// maps first: on ingest's hot path that tree was most of the cost of a line. The result is what
/// [`normalize_object`] would flatten the same object to (a repeated key keeps its last value),
/// in document order. Invalid UTF-8 is reported as such, with its position.
pub fn flatten_json_object(line: &[u8]) -> Result<FlatRecord, LineError> {
    let mut flat = FlatRecord::with_capacity(16);
    let mut de = serde_json::Deserializer::from_slice(line);
    let keys = serde::de::DeserializeSeed::deserialize(
        flat::Object {
            prefix: None,
            top: true,
            out: &mut flat,
        },
        &mut de,
    )
    .and_then(|keys| de.end().map(|()| keys))
    .map_err(|e| match std::str::from_utf8(line) {
        Err(u) => LineError::InvalidUtf8 {
            at: u.valid_up_to(),
        },
        Ok(_) => json_error(e),
    })?;
    if keys == 0 {
        return Err(LineError::EmptyObject);
    }
    drop_repeated_keys(&mut flat);
    Ok(flat)
}

/// An object that repeats a key means its last value, as a map would read it.
fn drop_repeated_keys(flat: &mut FlatRecord) {
    // Few fields (the common case): comparing pairs is cheaper than hashing, and most pairs
    // differ in length. Many fields: a set, so a hostile line cannot make this quadratic.
    if flat.len() <= 32 {
        let mut i = 0;
        while i < flat.len() {
            if flat[i + 1..].iter().any(|(k, _)| *k == flat[i].0) {
                flat.remove(i);
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(flat.len());
    let mut keep: Vec<bool> = flat
        .iter()
        .rev()
        .map(|(k, _)| seen.insert(k.clone()))
        .collect();
    keep.reverse();
    let mut keep = keep.into_iter();
    flat.retain(|_| keep.next().unwrap_or(true));
}

/// The serde visitors behind [`flatten_json_object`].
mod flat {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    /// An object whose keys go under `prefix`; yields its number of keys.
    pub(super) struct Object<'a> {
        pub prefix: Option<&'a str>,
        /// The event's top level, where `fields` holds fields already (no `fields.` prefix).
        pub top: bool,
        pub out: &'a mut Vec<(String, Value)>,
    }

    impl<'de> DeserializeSeed<'de> for Object<'_> {
        type Value = usize;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Object<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut keys = 0;
            while let Some(key) = map.next_key::<String>()? {
                keys += 1;
                let fields = self.top && key == "fields";
                let key = match self.prefix {
                    Some(p) => format!("{p}.{key}"),
                    None => key,
                };
                map.next_value_seed(Member {
                    key,
                    fields,
                    out: self.out,
                })?;
            }
            Ok(keys)
        }
    }

    /// The value of one member, stored under `key`.
    struct Member<'a> {
        key: String,
        fields: bool,
        out: &'a mut Vec<(String, Value)>,
    }

    impl<'de> DeserializeSeed<'de> for Member<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl Member<'_> {
        fn push(self, v: Value) {
            self.out.push((self.key, v));
        }
    }

    impl<'de> Visitor<'de> for Member<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<(), E> {
            self.push(Value::Bool(v));
            Ok(())
        }
        fn visit_i64<E>(self, v: i64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_u64<E>(self, v: u64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_f64<E>(self, v: f64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.push(Value::String(v.to_owned()));
            Ok(())
        }
        fn visit_string<E>(self, v: String) -> Result<(), E> {
            self.push(Value::String(v));
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
            let text = serde_json::to_string(&Value::Array(items)).unwrap_or_default();
            self.push(Value::String(text));
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
            let prefix = (!self.fields).then_some(self.key.as_str());
            Object {
                prefix,
                top: false,
                out: self.out,
            }
            .visit_map(map)
            .map(|_| ())
        }
    }
}

fn value_to_event(value: Value, opts: &ParseOptions) -> Result<LogEvent, LineError> {
    match value {
        Value::Object(map) => normalize_object(map, opts),
        Value::String(s) => Ok(text_event(&s, opts)),
        Value::Array(_) => Err(LineError::NotAnObject("an array")),
        Value::Number(_) => Err(LineError::NotAnObject("a number")),
        Value::Bool(_) => Err(LineError::NotAnObject("a boolean")),
        Value::Null => Err(LineError::NotAnObject("null")),
    }
}

fn parse_json_array(body: &[u8], opts: &ParseOptions, out: &mut Parsed) {
    if let Err(e) = std::str::from_utf8(body) {
        out.reject(
            1,
            LineError::InvalidUtf8 {
                at: e.valid_up_to(),
            },
        );
        return;
    }
    // RawValue keeps each element separate, so one bad element does not sink the others.
    let elements: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            out.reject(e.line().max(1), json_error(e));
            return;
        }
    };
    for (i, raw) in elements.into_iter().enumerate() {
        let pos = i + 1;
        let text = raw.get();
        if text.len() > opts.max_line_bytes {
            out.reject(
                pos,
                LineError::TooLong {
                    len: text.len(),
                    max: opts.max_line_bytes,
                },
            );
            continue;
        }
        let result = serde_json::from_str::<Value>(text)
            .map_err(json_error)
            .and_then(|v| value_to_event(v, opts));
        out.push(pos, result);
    }
}

/// How a message on `logs.<service>` is read, for every reader (processor, tail, history): the
/// subject's token is the default service and the time JetStream stored the message is the time
/// of receipt, so every reader, and every redelivery, decodes the very same events.
pub fn message_options(subject: &str, published: DateTime<Utc>, max_age: Duration) -> ParseOptions {
    ParseOptions::new(published)
        .with_default_service(ServiceName::from_subject(subject))
        .with_max_age(Some(max_age))
}

/// Decodes a stream message into full events. `canonical` is true for ingest's batches
/// (`Logjet-Format: canonical-ndjson`): their lines deserialize directly, and a line that does not
/// falls back to the forgiving parser.
pub fn decode_message(payload: &[u8], canonical: bool, opts: &ParseOptions) -> Parsed {
    if !canonical {
        return parse_body(payload, BodyFormat::Auto, opts);
    }
    let mut out = Parsed::default();
    for (i, line) in payload.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<LogEvent>(line) {
            Ok(ev) if ServiceName::parse_strict(&ev.service).is_ok() => out.events.push(ev),
            _ => {
                let sub = parse_body(line, BodyFormat::Auto, opts);
                out.events.extend(sub.events);
                out.rejects.extend(sub.rejects.into_iter().map(|mut r| {
                    r.line = i + 1;
                    r
                }));
            }
        }
    }
    out
}

/// The original text of rejected lines (or array elements), one per line: what a dead letter
/// carries, so that replaying it after a fix re-sends exactly what was refused and nothing that
/// was already counted.
pub fn extract_rejected(payload: &[u8], rejects: &[Reject]) -> Vec<u8> {
    let mut wanted: Vec<usize> = rejects.iter().map(|r| r.line).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let trimmed = payload.trim_ascii();
    let mut out = Vec::new();
    if trimmed.first() == Some(&b'[')
        && let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(trimmed)
    {
        for n in wanted {
            if let Some(e) = elements.get(n.wrapping_sub(1)) {
                out.extend_from_slice(e.get().as_bytes());
                out.push(b'\n');
            }
        }
        return out;
    }
    let lines: Vec<&[u8]> = payload.split(|&b| b == b'\n').collect();
    for n in wanted {
        if let Some(l) = lines.get(n.wrapping_sub(1)) {
            out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
            out.push(b'\n');
        }
    }
    out
}

/// A plain-text line: the line is the message; the level is detected from it.
pub fn text_event(line: &str, opts: &ParseOptions) -> LogEvent {
    LogEvent {
        ts: opts.received_at,
        service: opts.default_service.as_ref().map_or_else(
            || crate::subject::UNKNOWN_SERVICE.to_string(),
            |s| s.to_string(),
        ),
        level: Level::detect(line).unwrap_or(Level::Info),
        message: line.to_string(),
        fields: Fields::new(),
        trace_id: None,
        host: None,
    }
}

/// Normalises one JSON object into a [`LogEvent`].
pub fn normalize_object(
    map: Map<String, Value>,
    opts: &ParseOptions,
) -> Result<LogEvent, LineError> {
    if map.is_empty() {
        return Err(LineError::EmptyObject);
    }
    let mut flat: FlatRecord = Vec::with_capacity(map.len() + 4);
    for (key, value) in map {
        // A canonical event's `fields` object holds fields already: no `fields.` prefix, so
        // canonical events survive a trip through this parser unchanged.
        if key == "fields" {
            if let Value::Object(inner) = value {
                for (k, v) in inner {
                    flatten_into(k, v, &mut flat);
                }
                continue;
            }
            flatten_into(key, value, &mut flat);
        } else {
            flatten_into(key, value, &mut flat);
        }
    }
    normalize_flat(flat, opts)
}

/// Normalises a flattened object (see [`flatten_json_object`]) into a [`LogEvent`].
pub fn normalize_flat(mut flat: FlatRecord, opts: &ParseOptions) -> Result<LogEvent, LineError> {
    let ts = match take_alias(&mut flat, TS_ALIASES) {
        Some((field, v)) => {
            let ts = parse_timestamp_value(&v).map_err(|p| LineError::field(&field, p))?;
            check_bounds(ts, opts).map_err(|p| LineError::field(&field, p))?;
            ts
        }
        None => opts.received_at,
    };
    let message = match take_alias(&mut flat, MESSAGE_ALIASES) {
        Some((_, Value::String(s))) => s,
        Some((_, v)) => scalar_text(&v),
        None => String::new(),
    };
    let level = match take_alias(&mut flat, LEVEL_ALIASES) {
        Some((field, v)) => parse_level_value(&v).map_err(|p| LineError::field(&field, p))?,
        None => Level::detect(&message).unwrap_or(Level::Info),
    };
    let service = match take_alias(&mut flat, SERVICE_ALIASES) {
        Some((field, v)) => {
            let raw = scalar_text(&v);
            ServiceName::sanitize(&raw).ok_or_else(|| {
                LineError::field(
                    &field,
                    format!("{raw:?} has no usable characters (allowed: a-z 0-9 _ -)"),
                )
            })?
        }
        None => opts
            .default_service
            .clone()
            .unwrap_or_else(ServiceName::unknown),
    };
    let trace_id = take_alias(&mut flat, TRACE_ID_ALIASES).map(|(_, v)| scalar_text(&v));
    let host = take_alias(&mut flat, HOST_ALIASES).map(|(_, v)| scalar_text(&v));

    if flat.len() > MAX_FIELDS {
        return Err(LineError::TooManyFields {
            count: flat.len(),
            max: MAX_FIELDS,
        });
    }
    let mut fields = Fields::new();
    for (k, v) in flat {
        if let Some(fv) = to_field_value(v) {
            fields.insert(k, fv);
        }
    }
    Ok(LogEvent {
        ts,
        service: service.to_string(),
        level,
        message,
        fields,
        trace_id,
        host,
    })
}

/// Nested objects become dotted keys; arrays are kept as their JSON text (indexing them would
/// let one event create unbounded field names); nulls are dropped. Depth is bounded by
/// serde_json's recursion limit (128), so this recursion is too.
fn flatten_into(prefix: String, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Null => {}
        Value::Array(items) => {
            let text = serde_json::to_string(&Value::Array(items)).unwrap_or_default();
            out.push((prefix, Value::String(text)));
        }
        scalar => out.push((prefix, scalar)),
    }
}

/// Removes and returns the first field matching an alias, in alias priority order.
fn take_alias(flat: &mut Vec<(String, Value)>, aliases: &[&str]) -> Option<(String, Value)> {
    for alias in aliases {
        if let Some(pos) = flat.iter().position(|(k, _)| k.eq_ignore_ascii_case(alias)) {
            return Some(flat.swap_remove(pos));
        }
    }
    None
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_field_value(v: Value) -> Option<FieldValue> {
    match v {
        Value::Bool(b) => Some(FieldValue::Bool(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => FieldValue::Int(i),
            None => FieldValue::Float(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(FieldValue::Str(s)),
        Value::Null => None,
        other => Some(FieldValue::Str(other.to_string())),
    }
}

fn parse_level_value(v: &Value) -> Result<Level, String> {
    match v {
        Value::String(s) => Level::from_name(s).ok_or_else(|| {
            format!("unknown level {s:?} (expected trace, debug, info, warn, error, fatal or a syslog/OpenTelemetry number)")
        }),
        Value::Number(n) => n
            .as_i64()
            .and_then(Level::from_number)
            .ok_or_else(|| format!("unknown level number {n}")),
        other => Err(format!("expected a level name or number, found {}", json_kind(other))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_timestamp_value(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => parse_timestamp_str(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                epoch_int(i)
            } else {
                epoch_float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        other => Err(format!(
            "expected an RFC 3339 string or an epoch number, found {}",
            json_kind(other)
        )),
    }
}

/// RFC 3339 (`2026-11-26T11:48:35.5Z`, `+01:00` offsets), the same with a space for the `T`,
/// a zone-less date-time (read as UTC), or an epoch number written as a string.
pub fn parse_timestamp_str(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(i) = s.parse::<i64>() {
        return epoch_int(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        return epoch_float(f);
    }
    Err(format!(
        "{s:?} is not an RFC 3339 timestamp or an epoch number"
    ))
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude: any
/// timestamp between 1973 and 5138 is unambiguous this way.
fn epoch_int(i: i64) -> Result<DateTime<Utc>, String> {
    let a = i.unsigned_abs();
    let nanos: i128 = if a < 100_000_000_000 {
        i as i128 * 1_000_000_000
    } else if a < 100_000_000_000_000 {
        i as i128 * 1_000_000
    } else if a < 100_000_000_000_000_000 {
        i as i128 * 1_000
    } else {
        i as i128
    };
    i64::try_from(nanos)
        .map(DateTime::from_timestamp_nanos)
        .map_err(|_| format!("epoch {i} is out of range"))
}

fn epoch_float(f: f64) -> Result<DateTime<Utc>, String> {
    if !f.is_finite() {
        return Err("epoch is not a finite number".into());
    }
    let a = f.abs();
    let nanos = if a < 1e11 {
        f * 1e9
    } else if a < 1e14 {
        f * 1e6
    } else if a < 1e17 {
        f * 1e3
    } else {
        f
    };
    if nanos.abs() >= i64::MAX as f64 {
        return Err(format!("epoch {f} is out of range"));
    }
    Ok(DateTime::from_timestamp_nanos(nanos.round() as i64))
}

fn check_bounds(ts: DateTime<Utc>, opts: &ParseOptions) -> Result<(), String> {
    if let Some(max_age) = opts.max_age {
        let oldest = opts.received_at - max_age;
        if ts < oldest {
            return Err(format!(
                "timestamp {} is older than the retention of {} and would never be counted",
                crate::event::format_ts(&ts),
                humantime_secs(max_age)
            ));
        }
    }
    if ts > opts.received_at + opts.max_future {
        return Err(format!(
            "timestamp {} is more than {} in the future",
            crate::event::format_ts(&ts),
            humantime_secs(opts.max_future)
        ));
    }
    Ok(())
}

fn humantime_secs(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn opts() -> ParseOptions {
        ParseOptions::new(now())
    }

    fn one(body: &str, format: BodyFormat) -> LogEvent {
        let p = parse_body(body.as_bytes(), format, &opts());
        assert!(p.rejects.is_empty(), "unexpected rejects: {:?}", p.rejects);
        assert_eq!(p.events.len(), 1);
        p.events.into_iter().next().unwrap()
    }

    fn reject(body: &[u8], format: BodyFormat) -> Reject {
        let p = parse_body(body, format, &opts());
        assert!(p.events.is_empty(), "unexpected events: {:?}", p.events);
        assert_eq!(p.rejects.len(), 1, "{:?}", p.rejects);
        p.rejects.into_iter().next().unwrap()
    }

    #[test]
    fn json_object_with_aliases() {
        let ev = one(
            r#"{"timestamp":"2026-11-26T11:00:00.5+01:00","severity":"WARNING","msg":"slow","app":"Checkout","hostname":"h1","traceId":"t-1","user":{"id":7,"vip":true}}"#,
            BodyFormat::Json,
        );
        assert_eq!(ev.ts.to_rfc3339(), "2026-11-26T10:00:00.500+00:00");
        assert_eq!(ev.level, Level::Warn);
        assert_eq!(ev.message, "slow");
        assert_eq!(ev.service, "checkout");
        assert_eq!(ev.host.as_deref(), Some("h1"));
        assert_eq!(ev.trace_id.as_deref(), Some("t-1"));
        assert_eq!(ev.fields["user.id"], FieldValue::Int(7));
        assert_eq!(ev.fields["user.vip"], FieldValue::Bool(true));
    }

    #[test]
    fn nested_alias_paths_match_after_flattening() {
        let ev = one(
            r#"{"log":{"level":"error"},"service":{"name":"billing"},"message":"x"}"#,
            BodyFormat::Json,
        );
        assert_eq!(ev.level, Level::Error);
        assert_eq!(ev.service, "billing");
        assert!(ev.fields.is_empty());
    }

    #[test]
    fn alias_priority_and_leftovers_go_to_fields() {
        let ev = one(r#"{"message":"a","msg":"b"}"#, BodyFormat::Json);
        assert_eq!(ev.message, "a");
        assert_eq!(ev.fields["msg"], FieldValue::Str("b".into()));
    }

    #[test]
    fn arrays_become_json_text_and_nulls_vanish() {
        let ev = one(
            r#"{"message":"x","tags":["a",1],"gone":null}"#,
            BodyFormat::Json,
        );
        assert_eq!(ev.fields["tags"], FieldValue::Str(r#"["a",1]"#.into()));
        assert!(!ev.fields.contains_key("gone"));
    }

    #[test]
    fn canonical_event_round_trips_through_the_parser() {
        let ev = one(
            r#"{"ts":"2026-11-26T11:59:00.000000001Z","service":"api","level":"error","message":"boom","fields":{"http.status":500,"a":"b"},"trace_id":"abc"}"#,
            BodyFormat::Auto,
        );
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            json,
            r#"{"ts":"2026-11-26T11:59:00.000000001Z","service":"api","level":"error","message":"boom","fields":{"a":"b","http.status":500},"trace_id":"abc"}"#
        );
    }

    #[test]
    fn timestamps_rfc3339_and_every_epoch_unit() {
        let expect = "2026-11-26T11:00:00Z";
        for ts in [
            r#""2026-11-26T11:00:00Z""#,
            r#""2026-11-26 11:00:00""#,
            r#""2026-11-26T11:00:00""#,
            "1795690800",
            "1795690800.0",
            "1795690800000",
            "1795690800000000",
            "1795690800000000000",
            r#""1795690800""#,
        ] {
            let ev = one(&format!(r#"{{"ts":{ts},"message":"m"}}"#), BodyFormat::Json);
            assert_eq!(
                ev.ts,
                DateTime::parse_from_rfc3339(expect)
                    .unwrap()
                    .with_timezone(&Utc),
                "input {ts}"
            );
        }
    }

    #[test]
    fn missing_timestamp_is_receipt_time_and_missing_service_is_default() {
        let o = opts().with_default_service(ServiceName::sanitize("web"));
        let p = parse_body(br#"{"message":"hi"}"#, BodyFormat::Json, &o);
        assert_eq!(p.events[0].ts, now());
        assert_eq!(p.events[0].service, "web");
        let p = parse_body(br#"{"message":"hi"}"#, BodyFormat::Json, &opts());
        assert_eq!(p.events[0].service, "unknown");
    }

    #[test]
    fn level_numbers_and_detection() {
        assert_eq!(
            one(r#"{"level":17,"message":"m"}"#, BodyFormat::Json).level,
            Level::Error
        );
        assert_eq!(
            one(r#"{"message":"ERROR db down"}"#, BodyFormat::Json).level,
            Level::Error
        );
        assert_eq!(
            one(r#"{"message":"all good"}"#, BodyFormat::Json).level,
            Level::Info
        );
    }

    #[test]
    fn json_array_keeps_good_elements() {
        let p = parse_body(
            br#"[{"message":"a"}, 42, "plain text", {"message":"b","level":"nope"}]"#,
            BodyFormat::Json,
            &opts(),
        );
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[1].message, "plain text");
        assert_eq!(p.rejects.len(), 2);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.contains("a number"));
        assert_eq!(p.rejects[1].line, 4);
        assert!(
            p.rejects[1].error.contains("field `level`"),
            "{}",
            p.rejects[1].error
        );
    }

    #[test]
    fn ndjson_reports_the_bad_line_and_keeps_the_rest() {
        let body = b"{\"message\":\"a\"}\n{\"message\": oops}\n\n{\"message\":\"c\"}\r\n";
        let p = parse_body(body, BodyFormat::Ndjson, &opts());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.starts_with("invalid JSON"));
    }

    #[test]
    fn ndjson_sent_as_application_json_is_accepted() {
        let p = parse_body(
            b"{\"message\":\"a\"}\n{\"message\":\"b\"}",
            BodyFormat::Json,
            &opts(),
        );
        assert_eq!(p.events.len(), 2);
        assert!(p.rejects.is_empty());
    }

    #[test]
    fn pretty_printed_json_object() {
        let ev = one(
            "{\n  \"message\": \"a\",\n  \"level\": \"warn\"\n}\n",
            BodyFormat::Json,
        );
        assert_eq!(ev.level, Level::Warn);
    }

    #[test]
    fn text_lines_and_auto_mode() {
        let p = parse_body(b"disk full\nERROR boom\n", BodyFormat::Text, &opts());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[0].message, "disk full");
        assert_eq!(p.events[1].level, Level::Error);
        let p = parse_body(
            b"{\"level\":\"warn\",\"message\":\"j\"}\nplain\n",
            BodyFormat::Auto,
            &opts(),
        );
        assert_eq!(p.events[0].level, Level::Warn);
        assert_eq!(p.events[1].message, "plain");
        // In text mode a JSON-looking line is just text.
        let p = parse_body(b"{\"a\":1}", BodyFormat::Text, &opts());
        assert_eq!(p.events[0].message, "{\"a\":1}");
    }

    #[test]
    fn content_types() {
        assert_eq!(BodyFormat::from_content_type(None), Ok(BodyFormat::Auto));
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson")),
            Ok(BodyFormat::Ndjson)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("text/plain")),
            Ok(BodyFormat::Text)
        );
        assert!(BodyFormat::from_content_type(Some("application/x-www-form-urlencoded")).is_err());
    }

    // --- every reject reason ---

    #[test]
    fn reject_line_too_long() {
        let mut o = opts();
        o.max_line_bytes = 10;
        let p = parse_body(b"short\nthis line is too long\n", BodyFormat::Text, &o);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.contains("over the limit"));
        let p = parse_body(br#"{"message":"0123456789"}"#, BodyFormat::Json, &o);
        assert!(p.rejects[0].error.contains("over the limit"));
    }

    #[test]
    fn reject_invalid_utf8() {
        let r = reject(b"ok?\xff\xfe", BodyFormat::Text);
        assert_eq!(r.error, "invalid UTF-8 at byte 3");
        let r = reject(b"{\"message\":\"\xff\"}", BodyFormat::Ndjson);
        assert!(r.error.contains("invalid UTF-8"));
    }

    #[test]
    fn reject_invalid_json() {
        let r = reject(b"{\"message\":", BodyFormat::Json);
        assert!(r.error.starts_with("invalid JSON"), "{}", r.error);
        let r = reject(b"[1,", BodyFormat::Json);
        assert!(r.error.starts_with("invalid JSON"), "{}", r.error);
    }

    #[test]
    fn reject_deep_nesting_without_overflowing_the_stack() {
        let body = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let r = reject(body.as_bytes(), BodyFormat::Json);
        assert!(r.error.contains("recursion limit"), "{}", r.error);
        let arr = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = reject(arr.as_bytes(), BodyFormat::Json);
        assert!(r.error.contains("recursion limit"), "{}", r.error);
    }

    #[test]
    fn reject_non_objects() {
        assert!(reject(b"42", BodyFormat::Ndjson).error.contains("a number"));
        assert!(
            reject(b"[1]\n", BodyFormat::Ndjson)
                .error
                .contains("an array")
        );
        assert!(reject(b"null", BodyFormat::Ndjson).error.contains("null"));
        assert!(
            reject(b"true", BodyFormat::Ndjson)
                .error
                .contains("a boolean")
        );
    }

    #[test]
    fn reject_empty_object() {
        assert_eq!(reject(b"{}", BodyFormat::Json).error, "empty JSON object");
    }

    #[test]
    fn reject_bad_timestamp() {
        let r = reject(br#"{"time":"yesterday","message":"m"}"#, BodyFormat::Json);
        assert!(r.error.starts_with("field `time`:"), "{}", r.error);
        let r = reject(br#"{"ts":true,"message":"m"}"#, BodyFormat::Json);
        assert!(r.error.contains("found a boolean"), "{}", r.error);
    }

    #[test]
    fn reject_timestamp_out_of_bounds() {
        let o = opts().with_max_age(Some(Duration::from_secs(24 * 3600)));
        let p = parse_body(
            br#"{"ts":"2026-11-24T00:00:00Z","message":"old"}"#,
            BodyFormat::Json,
            &o,
        );
        assert!(
            p.rejects[0]
                .error
                .contains("older than the retention of 1day"),
            "{}",
            p.rejects[0].error
        );
        let p = parse_body(
            br#"{"ts":"2026-11-27T00:00:00Z","message":"future"}"#,
            BodyFormat::Json,
            &o,
        );
        assert!(p.rejects[0].error.contains("in the future"));
        let p = parse_body(
            br#"{"ts":"2026-11-26T00:00:00Z","message":"late but fine"}"#,
            BodyFormat::Json,
            &o,
        );
        assert_eq!(p.events.len(), 1);
    }

    #[test]
    fn reject_bad_level() {
        let r = reject(br#"{"level":"banana","message":"m"}"#, BodyFormat::Json);
        assert!(
            r.error.starts_with("field `level`: unknown level"),
            "{}",
            r.error
        );
        let r = reject(br#"{"lvl":999,"message":"m"}"#, BodyFormat::Json);
        assert!(r.error.starts_with("field `lvl`"), "{}", r.error);
    }

    #[test]
    fn reject_unusable_service() {
        let r = reject(br#"{"service":"***","message":"m"}"#, BodyFormat::Json);
        assert!(r.error.starts_with("field `service`"), "{}", r.error);
    }

    #[test]
    fn reject_too_many_fields() {
        let obj: String = (0..300).map(|i| format!("\"k{i}\":{i},")).collect();
        let body = format!("{{{obj}\"message\":\"m\"}}");
        assert!(
            reject(body.as_bytes(), BodyFormat::Json)
                .error
                .starts_with("too many fields")
        );
    }

    #[test]
    fn extract_rejected_lines_and_elements() {
        let body = b"{\"message\":\"ok\"}\n{bad\nfine\n{worse\n";
        let p = parse_body(body, BodyFormat::Auto, &opts());
        assert_eq!(extract_rejected(body, &p.rejects), b"{bad\n{worse\n");
        let arr = br#"[{"message":"ok"}, 5, {"message":"x","level":"nope"}]"#;
        let p = parse_body(arr, BodyFormat::Auto, &opts());
        assert_eq!(
            extract_rejected(arr, &p.rejects),
            b"5\n{\"message\":\"x\",\"level\":\"nope\"}\n"
        );
    }

    #[test]
    fn floats_survive_the_canonical_round_trip() {
        // Found by fuzzing: without exact float parsing, a value re-read from ingest's canonical
        // line by the processor could differ in its last digit.
        let ev = one(
            r#"{"message":"m","x":179569800E124,"y":0.1,"z":1e-300}"#,
            BodyFormat::Json,
        );
        let back = one(&serde_json::to_string(&ev).unwrap(), BodyFormat::Ndjson);
        assert_eq!(back, ev);
    }

    #[test]
    fn empty_bodies_give_nothing() {
        let p = parse_body(b"  \n\n", BodyFormat::Ndjson, &opts());
        assert!(p.events.is_empty() && p.rejects.is_empty());
    }

    #[test]
    fn one_pass_flattening_reads_objects_as_the_map_normaliser_does() {
        let lines = [
            r#"{"ts":"2026-11-26T11:59:00Z","service":"api","level":"warn","message":"m","a":1}"#,
            r#"{"log":{"level":"ERROR"},"msg":"x","http":{"status":503,"path":"/a","ok":false}}"#,
            r#"{"message":"t","tags":["a",1,{"b":null}],"gone":null,"big":18446744073709551615}"#,
            r#"{"fields":{"order_id":"A-17","n":{"x":1.5}},"service.name":"Pay Svc","time":1764158340}"#,
            r#"{"severity":17,"body":{"k":"v"},"trace":{"id":"abc"},"host":{"name":"h1"}}"#,
            r#"{"msg":"esc \"q\" \u00e9 \ud83d\ude00","empty":{},"f":-0.25,"e":1e3}"#,
            r#"{"fields":"not an object","message":"m"}"#,
            r#"{"level":"nope"}"#,
            r#"{"ts":true}"#,
            r#"{"x":0,"level":"info","x":1,"msg":"a","level":"error","x":2}"#,
        ];
        for line in lines {
            let map: Map<String, Value> = serde_json::from_str(line).unwrap();
            let via_map = normalize_object(map, &opts());
            let one_pass =
                flatten_json_object(line.as_bytes()).and_then(|f| normalize_flat(f, &opts()));
            assert_eq!(one_pass, via_map, "{line}");
        }
    }

    #[test]
    fn repeated_keys_keep_their_last_value_without_quadratic_work() {
        let mut line = String::from("{\"message\":\"m\"");
        for i in 0..20_000 {
            line.push_str(&format!(",\"k{}\":{i}", i % 100));
        }
        line.push('}');
        let flat = flatten_json_object(line.as_bytes()).unwrap();
        assert_eq!(flat.len(), 101);
        assert!(flat.contains(&("k7".to_string(), Value::from(19_907))));
        let ev = normalize_flat(flat, &opts()).unwrap();
        assert_eq!(ev.fields.len(), 100);
    }

    #[test]
    fn one_pass_flattening_reports_errors_like_the_value_parser() {
        assert_eq!(flatten_json_object(b"{}"), Err(LineError::EmptyObject));
        assert_eq!(
            flatten_json_object(b"{\"a\":\"\xff\"}"),
            Err(LineError::InvalidUtf8 { at: 6 })
        );
        for bad in [&b"{\"a\":1"[..], b"{\"a\":1} x", b"{\"a\" 1}", b"{1:2}"] {
            let want = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(flatten_json_object(bad), Err(LineError::InvalidJson(want)));
        }
    }
}
