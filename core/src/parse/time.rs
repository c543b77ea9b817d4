//! Timestamps: RFC 3339 or epoch in any unit, and the bounds an event time must keep.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::ParseOptions;
use super::normalize::json_kind;

pub(super) fn parse_timestamp_value(v: &Value) -> Result<DateTime<Utc>, String> {
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

pub(super) fn check_bounds(ts: DateTime<Utc>, opts: &ParseOptions) -> Result<(), String> {
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
    use crate::parse::test_support::{one, opts, reject};
    use crate::parse::{BodyFormat, parse_body};

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
}
