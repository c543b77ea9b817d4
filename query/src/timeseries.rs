//! `/stats/timeseries`: the request checked and turned into a plan (bucket, range, service)
//! before Redis is asked.

use std::time::Duration;

use chrono::Utc;
use logjet_api::TimeseriesParams;
use logjet_core::ServiceName;
use logjet_core::keys::Bucket;

use crate::{QueryError, search, stats};

/// A validated time-series request.
#[derive(Debug, PartialEq)]
pub struct TimeseriesPlan {
    pub step: Bucket,
    pub from: i64,
    pub to: i64,
    pub service: Option<ServiceName>,
}

/// `keep`: how far back counts reach (Redis's `retention`, or the archive's when it answers).
pub fn plan_timeseries(
    p: &TimeseriesParams,
    now: chrono::DateTime<Utc>,
    keep: Duration,
) -> Result<TimeseriesPlan, QueryError> {
    let to = match &p.to {
        Some(t) => search::parse_time("to", t, now)?,
        None => now,
    };
    let from = match &p.from {
        Some(f) => search::parse_time("from", f, now)?,
        None => to - chrono::Duration::hours(1),
    };
    if from > to {
        return Err(QueryError::invalid("from", "is after `to`"));
    }
    let oldest = now - chrono::Duration::from_std(keep).unwrap_or_default();
    let from = from.max(oldest);
    let range = (to - from).num_seconds().max(0);
    let step = match p.step.as_deref() {
        Some("1s") => Bucket::S1,
        Some("10s") => Bucket::S10,
        Some("1m") => Bucket::M1,
        Some("1h") => Bucket::H1,
        Some(other) => {
            return Err(QueryError::invalid(
                "step",
                format!("{other:?} is not one of 1s, 10s, 1m, 1h"),
            ));
        }
        None if range <= 300 => Bucket::S1,
        None if range <= 7200 => Bucket::S10,
        None if range <= 2 * 86_400 => Bucket::M1,
        None => Bucket::H1,
    };
    if range / step.secs() + 1 > stats::MAX_POINTS {
        return Err(QueryError::invalid(
            "step",
            format!(
                "{}s buckets over {range}s would be more than {} points; use a wider step",
                step.secs(),
                stats::MAX_POINTS
            ),
        ));
    }
    let service = match p.service.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(ServiceName::sanitize(s).ok_or_else(|| {
            QueryError::invalid("service", format!("{s:?} is not a service name"))
        })?),
    };
    Ok(TimeseriesPlan {
        step,
        from: from.timestamp(),
        to: to.timestamp(),
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(step: Option<&str>, from: Option<&str>, to: Option<&str>) -> TimeseriesParams {
        TimeseriesParams {
            service: None,
            step: step.map(str::to_string),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        }
    }

    #[test]
    fn timeseries_defaults_and_validation() {
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        let p = plan_timeseries(&params(None, None, None), now, day).unwrap();
        assert_eq!(p.step, Bucket::S10);
        assert_eq!(p.to - p.from, 3600);
        let p = plan_timeseries(&params(None, Some("24h"), None), now, day).unwrap();
        assert_eq!(p.step, Bucket::M1);
        assert!(
            plan_timeseries(&params(Some("5s"), None, None), now, day)
                .unwrap_err()
                .to_string()
                .contains("`step`")
        );
        assert!(
            plan_timeseries(&params(Some("1s"), Some("24h"), None), now, day)
                .unwrap_err()
                .to_string()
                .contains("points")
        );
        assert!(plan_timeseries(&params(None, Some("1m"), Some("2h")), now, day).is_err());
    }
}
