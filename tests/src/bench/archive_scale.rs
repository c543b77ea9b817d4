//! Needle search over large archives (issue 14): 5, 20 and 50 million events, and the tiers'
//! share of a needle search of the last 7 days when only the last hour is in Redis.
//!
//! The archives are written straight into a local directory by the archiver's own segment
//! writer and catalog (`SegmentWriter`, `Catalog::publish`: the same objects, names and index
//! objects the archiver writes), because a 50 M backlog does not fit the bench stream's 10 GiB
//! and would take the archive phase most of an hour; the archiver's own throughput is the
//! archive phase's row ([`super::archive`]). Each size extends the previous archive, spread
//! evenly over the last 7 days less an hour, in segments of `segment_events` events of one
//! service. Meanwhile a pipeline of its own (nats-server, redis-server, ingest, processor)
//! holds `recent_events` events of the last minutes in Redis and the stream, as production
//! would. Query is started on each archive and times `POST /logs/query {"contains": id,
//! "since": "7d"}` for request ids that occur once in the archive; its `tier_ms` gives each
//! tier's time, and its metrics the segments and row groups pruned, filtered and read.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use logjet_core::archive::segment::{SegmentOptions, SegmentWriter};
use logjet_core::archive::{ArchiveStore, Catalog, CatalogOptions};
use logjet_core::parse::{ParseOptions, flatten_json_object, normalize_flat};
use serde_json::Value;

use super::archive::{Row, files_under, get_text, search};
use super::lines;
use super::phases::pct;
use super::stack::{spawn_service, wait_counted, wait_ready};
use crate::platform::metric_in;
use crate::servers::{NatsServer, RedisServer};

/// The scale phase's settings.
pub struct ScalePlan {
    /// Archive sizes, ascending (events).
    pub sizes: Vec<u64>,
    pub needles: usize,
    /// Events per segment (one service each).
    pub segment_events: u64,
    /// Events of the last minutes in Redis and the stream.
    pub recent_events: u64,
}

/// Archived event `i`'s line number in [`lines::realistic`]: apart from the recent events'.
const ARCHIVE_LINE_BASE: u64 = 1 << 40;
/// The stream incarnation the archive's segments claim (not the live stream's: the archive
/// alone answers for them).
const INCARNATION: u64 = 1;
const SERVICES: u64 = 4;

fn service(i: u64) -> String {
    format!("svc-{}", (i / 1000) % SERVICES)
}

/// The request id of archived event `i`.
fn archived_request_id(i: u64) -> String {
    let line = lines::realistic(ARCHIVE_LINE_BASE + i, &service(i));
    let v: Value = serde_json::from_str(&line).expect("line");
    v["request_id"].as_str().expect("request_id").to_string()
}

/// Where the archive's events lie in time: `span` ending an hour ago, `max` events evenly.
#[derive(Clone, Copy)]
struct Timeline {
    start_ns: i64,
    step_ns: i64,
}

impl Timeline {
    fn new(now: DateTime<Utc>, max_events: u64) -> Timeline {
        let end = now - chrono::Duration::hours(1);
        let start = now - chrono::Duration::days(7) + chrono::Duration::hours(1);
        let span = (end - start).num_nanoseconds().unwrap_or(i64::MAX);
        Timeline {
            start_ns: start.timestamp_nanos_opt().unwrap_or(0),
            step_ns: span / max_events.max(1) as i64,
        }
    }

    fn ts(&self, i: u64) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.start_ns + i as i64 * self.step_ns)
    }
}

/// Writes archived events `from..to` of the services `mine` into the catalog's store, one
/// segment per `segment_events` events of a service (and one for each service's rest).
fn write_events(
    catalog: &Catalog,
    rt: &tokio::runtime::Handle,
    spool: &Path,
    timeline: Timeline,
    (from, to): (u64, u64),
    mine: &[u64],
    segment_events: u64,
) -> u64 {
    let mut writers: Vec<Option<SegmentWriter>> = (0..SERVICES).map(|_| None).collect();
    let mut segments = 0;
    let mut publish = |w: SegmentWriter| {
        let seg = w.finish().expect("finish segment");
        rt.block_on(catalog.publish(&seg)).expect("publish segment");
        segments += 1;
    };
    for i in from..to {
        let s = (i / 1000) % SERVICES;
        if !mine.contains(&s) {
            continue;
        }
        let name = service(i);
        let line = lines::realistic(ARCHIVE_LINE_BASE + i, &name);
        let ts = timeline.ts(i);
        let flat = flatten_json_object(line.as_bytes()).expect("realistic line");
        let mut event = normalize_flat(flat, &ParseOptions::new(ts)).expect("normalises");
        event.ts = ts;
        let canonical = serde_json::to_vec(&event).expect("serialises");
        let w = writers[s as usize].get_or_insert_with(|| {
            SegmentWriter::create(spool, &name, INCARNATION, SegmentOptions::default())
                .expect("segment writer")
        });
        w.append_line(1 + i / 1000, (i % 1000) as u32, &canonical)
            .expect("canonical line");
        if w.rows() >= segment_events
            && let Some(w) = writers[s as usize].take()
        {
            publish(w);
        }
    }
    for w in writers.into_iter().flatten() {
        publish(w);
    }
    segments
}

