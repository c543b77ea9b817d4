//! The canonical event: what every input becomes and what every reader gets back.
//!
//! Plain data with serde and chrono only, so the dashboard app (WebAssembly) reads events with
//! this very type; `logjet-core` re-exports it as `logjet_core::event` and `logjet_core::LogEvent`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Severity, ordered from least to most severe so `level >= Level::Warn` reads naturally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Position in [`Level::ALL`]; used for compact bit masks.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A level name as shippers write it, in any case: `WARNING`, `err`, `Critical`, `notice`…
    pub fn from_name(name: &str) -> Option<Level> {
        let name = name.trim();
        let lower: String;
        let n = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        Some(match n {
            "trace" | "trc" | "finest" | "verbose" => Level::Trace,
            "debug" | "dbg" | "debu" | "fine" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" | "log" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" | "severe" => Level::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" | "ftl" => {
                Level::Fatal
            }
            _ => {
                // Numeric levels sometimes arrive as strings ("3", "17").
                return n.parse::<i64>().ok().and_then(Level::from_number);
            }
        })
    }

    /// Numeric severities. 0–7 are syslog severities (0 emergency … 7 debug); 8–24 are
    /// OpenTelemetry severity numbers (1–4 trace … 21–24 fatal; 1–7 collide with syslog, and
    /// syslog wins because bare small numbers in logs are far more often syslog); 30/40/50/60 are
    /// pino/bunyan levels.
    pub fn from_number(n: i64) -> Option<Level> {
        Some(match n {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            8 => Level::Debug,
            9..=12 => Level::Info,
            13..=16 => Level::Warn,
            17..=20 => Level::Error,
            21..=24 => Level::Fatal,
            30 => Level::Info,
            40 => Level::Warn,
            50 => Level::Error,
            60 => Level::Fatal,
            _ => return None,
        })
    }

    /// Guess a level from a message that carries none. Looks at the first words only, so a long
    /// payload that mentions "error" deep inside does not turn an info line into an error.
    /// Severity words count in any case; DEBUG and TRACE only in capitals, because "trace" and
    /// "debug" are ordinary English words in messages ("stack trace written to…").
    pub fn detect(message: &str) -> Option<Level> {
        const SCAN_BYTES: usize = 256;
        let head = match message.char_indices().nth(SCAN_BYTES) {
            Some((i, _)) => &message[..i],
            None => message,
        };
        let mut best: Option<Level> = None;
        for word in head.split(|c: char| !c.is_ascii_alphabetic()) {
            if word.len() < 3 || word.len() > 9 {
                continue;
            }
            let found = match word {
                "DEBUG" => Some(Level::Debug),
                "TRACE" => Some(Level::Trace),
                _ => match word.to_ascii_lowercase().as_str() {
                    "fatal" | "panic" | "panicked" | "critical" | "crit" | "emerg" => {
                        Some(Level::Fatal)
                    }
                    "error" | "err" | "exception" | "traceback" => Some(Level::Error),
                    "warn" | "warning" => Some(Level::Warn),
                    _ => None,
                },
            };
            if let Some(level) = found {
                best = Some(best.map_or(level, |b| b.max(level)));
                if level == Level::Fatal {
                    break;
                }
            }
        }
        best
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_name(s).ok_or_else(|| {
            format!("unknown level {s:?} (expected trace, debug, info, warn, error or fatal)")
        })
    }
}

/// A flat field value. Nested input objects are flattened to dotted keys before they get here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl FieldValue {
    /// The value as text, for substring search and display.
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Float(f) => f.to_string(),
            FieldValue::Str(s) => s.clone(),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => s.trim().parse().ok(),
            FieldValue::Bool(_) => None,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Str(s) => f.write_str(s),
            other => f.write_str(&other.to_text()),
        }
    }
}

/// Fields are kept sorted so the canonical JSON of an event is deterministic.
pub type Fields = BTreeMap<String, FieldValue>;

