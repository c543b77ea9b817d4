//! The fast path for the common line: a flat JSON object read with its keys and values borrowed
//! from the body (a string is copied only when it holds an escape), normalised, and written as
//! canonical JSON straight into the caller's buffer. No [`LogEvent`](crate::LogEvent), no field
//! map, no string per field.
//!
//! It takes only what it can do exactly as the general parser does: a line with a nested
//! object or an array, a non-string message, a bad timestamp or level — anything unusual or
//! wrong — is left to the general parser ([`read_flat_line`] gives `None`), which also words
//! the rejects. The output is byte for byte what serialising the general parser's event gives
//! (the tests compare the two).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

use super::ParseOptions;
use super::normalize::{
    HOST_ALIASES, LEVEL_ALIASES, MAX_FIELDS, MESSAGE_ALIASES, SERVICE_ALIASES, TRACE_ID_ALIASES,
    TS_ALIASES,
};
use super::time::{check_bounds, parse_timestamp_str, parse_timestamp_value};
use crate::event::Level;
use crate::subject::{ServiceName, UNKNOWN_SERVICE};

mod scan;

/// A scalar JSON value, strings borrowed when unescaped.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// A positive integer over `i64::MAX` (a float in the canonical event, as `serde_json` has it).
    BigUint(u64),
    Float(f64),
    Bool(bool),
}

/// The members of a flat object, in document order (nulls dropped); reused from line to line.
pub type FlatFields<'a> = Vec<(Cow<'a, str>, Scalar<'a>)>;

/// A normalised event whose text is borrowed from the body (or from the scratch list).
#[derive(Debug)]
pub struct BorrowedEvent<'s, 'a> {
    pub ts: DateTime<Utc>,
    pub service: Cow<'a, str>,
    pub level: Level,
    pub message: Cow<'a, str>,
    /// The remaining fields, sorted by key (as the canonical event's map keeps them).
    pub fields: &'s [(Cow<'a, str>, Scalar<'a>)],
    pub trace_id: Option<Cow<'a, str>>,
    pub host: Option<Cow<'a, str>>,
}

/// Reads a one-line JSON object into an event, or `None` when the general parser must decide.
/// `scratch` is cleared and refilled; its capacity is what makes the next line free.
pub fn read_flat_line<'s, 'a>(
    line: &'a [u8],
    opts: &'a ParseOptions,
    scratch: &'s mut FlatFields<'a>,
) -> Option<BorrowedEvent<'s, 'a>> {
    scratch.clear();
    let keys = match scan::flat_object(line, scratch) {
        Some(keys) => keys,
        None => {
            scratch.clear();
            visit_members(line, scratch)?
        }
    };
    if keys == 0 {
        return None;
    }
    drop_repeated_keys(scratch)?;
    let ts = match take_alias(scratch, TS_ALIASES) {
        Some((_, v)) => {
            let ts = match v {
                Scalar::Str(s) => parse_timestamp_str(&s),
                Scalar::Int(i) => parse_timestamp_value(&Value::from(i)),
                Scalar::BigUint(u) => parse_timestamp_value(&Value::from(u)),
                Scalar::Float(f) => parse_timestamp_value(&Value::from(f)),
                Scalar::Bool(_) => return None,
            }
            .ok()?;
            check_bounds(ts, opts).ok()?;
            ts
        }
        None => opts.received_at,
    };
    let message = match take_alias(scratch, MESSAGE_ALIASES) {
        Some((_, Scalar::Str(s))) => s,
        Some(_) => return None,
        None => Cow::Borrowed(""),
    };
    let level = match take_alias(scratch, LEVEL_ALIASES) {
        Some((_, Scalar::Str(s))) => Level::from_name(&s)?,
        Some((_, Scalar::Int(i))) => Level::from_number(i)?,
        Some(_) => return None,
        None => Level::detect(&message).unwrap_or(Level::Info),
    };
    let service = match take_alias(scratch, SERVICE_ALIASES) {
        Some((_, Scalar::Str(s))) if ServiceName::is_canonical(&s) => s,
        Some((_, Scalar::Str(s))) => Cow::Owned(ServiceName::sanitize(&s)?.into()),
        Some(_) => return None,
        None => match &opts.default_service {
            Some(s) => Cow::Borrowed(s.as_str()),
            None => Cow::Borrowed(UNKNOWN_SERVICE),
        },
    };
    let text = |v: Option<(Cow<'a, str>, Scalar<'a>)>| match v {
        None => Some(None),
        Some((_, Scalar::Str(s))) => Some(Some(s)),
        Some(_) => None,
    };
    let trace_id = text(take_alias(scratch, TRACE_ID_ALIASES))?;
    let host = text(take_alias(scratch, HOST_ALIASES))?;
    if scratch.len() > MAX_FIELDS {
        return None;
    }
    scratch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Some(BorrowedEvent {
        ts,
        service,
        level,
        message,
        fields: scratch,
        trace_id,
        host,
    })
}

