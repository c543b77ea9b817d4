//! MessagePack bodies, as Fluent Bit's `http` output sends them with `format msgpack` (its
//! default): `POST /logs` with `Content-Type: application/msgpack`.
//!
//! The body is a sequence of Fluent Bit events, one after the other (no enclosing array), each
//! one of:
//! - `[time, record]`: Fluent Bit before 2.1 (and Fluentd's forward "message" entries);
//! - `[[time, metadata], record]`: Fluent Bit 2.1 and later (metadata is a map, often empty);
//! - a bare `record` map.
//!
//! `time` is Fluent Bit's EventTime (msgpack extension type 0: seconds and nanoseconds, two
//! big-endian u32), MessagePack's own timestamp extension (type -1), or an integer/float epoch.
//! As with `format json`, where Fluent Bit writes the event time into each record under `date`
//! (`json_date_key`), the event time becomes `date` unless the record has one; the record's keys
//! (`log`, `message`, `time`, `level`, …) are read by the normaliser like any JSON object.

use std::io::Cursor;

use logjet_core::LogEvent;
use logjet_core::parse::{LineError, ParseOptions, Reject};
use rmpv::Value as Mp;
use serde_json::{Number, Value};

use super::{Record, UNDECODABLE, normalize, record_size, reject, reject_with};

/// Nesting deeper than this is refused (as serde_json's recursion limit does for JSON).
const MAX_DEPTH: usize = 128;

/// `application/msgpack`, `application/x-msgpack` or `application/vnd.msgpack`.
pub fn is_msgpack(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim();
    [
        "application/msgpack",
        "application/x-msgpack",
        "application/vnd.msgpack",
    ]
    .iter()
    .any(|m| mime.eq_ignore_ascii_case(m))
}

/// Decodes and normalises a body of Fluent Bit events; a position is the 1-based index of an
/// event in the body. Undecodable bytes end the body with one reject at that position.
pub fn parse(body: &[u8], opts: &ParseOptions) -> (Vec<LogEvent>, Vec<Reject>) {
    let mut events = Vec::new();
    let mut rejects = Vec::new();
    let mut cursor = Cursor::new(body);
    let mut position = 0;
    while (cursor.position() as usize) < body.len() {
        position += 1;
        let value = match rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_DEPTH) {
            Ok(v) => v,
            Err(e) => {
                rejects.push(reject_with(
                    position,
                    UNDECODABLE,
                    format!("invalid MessagePack: {e}"),
                ));
                break;
            }
        };
        match event_record(value) {
            Ok(record) => {
                let size = record_size(&record);
                match normalize(record, size, position, opts) {
                    Ok(ev) => events.push(ev),
                    Err(r) => rejects.push(r),
                }
            }
            Err(e) => rejects.push(reject(position, &e)),
        }
    }
    (events, rejects)
}

/// One Fluent Bit event as a record, its time under `date`.
fn event_record(value: Mp) -> Result<Record, LineError> {
    let (time, record) = match value {
        Mp::Map(m) => (None, m),
        Mp::Array(mut parts) if parts.len() == 2 => {
            let record = parts.pop().expect("two elements");
            let header = parts.pop().expect("two elements");
            let time = match header {
                // Fluent Bit 2.1+: [time, metadata]
                Mp::Array(mut h) if !h.is_empty() => event_time(&h.swap_remove(0)),
                other => event_time(&other),
            };
            match record {
                Mp::Map(m) => (time, m),
                other => return Err(LineError::NotAnObject(kind(&other))),
            }
        }
        other => return Err(LineError::NotAnObject(kind(&other))),
    };
    let mut out = Record::new();
    for (k, v) in record {
        out.insert(key_text(k), to_json(v));
    }
    if out.is_empty() {
        return Err(LineError::EmptyObject);
    }
    if let Some(ns) = time
        && !out.contains_key("date")
    {
        out.insert("date".into(), Value::Number(ns.into()));
    }
    Ok(out)
}

fn kind(v: &Mp) -> &'static str {
    match v {
        Mp::Nil => "null",
        Mp::Boolean(_) => "a boolean",
        Mp::Integer(_) | Mp::F32(_) | Mp::F64(_) => "a number",
        Mp::String(_) | Mp::Binary(_) => "a string",
        Mp::Array(_) => "an array",
        Mp::Map(_) => "an object",
        Mp::Ext(..) => "an extension value",
    }
}

/// An event time in nanoseconds since the epoch.
fn event_time(v: &Mp) -> Option<i64> {
    match v {
        Mp::Ext(t, data) => ext_time(*t, data),
        Mp::Integer(i) => i.as_i64().map(|s| s.saturating_mul(1_000_000_000)),
        Mp::F64(f) if f.is_finite() => Some((f * 1e9) as i64),
        Mp::F32(f) if f.is_finite() => Some((*f as f64 * 1e9) as i64),
        _ => None,
    }
}

