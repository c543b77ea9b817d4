//! A flattened object onto the canonical event: aliases, level, service, leftovers as fields.

use serde_json::{Map, Value};

use super::flatten::flatten_into;
use super::time::{check_bounds, parse_timestamp_value};
use super::{FlatRecord, LineError, ParseOptions};
use crate::event::{FieldValue, Fields, Level, LogEvent};
use crate::subject::ServiceName;

/// More fields than this in one event is almost certainly a mistake (a map keyed by ids).
pub const MAX_FIELDS: usize = 256;

/// Input field names, tried in this order (ASCII case-insensitive) after flattening, so both
/// `{"log.level": "warn"}` and `{"log": {"level": "warn"}}` match `log.level`.
pub const TS_ALIASES: &[&str] = &["ts", "timestamp", "time", "@timestamp", "date"];
pub const LEVEL_ALIASES: &[&str] = &["level", "severity", "lvl", "log.level", "loglevel"];
pub const MESSAGE_ALIASES: &[&str] = &["message", "msg", "log", "body", "text"];
pub const SERVICE_ALIASES: &[&str] = &["service", "app", "service.name", "application"];
pub const TRACE_ID_ALIASES: &[&str] = &["trace_id", "traceid", "trace.id"];
pub const HOST_ALIASES: &[&str] = &["host", "hostname", "host.name"];

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

/// Normalises a flattened object (see [`flatten_json_object`](super::flatten_json_object)) into a [`LogEvent`].
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

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{now, one, opts, reject};
    use crate::parse::{BodyFormat, parse_body};

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
}