/// One log event in canonical form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Event time, UTC, nanosecond precision; RFC 3339 on the wire.
    #[serde(serialize_with = "ser_ts", deserialize_with = "de_ts")]
    pub ts: DateTime<Utc>,
    /// Sanitised service name (`[a-z0-9_-]`), see `logjet_core::ServiceName`.
    pub service: String,
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: Fields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl LogEvent {
    pub fn ts_nanos(&self) -> i64 {
        self.ts.timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    pub fn ts_millis(&self) -> i64 {
        self.ts.timestamp_millis()
    }
}

/// RFC 3339 with nanoseconds and a `Z`, e.g. `2026-11-26T11:48:35.123456789Z`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// [`format_ts`] into a stack buffer: the canonical encoder writes one per event, so no string
/// is allocated for it. `None` for what the fixed layout cannot hold (years outside 0–9999, a
/// leap second); [`format_ts`] writes those.
pub fn format_ts_fixed(ts: &DateTime<Utc>) -> Option<[u8; 30]> {
    use chrono::{Datelike, Timelike};
    let (y, nanos) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&y) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u32);
    put(5, 2, ts.month());
    put(8, 2, ts.day());
    put(11, 2, ts.hour());
    put(14, 2, ts.minute());
    put(17, 2, ts.second());
    put(20, 9, nanos);
    Some(b)
}

