//! Reading a canonical NDJSON line (what ingest publishes) straight into columns.
//!
//! The stream carries ingest's batches as canonical NDJSON; the archiver appends those lines
//! without building a [`crate::LogEvent`]: strings are borrowed from the line and the `fields`
//! object is copied as its JSON text, after checking that it holds only what
//! [`crate::Fields`] accepts. A line is taken exactly when `serde_json::from_slice::<LogEvent>`
//! would take it (with a strict service name), as `parse::decode_message` does, so the archive
//! holds the very events the stream tier decodes; anything else is refused and the caller falls
//! back to the forgiving parser.

use std::borrow::Cow;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{Level, ServiceName};

/// The columns of one canonical line, borrowed from it where no JSON escape intervenes.
#[derive(Debug)]
pub struct CanonicalLine<'a> {
    pub ts_nanos: i64,
    pub service: Cow<'a, str>,
    pub level: Level,
    pub message: Cow<'a, str>,
    /// JSON object text, `{}` when the line has no fields.
    pub fields: &'a str,
    pub trace_id: Option<Cow<'a, str>>,
    pub host: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    service: Cow<'a, str>,
    level: Level,
    #[serde(borrow)]
    message: Cow<'a, str>,
    /// Present (even as `null`) or absent: `Option`'s own impl would read `null` as absent.
    #[serde(borrow, default, deserialize_with = "present")]
    fields: Option<&'a RawValue>,
    #[serde(borrow, default)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> CanonicalLine<'a> {
    /// Parses a line; the error says why it is not canonical.
    pub fn parse(line: &'a [u8]) -> Result<CanonicalLine<'a>, String> {
        let raw: Raw<'a> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let ts = DateTime::parse_from_rfc3339(&raw.ts).map_err(|e| format!("ts: {e}"))?;
        let ts_nanos = ts
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("ts {:?} is out of range", raw.ts))?;
        ServiceName::parse_strict(&raw.service).map_err(|e| format!("service: {e}"))?;
        let fields = match raw.fields {
            // Including `"fields": null`, which is not a map: LogEvent refuses it, so do we.
            Some(f) => {
                serde_json::from_str::<FlatFields>(f.get()).map_err(|e| format!("fields: {e}"))?;
                f.get()
            }
            None => "{}",
        };
        Ok(CanonicalLine {
            ts_nanos,
            service: raw.service,
            level: raw.level,
            message: raw.message,
            fields,
            trace_id: raw.trace_id,
            host: raw.host,
        })
    }
}

/// Accepts exactly the JSON objects `Fields` (a map of bool/int/float/string) accepts, without
/// allocating.
struct FlatFields;

impl<'de> Deserialize<'de> for FlatFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FlatFieldsVisitor)
    }
}

struct FlatFieldsVisitor;

impl<'de> Visitor<'de> for FlatFieldsVisitor {
    type Value = FlatFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings, numbers and booleans")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatFields, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Scalar>()?;
        }
        Ok(FlatFields)
    }
}

struct Scalar;

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
        Ok(Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
        Ok(Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Scalar, E> {
        Ok(Scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogEvent;

    /// What `parse::decode_message` takes as canonical.
    fn log_event_takes(line: &[u8]) -> bool {
        serde_json::from_slice::<LogEvent>(line)
            .is_ok_and(|ev| ServiceName::parse_strict(&ev.service).is_ok())
    }

    #[test]
    fn accepts_exactly_what_log_event_accepts() {
        let ts = r#""ts":"2026-11-26T11:48:35.123456789Z""#;
        let lines = [
            format!(r#"{{{ts},"service":"api","level":"info","message":"ok"}}"#),
            format!(
                r#"{{{ts},"service":"api","level":"error","message":"a\"b\n","fields":{{"n":1,"f":1.5,"b":true,"s":"x","big":18446744073709551615}},"trace_id":"t1","host":"h"}}"#
            ),
            format!(r#"{{{ts},"service":"api","level":"info","message":"x","extra":[1]}}"#),
            format!(r#"{{{ts},"service":"api","level":"info","message":"x","fields":null}}"#),
            format!(
                r#"{{{ts},"service":"api","level":"info","message":"x","fields":{{"o":{{}}}}}}"#
            ),
            format!(
                r#"{{{ts},"service":"api","level":"info","message":"x","fields":{{"n":null}}}}"#
            ),
            format!(r#"{{{ts},"service":"api","level":"info","message":"x","fields":[1]}}"#),
            format!(r#"{{{ts},"service":"Api","level":"info","message":"x"}}"#),
            format!(r#"{{{ts},"service":"api","level":"INFO","message":"x"}}"#),
            format!(r#"{{{ts},"service":"api","level":"info"}}"#),
            r#"{"ts":"yesterday","service":"api","level":"info","message":"x"}"#.to_string(),
            format!(r#"{{{ts},"service":"api","level":"info","message":"x","host":null}}"#),
            "not json".to_string(),
        ];
        for line in &lines {
            let ours = CanonicalLine::parse(line.as_bytes());
            assert_eq!(
                ours.is_ok(),
                log_event_takes(line.as_bytes()),
                "{line}: {:?}",
                ours.err()
            );
        }
        let l = CanonicalLine::parse(lines[1].as_bytes()).unwrap();
        assert_eq!(l.message, "a\"b\n");
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.ts_nanos % 1_000_000_000, 123_456_789);
        assert!(l.fields.starts_with("{\"n\":1"));
        assert_eq!(l.trace_id.as_deref(), Some("t1"));
        let plain = CanonicalLine::parse(lines[0].as_bytes()).unwrap();
        assert_eq!(plain.fields, "{}");
        assert!(matches!(plain.service, Cow::Borrowed("api")));
    }
}