/// Extends the archive in `dir` with events `from..to` on two threads; returns the segments
/// written.
async fn extend(dir: &Path, timeline: Timeline, range: (u64, u64), segment_events: u64) -> u64 {
    let store = ArchiveStore::local(dir.to_path_buf()).expect("local archive");
    let catalog = Catalog::new(store, CatalogOptions::default());
    let spool = Arc::new(tempfile::tempdir().expect("spool"));
    let mut threads = Vec::new();
    for mine in [[0u64, 2], [1, 3]] {
        let (catalog, spool) = (catalog.clone(), spool.clone());
        let rt = tokio::runtime::Handle::current();
        threads.push(tokio::task::spawn_blocking(move || {
            write_events(
                &catalog,
                &rt,
                spool.path(),
                timeline,
                range,
                &mine,
                segment_events,
            )
        }));
    }
    let mut segments = 0;
    for t in threads {
        segments += t.await.expect("writer thread");
    }
    segments
}

/// Sends the recent events (ids apart from the archive's) through ingest, their times spread
/// over the last 50 minutes: Redis's window holds them, and its horizon is where it would be
/// in production (the stream part of a search then has nothing older to read).
async fn load_recent(http: &reqwest::Client, ingest: &str, events: u64) {
    let url = format!("{ingest}/logs");
    let start = Utc::now() - chrono::Duration::minutes(50);
    let step_ns = 50 * 60 * 1_000_000_000 / events.max(1) as i64;
    for b in 0..events.div_ceil(1000) {
        let body: String = (b * 1000..((b + 1) * 1000).min(events))
            .map(|i| {
                let ts = start + chrono::Duration::nanoseconds(i as i64 * step_ns);
                let line = lines::realistic(i, &service(i));
                format!("{{\"ts\":\"{}\",{}\n", ts.to_rfc3339(), &line[1..])
            })
            .collect();
        super::stack::post_ndjson_accepted(http, &url, body).await;
    }
}