/// Fluent Bit's EventTime (type 0) and MessagePack's timestamp (type -1: 32, 64 or 96 bits).
fn ext_time(t: i8, d: &[u8]) -> Option<i64> {
    let u32_at = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    let (secs, nanos): (i64, i64) = match (t, d.len()) {
        (0, 8) => (u32_at(0) as i64, u32_at(4) as i64),
        (-1, 4) => (u32_at(0) as i64, 0),
        (-1, 8) => {
            let v = u64::from_be_bytes(d.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as i64)
        }
        (-1, 12) => (
            i64::from_be_bytes(d[4..12].try_into().ok()?),
            u32_at(0) as i64,
        ),
        _ => return None,
    };
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn key_text(k: Mp) -> String {
    match k {
        Mp::String(s) => s.into_str().unwrap_or_default(),
        Mp::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        other => other.to_string(),
    }
}

fn to_json(v: Mp) -> Value {
    match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Value::Number(n.into()),
            (None, Some(n)) => Value::Number(n.into()),
            _ => Value::Null,
        },
        Mp::F32(f) => Number::from_f64(f as f64).map_or(Value::Null, Value::Number),
        Mp::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(s.into_str().unwrap_or_default()),
        // Older Fluent Bit versions pack strings as raw bytes.
        Mp::Binary(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        Mp::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        Mp::Map(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect(),
        ),
        Mp::Ext(t, d) => ext_time(t, &d).map_or(Value::Null, |ns| Value::Number(ns.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn encode(values: &[Mp]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            rmpv::encode::write_value(&mut out, v).unwrap();
        }
        out
    }

    fn event_time_ext(secs: u32, nanos: u32) -> Mp {
        let mut d = secs.to_be_bytes().to_vec();
        d.extend_from_slice(&nanos.to_be_bytes());
        Mp::Ext(0, d)
    }

    fn map(pairs: &[(&str, Mp)]) -> Mp {
        Mp::Map(
            pairs
                .iter()
                .map(|(k, v)| (Mp::from(*k), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn fluent_bit_events_old_and_new_format() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let secs = now.timestamp() as u32 - 5;
        let body = encode(&[
            // Fluent Bit < 2.1: [EventTime, record]
            Mp::Array(vec![
                event_time_ext(secs, 250),
                map(&[
                    ("log", Mp::from("ERROR disk full")),
                    ("stream", Mp::from("stderr")),
                ]),
            ]),
            // Fluent Bit >= 2.1: [[EventTime, metadata], record]
            Mp::Array(vec![
                Mp::Array(vec![event_time_ext(secs, 0), Mp::Map(vec![])]),
                map(&[
                    ("message", Mp::from("ok")),
                    ("level", Mp::from("warn")),
                    ("app", Mp::from("web")),
                    ("n", Mp::from(3)),
                ]),
            ]),
            // An integer time, and a bare map.
            Mp::Array(vec![Mp::from(secs), map(&[("log", Mp::from("plain"))])]),
            map(&[("msg", Mp::from("bare"))]),
            // Not an event.
            Mp::from(42),
        ]);
        let opts = ParseOptions::new(now);
        let (events, rejects) = parse(&body, &opts);
        assert_eq!(events.len(), 4, "{rejects:?}");
        assert_eq!(events[0].message, "ERROR disk full");
        assert_eq!(events[0].level.as_str(), "error");
        assert_eq!(
            events[0].ts_nanos(),
            secs as i64 * 1_000_000_000 + 250,
            "EventTime keeps nanoseconds"
        );
        assert_eq!(events[0].fields["stream"].to_text(), "stderr");
        assert_eq!(
            (
                events[1].service.as_str(),
                events[1].level.as_str(),
                events[1].message.as_str()
            ),
            ("web", "warn", "ok")
        );
        assert_eq!(events[1].fields["n"].to_text(), "3");
        assert_eq!(events[2].ts.timestamp(), secs as i64);
        assert_eq!(events[3].ts, now, "no time: time of receipt");
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 5);
    }

    #[test]
    fn truncated_bodies_keep_what_came_before() {
        let mut body = encode(&[map(&[("log", Mp::from("first"))])]);
        body.extend_from_slice(&[0x92, 0xd7]); // an array cut short
        let (events, rejects) = parse(&body, &ParseOptions::new(Utc::now()));
        assert_eq!(events.len(), 1);
        assert_eq!((rejects[0].line, rejects[0].reason), (2, UNDECODABLE));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let body = vec![0x91u8; 100_000]; // [[[[…
        let (events, rejects) = parse(&body, &ParseOptions::new(Utc::now()));
        assert!(events.is_empty());
        assert_eq!(rejects[0].reason, UNDECODABLE);
    }

    #[test]
    fn content_types() {
        assert!(is_msgpack(Some("application/msgpack")));
        assert!(is_msgpack(Some("application/x-msgpack; charset=binary")));
        assert!(!is_msgpack(Some("application/json")));
        assert!(!is_msgpack(None));
    }

    #[test]
    fn msgpack_timestamp_extension() {
        assert_eq!(ext_time(-1, &7u32.to_be_bytes()), Some(7_000_000_000));
        let v: u64 = (5u64 << 34) | 9;
        assert_eq!(ext_time(-1, &v.to_be_bytes()), Some(9_000_000_005));
    }
}
