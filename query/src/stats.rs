//! Statistics from the counter hashes: summary and time series.
//!
//! The planners ([`summary_keys`], [`timeseries_starts`]) and reducers (`add_counts`,
//! [`reduce_timeseries`]) are plain functions; [`read_hashes`] is the only Redis call. The
//! response types are `logjet-api`'s, shared with the dashboard app.
//!
//! Beyond Redis's counters (the query's `retention`, the stream's max age) the archive answers:
//! its segment headers' exact per-minute counts ([`crate::archive::counts`]). The split is by
//! time: Redis for buckets from its horizon on, the archive for older ones, so an event both
//! hold is counted once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use logjet_core::Level;
use logjet_core::archive::Catalog;
use logjet_core::keys::{self, Bucket};
use logjet_core::store::RedisConn;

pub use logjet_api::{Point, ServiceInfo, ServicesResponse, Summary, SummaryParams, Timeseries};

use crate::archive::counts;

/// The archive's part of a statistic: the buckets that start before `horizon` (unix seconds),
/// which Redis's counters no longer cover.
#[derive(Clone, Copy)]
pub struct ArchiveCounts<'a> {
    pub catalog: &'a Catalog,
    pub horizon: i64,
}

/// Reads many counter hashes in one round trip.
pub async fn read_hashes(
    conn: &RedisConn,
    keys: &[String],
) -> redis::RedisResult<Vec<HashMap<String, u64>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("HGETALL").arg(k);
    }
    let mut conn = conn.clone();
    pipe.query_async(&mut conn).await
}

/// Counts by level with every level present (zeros included), so clients need no special cases.
pub fn empty_levels() -> BTreeMap<String, u64> {
    Level::ALL
        .iter()
        .map(|l| (l.as_str().to_string(), 0))
        .collect()
}

/// A summary of nothing yet, over `[since, until]`.
fn empty_summary(since: DateTime<Utc>, until: DateTime<Utc>) -> Summary {
    Summary {
        total: 0,
        by_level: empty_levels(),
        by_service: BTreeMap::new(),
        by_service_level: BTreeMap::new(),
        events_per_sec: 0.0,
        since: logjet_core::event::format_ts(&since),
        until: logjet_core::event::format_ts(&until),
    }
}

/// Adds one counter hash (`service|level` → count) to a summary.
fn add_counts(summary: &mut Summary, hash: &HashMap<String, u64>) {
    for (field, n) in hash {
        let Some((service, level)) = keys::split_counter_field(field) else {
            continue;
        };
        summary.total += n;
        *summary
            .by_level
            .entry(level.as_str().to_string())
            .or_default() += n;
        *summary.by_service.entry(service.to_string()).or_default() += n;
        *summary
            .by_service_level
            .entry(service.to_string())
            .or_insert_with(empty_levels)
            .entry(level.as_str().to_string())
            .or_default() += n;
    }
}

/// Keys covering `[now - retention, now + future]` exactly at minute resolution: minute buckets
/// for the ragged oldest hour, hour buckets for the rest; and the one-second keys of the last full
/// minute for the rate.
pub fn summary_keys(
    now: DateTime<Utc>,
    retention: Duration,
    future: Duration,
) -> (Vec<String>, Vec<String>) {
    let now_s = now.timestamp();
    let from = now_s - retention.as_secs() as i64;
    let to = now_s + future.as_secs() as i64;
    let first_minute = Bucket::M1.start(from + 59);
    let first_full_hour = Bucket::H1.start(from + 3599);
    let mut window = Vec::new();
    let mut m = first_minute;
    while m < first_full_hour.min(to) {
        window.push(keys::counter_key(Bucket::M1, m));
        m += 60;
    }
    let mut h = first_full_hour;
    while h <= to {
        window.push(keys::counter_key(Bucket::H1, h));
        h += 3600;
    }
    let last_second = now_s - 1;
    let rate = (0..60)
        .map(|i| keys::counter_key(Bucket::S1, last_second - i))
        .collect();
    (window, rate)
}