/// The inverse of [`format_ts_fixed`]: nanoseconds since the epoch of a timestamp in exactly
/// that layout. `None` for anything else — another layout, an impossible date or time, or a
/// time outside what `i64` nanoseconds hold — which [`DateTime::parse_from_rfc3339`] then
/// decides. The processor reads one per event, so this does in a few dozen instructions what
/// chrono's general parser does in hundreds.
pub fn parse_ts_fixed(s: &[u8]) -> Option<i64> {
    let s: &[u8; 30] = s.try_into().ok()?;
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (29, b'Z'),
    ];
    if separators.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let num = |at: usize, width: usize| -> Option<i64> {
        s[at..at + width].iter().try_fold(0i64, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second, nanos) = (num(11, 2)?, num(14, 2)?, num(17, 2)?, num(20, 9)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match format_ts_fixed(ts) {
        // ASCII digits and separators only.
        Some(b) => s.serialize_str(std::str::from_utf8(&b).unwrap_or_default()),
        None => s.serialize_str(&format_ts(ts)),
    }
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_in_any_case() {
        assert_eq!(Level::from_name("WARNING"), Some(Level::Warn));
        assert_eq!(Level::from_name("Err"), Some(Level::Error));
        assert_eq!(Level::from_name("critical"), Some(Level::Fatal));
        assert_eq!(Level::from_name("notice"), Some(Level::Info));
        assert_eq!(Level::from_name("17"), Some(Level::Error));
        assert_eq!(Level::from_name("banana"), None);
    }

    #[test]
    fn level_numbers_map_syslog_otel_and_pino() {
        assert_eq!(Level::from_number(3), Some(Level::Error)); // syslog err
        assert_eq!(Level::from_number(4), Some(Level::Warn)); // syslog warning
        assert_eq!(Level::from_number(7), Some(Level::Debug)); // syslog debug
        assert_eq!(Level::from_number(9), Some(Level::Info)); // OTel INFO
        assert_eq!(Level::from_number(13), Some(Level::Warn)); // OTel WARN
        assert_eq!(Level::from_number(17), Some(Level::Error)); // OTel ERROR
        assert_eq!(Level::from_number(21), Some(Level::Fatal)); // OTel FATAL
        assert_eq!(Level::from_number(50), Some(Level::Error)); // pino error
        assert_eq!(Level::from_number(99), None);
    }

    #[test]
    fn level_detection_from_message() {
        assert_eq!(Level::detect("ERROR: disk full"), Some(Level::Error));
        assert_eq!(
            Level::detect("thread 'main' panicked at src/x.rs"),
            Some(Level::Fatal)
        );
        assert_eq!(Level::detect("WARN slow query"), Some(Level::Warn));
        assert_eq!(Level::detect("DEBUG cache miss"), Some(Level::Debug));
        assert_eq!(Level::detect("stack trace written to file"), None);
        assert_eq!(Level::detect("user logged in"), None);
        assert_eq!(Level::detect("warning then error"), Some(Level::Error));
    }

    #[test]
    fn the_fixed_timestamp_layout_is_chronos() {
        for (secs, nanos) in [
            (0i64, 0u32),
            (1_795_694_915, 123_456_789),
            (1_795_694_915, 5),
            (-62_135_596_800, 0),
            (253_402_300_799, 999_999_999),
            (951_782_400, 100_000_000),
        ] {
            let ts = DateTime::from_timestamp(secs, nanos).unwrap();
            let fixed = format_ts_fixed(&ts).unwrap();
            assert_eq!(std::str::from_utf8(&fixed).unwrap(), format_ts(&ts));
        }
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert!(format_ts_fixed(&far).is_none());
    }

    #[test]
    fn the_fixed_layout_reads_back_as_chrono_reads_it() {
        // Every day of four years around a leap year and a century, at several times of day,
        // and the ends of what i64 nanoseconds hold.
        let mut secs = 946_684_800 - 3 * 365 * 86_400; // 1997
        while secs < 946_684_800 + 2 * 366 * 86_400 {
            for (off, nanos) in [
                (0, 0),
                (3_599, 5),
                (86_399, 999_999_999),
                (45_296, 123_456_789),
            ] {
                let ts = DateTime::from_timestamp(secs + off, nanos).unwrap();
                let text = format_ts_fixed(&ts).unwrap();
                assert_eq!(parse_ts_fixed(&text), ts.timestamp_nanos_opt(), "{ts}");
            }
            secs += 86_400;
        }
        for (secs, nanos) in [
            (0i64, 0u32),
            (-1, 999_999_999),
            (9_223_372_036, 854_775_807),
        ] {
            let ts = DateTime::from_timestamp(secs, nanos).unwrap();
            let text = format_ts_fixed(&ts).unwrap();
            assert_eq!(parse_ts_fixed(&text), ts.timestamp_nanos_opt(), "{ts}");
        }
        // Past i64 nanoseconds (chrono says None too), impossible dates, other layouts.
        for bad in [
            "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z",
            "2026-02-29T00:00:00.000000000Z",
            "2026-13-01T00:00:00.000000000Z",
            "2026-04-31T00:00:00.000000000Z",
            "2026-01-01T24:00:00.000000000Z",
            "2026-01-01T00:00:60.000000000Z",
            "2026-01-01T00:00:00.000000000+",
            "2026-01-01T00:00:00.00000000aZ",
            "2026-01-01T00:00:00Z",
            "2026-01-01 00:00:00.000000000Z",
        ] {
            assert_eq!(parse_ts_fixed(bad.as_bytes()), None, "{bad}");
        }
        for past_i64 in [
            "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(past_i64).unwrap();
            assert_eq!(chrono.timestamp_nanos_opt(), None, "{past_i64}");
        }
        assert_eq!(
            parse_ts_fixed(b"2000-02-29T12:00:00.000000001Z"),
            Some(951_825_600_000_000_001)
        );
    }

    #[test]
    fn canonical_json_round_trips() {
        let ev = LogEvent {
            ts: DateTime::parse_from_rfc3339("2026-11-26T11:48:35.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            service: "api".into(),
            level: Level::Error,
            message: "boom".into(),
            fields: [("http.status".to_string(), FieldValue::Int(500))].into(),
            trace_id: Some("abc".into()),
            host: None,
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            json,
            r#"{"ts":"2026-11-26T11:48:35.123456789Z","service":"api","level":"error","message":"boom","fields":{"http.status":500},"trace_id":"abc"}"#
        );
        let back: LogEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
    }
}
