//! Request parameters as Loki reads them: times (ns, seconds, RFC 3339), steps, limits,
//! directions, and the limits logjet puts on a query.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::LokiError;

/// Loki's `max_entries_limit_per_query` default.
pub const MAX_LIMIT: usize = 5000;
/// Loki's default `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Loki's most points per series.
pub const MAX_POINTS: i64 = 11_000;
/// Longest range a query may cover (Loki's `max_query_length` default, 721h).
pub const MAX_RANGE: Duration = Duration::from_secs(721 * 3600);

/// Query string pairs, repeated keys kept (`match[]`).
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn from_query(raw: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn query(&self) -> Result<&str, LokiError> {
        self.get("query")
            .ok_or_else(|| LokiError::bad("query: the `query` parameter is missing"))
    }

    /// A time parameter, ns since the epoch.
    pub fn time(&self, key: &str, default: i64) -> Result<i64, LokiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_time(v).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid parameter \"{key}\": cannot parse {v:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// `start`/`end` with Loki's defaults (the last hour), checked.
    pub fn range(&self, now: DateTime<Utc>) -> Result<(i64, i64), LokiError> {
        let now = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let end = self.time("end", now)?;
        let start = self.time("start", end - 3_600_000_000_000)?;
        if end < start {
            return Err(LokiError::bad(
                "end timestamp must not be before or equal to start time",
            ));
        }
        if (end - start) as u128 > MAX_RANGE.as_nanos() {
            return Err(LokiError::bad(format!(
                "the query time range exceeds the limit (query length: {}, limit: 721h)",
                humantime::format_duration(Duration::from_secs(
                    ((end - start) / 1_000_000_000) as u64
                ))
            )));
        }
        Ok((start, end))
    }

    pub fn limit(&self) -> Result<usize, LokiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<usize>() {
                Ok(0) | Err(_) => Err(LokiError::bad(format!(
                    "invalid parameter \"limit\": {v:?} must be a positive integer"
                ))),
                Ok(n) if n > MAX_LIMIT => Err(LokiError::bad(format!(
                    "max entries limit per query exceeded, limit > max_entries_limit ({n} > {MAX_LIMIT})"
                ))),
                Ok(n) => Ok(n),
            },
        }
    }

    /// `true` for `forward` (oldest first); Loki's default is backward.
    pub fn forward(&self) -> Result<bool, LokiError> {
        match self
            .get("direction")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("backward") => Ok(false),
            Some("forward") => Ok(true),
            Some(other) => Err(LokiError::bad(format!(
                "invalid parameter \"direction\": {other:?} is not forward or backward"
            ))),
        }
    }

    /// `step` in ns: a duration (`15000ms`, `1m`) or seconds; by default Loki's
    /// `max(range / 250, 1s)`. Refused when the range would need more than 11,000 points.
    pub fn step(&self, start: i64, end: i64) -> Result<i64, LokiError> {
        let step = match self.get("step") {
            None => ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000,
            Some(v) => parse_duration_ns(v).ok_or_else(|| {
                LokiError::bad(format!(
                    "invalid parameter \"step\": cannot parse {v:?} to a valid duration"
                ))
            })?,
        };
        if step <= 0 {
            return Err(LokiError::bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(LokiError::bad(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        Ok(step)
    }
}

/// Loki's rule: a number with a `.` is seconds; an integer of up to 10 digits is seconds,
/// longer is ns; else RFC 3339.
pub fn parse_time(v: &str) -> Option<i64> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        let secs = f.trunc();
        let ns = ((f - secs) * 1000.0).round() * 1_000_000.0;
        return (secs as i64)
            .checked_mul(1_000_000_000)?
            .checked_add(ns as i64);
    }
    match v.parse::<i64>() {
        Ok(n) if v.trim_start_matches('-').len() <= 10 => n.checked_mul(1_000_000_000),
        Ok(n) => Some(n),
        Err(_) => DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt()),
    }
}

/// `15000ms`, `1m30s`, `2h` or plain seconds (`30`, `0.5`).
pub fn parse_duration_ns(v: &str) -> Option<i64> {
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs < 1e10).then_some((secs * 1e9) as i64);
    }
    let d = humantime::parse_duration(v).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::from_query(Some(q))
    }

    #[test]
    fn times_as_loki_reads_them() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(
            parse_time("1700000000000000123"),
            Some(1_700_000_000_000_000_123)
        );
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn steps_limits_and_ranges() {
        let s = 1_700_000_000_000_000_000i64;
        let h = 3_600_000_000_000i64;
        assert_eq!(p("step=15000ms").step(s, s + h).unwrap(), 15_000_000_000);
        assert_eq!(p("step=60").step(s, s + h).unwrap(), 60_000_000_000);
        assert_eq!(p("").step(s, s + h).unwrap(), 14_000_000_000);
        let e = p("step=1s").step(s, s + 24 * h).unwrap_err();
        assert!(e.to_string().contains("11,000 points"), "{e}");
        assert!(p("step=0").step(s, s + h).is_err());
        assert!(p("limit=0").limit().is_err());
        assert!(p("limit=5001").limit().is_err());
        assert_eq!(p("limit=7").limit().unwrap(), 7);
        assert!(p("direction=FORWARD").forward().unwrap());
        assert!(p("direction=up").forward().is_err());
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = p("start=1600000000&end=1700000000").range(now).unwrap_err();
        assert!(e.to_string().contains("721h"), "{e}");
        assert!(p("start=1700000001&end=1700000000").range(now).is_err());
        let m = p("match[]=%7Ba%3D%22b%22%7D&match[]=%7Bc%3D%22d%22%7D");
        assert_eq!(m.all("match[]"), vec!["{a=\"b\"}", "{c=\"d\"}"]);
    }
}