/// Totals over `[from, now]`: Redis's counters for the part within `retention` of `now`, the
/// archive's minutes (when given) for the part before it.
pub async fn summary(
    conn: &RedisConn,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    retention: Duration,
    future: Duration,
    archive: Option<&Catalog>,
) -> redis::RedisResult<Summary> {
    let from = from.min(now);
    let redis_window = (now - from).to_std().unwrap_or_default().min(retention);
    let (window, rate) = summary_keys(now, redis_window, future);
    let mut all = window.clone();
    all.extend(rate.iter().cloned());
    let hashes = read_hashes(conn, &all).await?;
    let mut summary = empty_summary(from, now);
    for h in &hashes[..window.len()] {
        add_counts(&mut summary, h);
    }
    if let Some(catalog) = archive {
        let (first, redis_first) = archive_minutes(now, from, redis_window);
        if first < redis_first {
            add_counts(
                &mut summary,
                &counts::hash_between(catalog, None, first, redis_first),
            );
        }
    }
    let last_minute: u64 = hashes[window.len()..].iter().flat_map(|h| h.values()).sum();
    summary.events_per_sec = last_minute as f64 / 60.0;
    Ok(summary)
}

/// The minutes a summary from `from` takes from the archive: `[first, redis_first)`, where
/// `redis_first` is the first minute [`summary_keys`] reads from Redis for `redis_window`.
pub fn archive_minutes(
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    redis_window: Duration,
) -> (i64, i64) {
    let first = Bucket::M1.start(from.timestamp() + 59);
    let redis_first = Bucket::M1.start(now.timestamp() - redis_window.as_secs() as i64 + 59);
    (first, redis_first)
}

/// Most points one request may ask for.
pub const MAX_POINTS: i64 = 4000;

/// Bucket starts from `from` to `to` (inclusive of the bucket holding `to`).
pub fn timeseries_starts(step: Bucket, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = step.start(from);
    while t <= to && (out.len() as i64) < MAX_POINTS {
        out.push(t);
        t += step.secs();
    }
    out
}

pub fn reduce_timeseries(
    step: Bucket,
    starts: &[i64],
    hashes: &[HashMap<String, u64>],
    service: Option<&str>,
) -> Vec<Point> {
    starts
        .iter()
        .zip(hashes)
        .map(|(start, hash)| {
            let mut by_level = empty_levels();
            let mut total = 0;
            for (field, n) in hash {
                let Some((svc, level)) = keys::split_counter_field(field) else {
                    continue;
                };
                if service.is_some_and(|s| s != svc) {
                    continue;
                }
                total += n;
                *by_level.entry(level.as_str().to_string()).or_default() += n;
            }
            let _ = step;
            Point {
                ts: logjet_core::event::format_ts(
                    &DateTime::from_timestamp(*start, 0).unwrap_or_default(),
                ),
                total,
                by_level,
            }
        })
        .collect()
}

/// The counter hashes (`service|level` → events) of the buckets starting at `starts` (ascending,
/// `step` apart): from the archive's segment counts before its horizon, from Redis after.
/// `service` narrows what the archive reads (Redis's hashes hold every service).
pub async fn bucket_hashes(
    conn: &RedisConn,
    step: Bucket,
    starts: &[i64],
    service: Option<&str>,
    archive: Option<ArchiveCounts<'_>>,
) -> redis::RedisResult<Vec<HashMap<String, u64>>> {
    let split = archive.map_or(0, |a| starts.partition_point(|s| *s < a.horizon));
    let keys: Vec<String> = starts[split..]
        .iter()
        .map(|s| keys::counter_key(step, *s))
        .collect();
    let mut hashes = match archive {
        Some(a) if split > 0 => {
            let (first, end) = (starts[0], starts[split - 1] + step.secs());
            let metas = counts::segments_between(a.catalog, service, first, end);
            counts::bucket_hashes(&metas, service, first, step.secs(), split, end)
        }
        _ => Vec::new(),
    };
    hashes.extend(read_hashes(conn, &keys).await?);
    Ok(hashes)
}

pub async fn timeseries(
    conn: &RedisConn,
    step: Bucket,
    from: i64,
    to: i64,
    service: Option<&str>,
    archive: Option<ArchiveCounts<'_>>,
) -> redis::RedisResult<Timeseries> {
    let starts = timeseries_starts(step, from, to);
    let hashes = bucket_hashes(conn, step, &starts, service, archive).await?;
    Ok(Timeseries {
        step_secs: step.secs(),
        from: logjet_core::event::format_ts(&DateTime::from_timestamp(from, 0).unwrap_or_default()),
        to: logjet_core::event::format_ts(&DateTime::from_timestamp(to, 0).unwrap_or_default()),
        service: service.map(str::to_string),
        points: reduce_timeseries(step, &starts, &hashes, service),
    })
}

/// Most services listed.
pub const MAX_SERVICES: isize = 1000;