impl BorrowedEvent<'_, '_> {
    /// The canonical JSON of the event (no newline), as `serde_json` writes a `LogEvent`.
    pub fn write_canonical<W: Write>(&self, mut w: W) -> io::Result<()> {
        w.write_all(b"{\"ts\":")?;
        let ts = crate::event::format_ts_fixed(&self.ts);
        match &ts {
            Some(b) => {
                w.write_all(b"\"")?;
                w.write_all(b)?;
                w.write_all(b"\"")?;
            }
            None => serde_json::to_writer(&mut w, &crate::event::format_ts(&self.ts))?,
        }
        w.write_all(b",\"service\":")?;
        write_str(&mut w, &self.service)?;
        w.write_all(b",\"level\":\"")?;
        w.write_all(self.level.as_str().as_bytes())?;
        w.write_all(b"\",\"message\":")?;
        write_str(&mut w, &self.message)?;
        if !self.fields.is_empty() {
            w.write_all(b",\"fields\":{")?;
            for (i, (k, v)) in self.fields.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_str(&mut w, k)?;
                w.write_all(b":")?;
                match v {
                    Scalar::Str(s) => write_str(&mut w, s)?,
                    Scalar::Int(n) => serde_json::to_writer(&mut w, n)?,
                    Scalar::BigUint(n) => serde_json::to_writer(&mut w, &(*n as f64))?,
                    Scalar::Float(f) => serde_json::to_writer(&mut w, f)?,
                    Scalar::Bool(b) => serde_json::to_writer(&mut w, b)?,
                }
            }
            w.write_all(b"}")?;
        }
        if let Some(t) = &self.trace_id {
            w.write_all(b",\"trace_id\":")?;
            write_str(&mut w, t)?;
        }
        if let Some(h) = &self.host {
            w.write_all(b",\"host\":")?;
            write_str(&mut w, h)?;
        }
        w.write_all(b"}")
    }
}

/// A JSON string as `serde_json` writes it: most need no escape and are copied as they are.
fn write_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if scan::plain_len(s.as_bytes()) == s.len() {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    } else {
        Ok(serde_json::to_writer(w, s)?)
    }
}

/// As the general parser: an object that repeats a key means its last value. `None` (leave it to
/// the general parser) for many fields, where pairwise comparison would be quadratic.
fn drop_repeated_keys(flat: &mut FlatFields<'_>) -> Option<()> {
    if flat.len() > 32 {
        return None;
    }
    let mut i = 0;
    while i < flat.len() {
        if flat[i + 1..].iter().any(|(k, _)| *k == flat[i].0) {
            flat.remove(i);
        } else {
            i += 1;
        }
    }
    Some(())
}

/// The general parser's alias lookup, to the letter (including its `swap_remove`, which decides
/// between two spellings of one alias).
fn take_alias<'a>(
    flat: &mut FlatFields<'a>,
    aliases: &[&str],
) -> Option<(Cow<'a, str>, Scalar<'a>)> {
    for alias in aliases {
        if let Some(pos) = flat.iter().position(|(k, _)| k.eq_ignore_ascii_case(alias)) {
            return Some(flat.swap_remove(pos));
        }
    }
    None
}

/// A flat object's members into `out` through `serde_json` (what [`scan`] leaves: escapes,
/// fractions…); the number of members, or `None` for a nested object, an array or bad JSON.
fn visit_members<'a>(line: &'a [u8], out: &mut FlatFields<'a>) -> Option<usize> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let keys = FlatObject { out }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(keys)
}

/// A flat object's members into the scratch list; a nested object or array is an error (the
/// general parser takes the line).
struct FlatObject<'s, 'a> {
    out: &'s mut FlatFields<'a>,
}