pub async fn run(http: &reqwest::Client, bin_dir: &Path, plan: &ScalePlan) -> Vec<Row> {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let env = [
        ("LOGJET_NATS_URL", nats.url()),
        ("LOGJET_REDIS_URL", redis.url()),
    ];
    let ingest = spawn_service(bin_dir, "ingest", "logjet-ingest", &env[..1]).await;
    let processor = spawn_service(bin_dir, "processor", "logjet-processor", &env).await;
    wait_ready(http, &ingest.url).await;
    wait_ready(http, &processor.url).await;
    load_recent(http, &ingest.url, plan.recent_events).await;

    let dir = tempfile::tempdir().expect("archive dir");
    let archive_url = format!("file://{}", dir.path().display());
    let max = plan.sizes.iter().copied().max().unwrap_or(0);
    let timeline = Timeline::new(Utc::now(), max);
    let mut rows = Vec::new();
    let mut have = 0;
    let mut segments = 0;
    let mut counted = false;
    for &size in &plan.sizes {
        let m = size as f64 / 1e6;
        eprintln!("bench: archive scale — writing the archive up to {m}M events");
        let started = Instant::now();
        segments += extend(dir.path(), timeline, (have, size), plan.segment_events).await;
        let written = started.elapsed().as_secs_f64();
        have = size;
        let mut env = env.to_vec();
        env.push(("LOGJET_ARCHIVE_URL", archive_url.clone()));
        let query = spawn_service(bin_dir, "query", "logjet-query", &env).await;
        wait_ready(http, &query.url).await;
        if !counted {
            wait_counted(http, &query.url, plan.recent_events).await;
            counted = true;
        }
        // The catalog loads in the background: the first needle is found once it is.
        let loaded = Instant::now();
        loop {
            let (_, r) = search(http, &query.url, &archived_request_id(size / 3)).await;
            if r["events"].as_array().is_some_and(|e| e.len() == 1) {
                break;
            }
            assert!(
                loaded.elapsed() < Duration::from_secs(120),
                "needle never found: {r}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let metrics_url = format!("{}/metrics", query.url);
        let before = get_text(http, &metrics_url).await;
        let (mut lat, mut decoded) = (Vec::new(), Vec::new());
        let mut tiers = [0.0f64; 3];
        let mut retried = 0u64;
        for k in 0..plan.needles as u64 {
            let i = (k * 7_919_993 + 12_345) % size;
            // A 503 ("retry later") is retried as a client would, its time counted in.
            let (mut ms, mut r) = search(http, &query.url, &archived_request_id(i)).await;
            for _ in 0..2 {
                if r.get("error").is_none() {
                    break;
                }
                eprintln!("bench: needle {i}: {r}; retried");
                retried += 1;
                let (more, again) = search(http, &query.url, &archived_request_id(i)).await;
                (ms, r) = (ms + more, again);
            }
            let found = r["events"].as_array().map_or(0, Vec::len);
            assert_eq!(found, 1, "needle {i}: {r}");
            assert_eq!(r["source"], "archive", "needle {i}: {r}");
            lat.push(ms);
            decoded.push(r["scanned"].as_u64().unwrap_or(0) as f64);
            for (t, name) in ["redis", "stream", "archive"].iter().enumerate() {
                tiers[t] += r["tier_ms"][name].as_f64().unwrap_or(0.0);
            }
        }
        let after = get_text(http, &metrics_url).await;
        let delta = |name: &str, o: &str| {
            let series = format!("{name}{{outcome=\"{o}\"}}");
            (metric_in(&after, &series) as f64 - metric_in(&before, &series) as f64)
                / plan.needles.max(1) as f64
        };
        let seg = "logjet_query_archive_segments_total";
        let rg = "logjet_query_archive_row_groups_total";
        lat.sort_by(f64::total_cmp);
        decoded.sort_by(f64::total_cmp);
        let total_ms: f64 = tiers.iter().sum();
        let share = |t: usize| 100.0 * tiers[t] / total_ms.max(1e-9);
        let per_event = |sub: &str| files_under(&dir.path().join(sub), None).0 as f64 / size as f64;
        rows.push((
            format!("archive of {m}M events: segments / written in (s)"),
            format!("{segments} / {written:.0}"),
            String::new(),
        ));
        rows.push((
            "    bytes per event: Parquet / index objects".into(),
            format!("{:.1} / {:.1}", per_event("segments"), per_event("index")),
            String::new(),
        ));
        rows.push((
            format!("  needle (since 7 d), {m}M archived, p50 / p99 (ms)"),
            format!("{:.1} / {:.1}", pct(&lat, 0.5), pct(&lat, 0.99)),
            if size >= 50_000_000 {
                "p99 <= 1000".into()
            } else {
                String::new()
            },
        ));
        rows.push((
            "    searches answered 503 and retried".into(),
            retried.to_string(),
            String::new(),
        ));
        rows.push((
            "    per search: segments pruned / filtered / read".into(),
            format!(
                "{:.1} / {:.1} / {:.2}",
                delta(seg, "pruned"),
                delta(seg, "filtered"),
                delta(seg, "read")
            ),
            String::new(),
        ));
        rows.push((
            "    per search: row groups skipped / read; events decoded p50 / max".into(),
            format!(
                "{:.1} / {:.2}; {:.0} / {:.0}",
                delta(rg, "skipped"),
                delta(rg, "read"),
                pct(&decoded, 0.5),
                decoded.last().unwrap_or(&0.0)
            ),
            String::new(),
        ));
        rows.push((
            "    tiers' share of the time: redis / stream / archive".into(),
            format!("{:.0} % / {:.0} % / {:.0} %", share(0), share(1), share(2)),
            String::new(),
        ));
        drop(query);
    }
    drop((processor, ingest, redis, nats));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_spreads_the_archive_over_the_week_before_the_last_hour() {
        let now = Utc::now();
        let t = Timeline::new(now, 1_000);
        let first = t.ts(0);
        let last = t.ts(999);
        assert!(now - first < chrono::Duration::days(7));
        assert!(now - last >= chrono::Duration::hours(1));
        assert!(t.ts(1) > first);
    }

    #[test]
    fn archived_ids_differ_from_the_recent_ones() {
        let recent = lines::realistic(5, &service(5));
        assert!(!recent.contains(&archived_request_id(5)));
    }
}