/// Services seen, most recently active first, with their counts over the retained window.
pub async fn services(
    conn: &RedisConn,
    now: DateTime<Utc>,
    retention: Duration,
    future: Duration,
) -> redis::RedisResult<ServicesResponse> {
    let mut c = conn.clone();
    let seen: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(keys::services_key())
        .arg(0)
        .arg(MAX_SERVICES - 1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await?;
    let from = now - chrono::Duration::from_std(retention).unwrap_or_default();
    let s = summary(conn, now, from, retention, future, None).await?;
    let services = seen
        .into_iter()
        .map(|(name, ms)| {
            let by_level = s
                .by_service_level
                .get(&name)
                .cloned()
                .unwrap_or_else(empty_levels);
            let total = by_level.values().sum();
            let errors = by_level.get("error").copied().unwrap_or(0)
                + by_level.get("fatal").copied().unwrap_or(0);
            ServiceInfo {
                last_seen: logjet_core::event::format_ts(
                    &DateTime::from_timestamp_millis(ms as i64).unwrap_or_default(),
                ),
                error_rate: if total == 0 {
                    0.0
                } else {
                    errors as f64 / total as f64
                },
                name,
                total,
                by_level,
            }
        })
        .collect();
    Ok(ServicesResponse { services })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keys_cover_the_window_without_overlap() {
        let now = DateTime::from_timestamp(1_795_694_430, 0).unwrap(); // 12:00:30
        let (window, rate) =
            summary_keys(now, Duration::from_secs(86_400), Duration::from_secs(600));
        // oldest ragged hour: minutes from 12:01 (yesterday) to 13:00 (yesterday)
        assert_eq!(window[0], keys::counter_key(Bucket::M1, 1_795_608_060));
        let minutes = window.iter().filter(|k| k.contains(":m1:")).count();
        assert_eq!(minutes, 59);
        let hours: Vec<&String> = window.iter().filter(|k| k.contains(":h1:")).collect();
        assert_eq!(
            hours.first().unwrap().as_str(),
            keys::counter_key(Bucket::H1, 1_795_611_600)
        );
        assert_eq!(
            hours.last().unwrap().as_str(),
            keys::counter_key(Bucket::H1, 1_795_694_400)
        );
        assert_eq!(hours.len(), 24);
        assert_eq!(rate.len(), 60);
        assert_eq!(rate[0], keys::counter_key(Bucket::S1, 1_795_694_429));
    }

    #[test]
    fn the_archive_counts_the_minutes_before_redis() {
        let now = DateTime::from_timestamp(1_795_694_430, 0).unwrap(); // 12:00:30
        let day = Duration::from_secs(86_400);
        let from = now - chrono::Duration::days(7);
        let (first, redis_first) = archive_minutes(now, from, day);
        assert_eq!(
            first,
            1_795_694_430 - 7 * 86_400 + 30,
            "the first whole minute"
        );
        let (window, _) = summary_keys(now, day, Duration::from_secs(600));
        assert_eq!(window[0], keys::counter_key(Bucket::M1, redis_first));
        // Within Redis's window nothing is the archive's.
        let (first, redis_first) = archive_minutes(
            now,
            now - chrono::Duration::hours(2),
            Duration::from_secs(7200),
        );
        assert_eq!(first, redis_first);
    }

    #[test]
    fn summary_adds_hashes() {
        let mut s = empty_summary(Utc::now(), Utc::now());
        let h: HashMap<String, u64> = [
            ("api|error".to_string(), 2),
            ("web|info".to_string(), 3),
            ("junk".to_string(), 9),
        ]
        .into();
        add_counts(&mut s, &h);
        add_counts(&mut s, &h);
        assert_eq!(s.total, 10);
        assert_eq!(s.by_level["error"], 4);
        assert_eq!(s.by_level["fatal"], 0);
        assert_eq!(s.by_service["web"], 6);
        assert_eq!(s.by_service_level["api"]["error"], 4);
    }

    #[test]
    fn timeseries_filters_by_service() {
        let starts = timeseries_starts(Bucket::S10, 105, 130);
        assert_eq!(starts, vec![100, 110, 120, 130]);
        let h: HashMap<String, u64> =
            [("api|error".to_string(), 2), ("web|info".to_string(), 3)].into();
        let hashes = vec![h.clone(), HashMap::new(), h.clone(), h];
        let pts = reduce_timeseries(Bucket::S10, &starts, &hashes, Some("api"));
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[0].total, 2);
        assert_eq!(pts[1].total, 0);
        assert_eq!(pts[0].by_level["error"], 2);
        let all = reduce_timeseries(Bucket::S10, &starts, &hashes, None);
        assert_eq!(all[0].total, 5);
    }
}