impl<'de> DeserializeSeed<'de> for FlatObject<'_, 'de> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FlatObject<'_, 'de> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flat JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut keys = 0;
        while let Some(key) = map.next_key_seed(Text)? {
            keys += 1;
            if let Some(v) = map.next_value_seed(Member)? {
                self.out.push((key, v));
            }
        }
        Ok(keys)
    }
}

/// A string, borrowed unless it holds an escape.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A member's value: a scalar, `None` for null.
struct Member;

impl<'de> DeserializeSeed<'de> for Member {
    type Value = Option<Scalar<'de>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Member {
    type Value = Option<Scalar<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::BigUint(v),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.is_finite() {
            Ok(Some(Scalar::Float(v)))
        } else {
            Err(E::custom("not a finite number"))
        }
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("nested object"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("array"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::opts;
    use crate::parse::{BodyFormat, ParseOptions, parse_body};

    /// What the general parser makes of a line, serialised.
    fn general(line: &str, opts: &ParseOptions) -> Option<String> {
        let p = parse_body(line.as_bytes(), BodyFormat::Ndjson, opts);
        p.events.first().map(|e| serde_json::to_string(e).unwrap())
    }

    fn fast(line: &str, opts: &ParseOptions) -> Option<String> {
        let mut scratch = FlatFields::new();
        let ev = read_flat_line(line.as_bytes(), opts, &mut scratch)?;
        let mut out = Vec::new();
        ev.write_canonical(&mut out).unwrap();
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_fast_path_writes_what_the_general_parser_serialises() {
        let lines = [
            r#"{"ts":"2026-11-26T11:59:00Z","service":"api","level":"warn","message":"m","a":1}"#,
            r#"{"service":"svc-1","level":"info","message":"GET /api/v1/orders/9 completed in 12.5ms for 10.1.2.3","request_id":"00ab","client_ip":"10.1.2.3","status":200,"duration_ms":12.5,"bytes":9,"user_agent":"curl/8.5.0"}"#,
            r#"{"msg":"esc \"q\" \u00e9 \ud83d\ude00","f":-0.25,"e":1e3,"big":18446744073709551615}"#,
            r#"{"x":0,"level":"info","x":1,"msg":"a","level":"error","x":2}"#,
            r#"{"Message":"first","message":"second","LEVEL":"Warning","app":"Pay Svc"}"#,
            r#"{"time":1764158340,"severity":17,"body":"b","traceId":"t-1","hostname":"h1","gone":null}"#,
            r#"{"timestamp":"2026-11-26T11:00:00.5+01:00","k\u0041":"v\n","service.name":"x_y"}"#,
            r#"{"message":"no level here: ERROR disk full","zeta":true,"alpha":false}"#,
            r#"{"a":"only a field"}"#,
            r#"{"ts":"1764158340123","message":"epoch millis as a string"}"#,
        ];
        for line in lines {
            let want = general(line, &opts());
            assert!(want.is_some(), "{line}");
            assert_eq!(fast(line, &opts()), want, "{line}");
        }
    }

    #[test]
    fn defaults_come_from_the_options() {
        let o = opts().with_default_service(Some(ServiceName::parse_strict("from-query").unwrap()));
        let line = r#"{"message":"m"}"#;
        assert_eq!(fast(line, &o), general(line, &o));
        assert!(
            fast(line, &o)
                .unwrap()
                .contains("\"service\":\"from-query\"")
        );
    }

    #[test]
    fn what_the_fast_path_leaves_to_the_general_parser() {
        for line in [
            r#"{"message":"m","user":{"id":7}}"#,
            r#"{"message":"m","tags":["a"]}"#,
            r#"{"message":42}"#,
            r#"{"level":"nope","message":"m"}"#,
            r#"{"ts":"yesterday","message":"m"}"#,
            r#"{"ts":"1999-01-01T00:00:00Z","message":"too old"}"#,
            r#"{"service":"***","message":"m"}"#,
            r#"{"trace_id":7,"message":"m"}"#,
            r#"{}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
        ] {
            let mut o = opts();
            o.max_age = Some(std::time::Duration::from_secs(86_400));
            assert_eq!(fast(line, &o), None, "{line}");
        }
    }
}
