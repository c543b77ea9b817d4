//! Query across the tiers (issue 14): Redis, the stream not yet archived, and the archive.
//!
//! The test archives like the archiver does, with `logjet_core::archive`: it reads messages
//! through the durable consumer `archiver`, writes each into a segment, publishes the segment
//! (object, then index object) and only then acknowledges the message, so the consumer's ack
//! floor says what is archived. The archive is a local directory.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use logjet_core::archive::{ArchiveStore, Catalog, CatalogOptions, SegmentOptions, SegmentWriter};
use logjet_tests::platform::{Platform, Svc, query_config, start_query};
use serde_json::{Value, json};

/// Messages published, each one `(service, lines)`; returns their stream sequences.
async fn publish(js: &jetstream::Context, messages: &[(&str, Vec<Value>)]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for (service, lines) in messages {
        let body: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        let ack = js
            .publish(format!("logs.{service}"), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        seqs.push(ack.sequence);
    }
    seqs
}

/// Archives the next `n` messages of the consumer `archiver`, one segment each; acknowledges
/// those whose index in `ack` is true. Returns the segments' object paths by sequence.
async fn archive(
    js: &jetstream::Context,
    catalog: &Catalog,
    spool: &Path,
    n: usize,
    ack: &[bool],
) -> HashMap<u64, String> {
    let mut stream = js.get_stream("LOGS").await.unwrap();
    let incarnation =
        (stream.info().await.unwrap().created.unix_timestamp_nanos() / 1_000_000) as u64;
    let consumer = stream
        .get_or_create_consumer(
            "archiver",
            consumer::pull::Config {
                durable_name: Some("archiver".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(n).messages().await.unwrap();
    let mut paths = HashMap::new();
    let mut i = 0;
    while let Some(msg) = batch.next().await {
        let msg = msg.unwrap();
        let info = msg.info().unwrap();
        let seq = info.stream_sequence;
        let published = logjet_core::jetstream::published_at(&info);
        let opts = logjet_core::message::message_options(
            msg.subject.as_str(),
            published,
            Duration::from_secs(86_400),
        );
        let events = logjet_core::message::decode_message(&msg.payload, false, &opts).events;
        let mut w = SegmentWriter::create(
            spool,
            &events[0].service,
            incarnation,
            SegmentOptions::default(),
        )
        .unwrap();
        for (idx, ev) in events.iter().enumerate() {
            w.append_event(seq, idx as u32, ev).unwrap();
        }
        let seg = w.finish().unwrap();
        let meta = catalog.publish(&seg).await.unwrap();
        paths.insert(seq, meta.segment().to_string());
        if ack[i] {
            msg.double_ack().await.unwrap();
        }
        i += 1;
    }
    assert_eq!(i, n);
    paths
}

async fn query(q: &Svc, body: Value) -> Value {
    let r = logjet_tests::http_client()
        .post(format!("{}/logs/query", q.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// Follows the cursor to the end; every cursor moves on. Returns the events' messages and the
/// responses.
async fn follow(q: &Svc, body: Value) -> (Vec<String>, Vec<Value>) {
    let mut messages = Vec::new();
    let mut pages = Vec::new();
    let mut prev: Option<logjet_query::search::Cursor> = None;
    let mut cursor = Value::Null;
    for _ in 0..200 {
        let mut b = body.clone();
        b["cursor"] = cursor.clone();
        let r = query(q, b).await;
        for e in r["events"].as_array().unwrap() {
            messages.push(e["message"].as_str().unwrap().to_string());
        }
        cursor = r["next_cursor"].clone();
        pages.push(r);
        let Some(s) = cursor.as_str() else {
            return (messages, pages);
        };
        let c = logjet_query::search::Cursor::decode(s).unwrap();
        if let Some(p) = &prev {
            assert!(c.advanced_from(p), "{c:?} after {p:?}");
        }
        prev = Some(c);
    }
    panic!("no end after 200 pages");
}

fn line(service: &str, message: &str, age_min: i64) -> Value {
    let ts = chrono::Utc::now() - chrono::Duration::minutes(age_min);
    json!({"service": service, "message": message, "ts": ts.to_rfc3339(), "level": "info"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_spans_stream_and_archive_and_returns_each_event_once() {
    // No processor: Redis holds nothing, so everything older than now is history.
    let p = Platform::start(0).await;
    let js = jetstream::new(p.nats_client().await);
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let store = ArchiveStore::local(dir.path().to_path_buf()).unwrap();
    let catalog = Catalog::new(store, CatalogOptions::default());

    let seqs = publish(
        &js,
        &[
            (
                "api",
                vec![
                    line("api", "old needle arch-needle-5k1", 50),
                    line("api", "a1", 50),
                ],
            ),
            (
                "api",
                vec![
                    line("api", "a2", 40),
                    line("api", "a3", 40),
                    line("api", "a4", 40),
                ],
            ),
            ("web", vec![line("web", "w1", 35), line("web", "w2", 35)]),
            // Archived but not acknowledged: in the archive and the stream, returned once.
            (
                "api",
                vec![line("api", "both1", 30), line("api", "both2", 30)],
            ),
            // Not archived: the stream's alone.
            ("api", vec![line("api", "s1", 20)]),
            ("web", vec![line("web", "s2", 10)]),
        ],
    )
    .await;
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let segments = archive(&js, &catalog, spool.path(), 4, &[true, true, true, false]).await;
    assert_eq!(segments.len(), 4);

    let mut cfg = query_config(&p.nats.url(), &p.redis.url());
    cfg.archive.archive_url = format!("file://{}", dir.path().display());
    cfg.archive.retention_rules = "7d".into();
    cfg.archive_read.archive_refresh = Duration::from_millis(200);
    let q = start_query(cfg).await;

    // Until the catalog is loaded the stream answers for all it holds, and says so; then the
    // needle comes from the archive only (its message is acknowledged, so the stream part read
    // is above it).
    let started = std::time::Instant::now();
    let found = loop {
        let r = query(&q, json!({"contains": "arch-needle-5k1", "since": "2h"})).await;
        if r["warnings"].to_string().contains("not loaded yet") {
            assert_eq!(r["source"], "stream", "{r}");
        } else {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never found: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found["events"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["events"][0]["message"], "old needle arch-needle-5k1");
    assert_eq!(found["source"], "archive", "{found}");
    assert!(found.get("warnings").is_none(), "{found}");

    // Everything, once, across the tiers; pages of 3 keep the cursor crossing from the stream
    // into the archive.
    let (all, pages) = follow(&q, json!({"since": "2h", "limit": 3})).await;
    let mut sorted = all.clone();
    sorted.sort();
    let mut expected = vec![
        "old needle arch-needle-5k1",
        "a1",
        "a2",
        "a3",
        "a4",
        "w1",
        "w2",
        "both1",
        "both2",
        "s1",
        "s2",
    ];
    expected.sort();
    assert_eq!(sorted, expected, "in {} pages: {pages:?}", pages.len());
    // The stream answers first (newest message first), then the archive (newest event first).
    assert_eq!(&all[..4], ["s2", "s1", "both2", "both1"]);
    assert_eq!(all.last().unwrap(), "old needle arch-needle-5k1");
    let sources: Vec<&str> = pages
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"stream+archive") || sources.contains(&"archive"),
        "{sources:?}"
    );

    // One service, filtered by level count pruning and a token probe.
    let r = query(&q, json!({"service": "web", "since": "2h"})).await;
    let msgs: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["s2", "w2", "w1"], "{r}");
    assert_eq!(r["source"], "stream+archive");

    // A corrupt segment is named in `warnings` and skipped; the rest still answers.
    let web = &segments[&3];
    let file = dir.path().join(web);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let r = query(&q, json!({"since": "2h", "limit": 100})).await;
    let msgs: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs.len(), 9, "{r}");
    assert!(!msgs.contains(&"w1"));
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains(web.as_str()), "{r}");
    assert!(warnings.contains("skipped"), "{r}");

    // `since` beyond retention says so.
    let r = query(&q, json!({"since": "30d", "contains": "arch-needle-5k1"})).await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["warnings"].to_string().contains("before retention"),
        "{r}"
    );
}

/// A line of `level`, `age` old.
fn aged(service: &str, level: &str, message: &str, age: chrono::Duration) -> Value {
    let ts = chrono::Utc::now() - age;
    json!({"service": service, "message": message, "ts": ts.to_rfc3339(), "level": level})
}

/// Writes one segment of `lines` (one service) as if archived from an older stream incarnation
/// (sequences from `first_seq`), and commits it.
async fn archive_lines(catalog: &Catalog, spool: &Path, first_seq: u64, lines: &[Value]) {
    let published = chrono::Utc::now();
    let opts = logjet_core::message::message_options(
        "logs.x",
        published,
        Duration::from_secs(90 * 86_400),
    );
    let body: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    let events = logjet_core::message::decode_message(body.as_bytes(), false, &opts).events;
    assert_eq!(events.len(), lines.len());
    let mut w =
        SegmentWriter::create(spool, &events[0].service, 1, SegmentOptions::default()).unwrap();
    for (i, ev) in events.iter().enumerate() {
        w.append_event(first_seq + i as u64, 0, ev).unwrap();
    }
    catalog.publish(&w.finish().unwrap()).await.unwrap();
}

async fn get(q: &Svc, path: &str) -> Value {
    let r = logjet_tests::http_client()
        .get(format!("{}{path}", q.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// The points of a time series with events, as `(age in hours, total, errors)`.
fn nonzero_points(ts: &Value) -> Vec<(i64, u64, u64)> {
    let now = chrono::Utc::now();
    ts["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["total"].as_u64().unwrap() > 0)
        .map(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["ts"].as_str().unwrap()).unwrap();
            (
                (now - t.with_timezone(&chrono::Utc)).num_hours(),
                p["total"].as_u64().unwrap(),
                p["by_level"]["error"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_beyond_redis_come_from_the_archive_and_count_each_event_once() {
    // A processor counts the recent events in Redis; they are archived too.
    let p = Platform::start(1).await;
    let js = jetstream::new(p.nats_client().await);
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let store = ArchiveStore::local(dir.path().to_path_buf()).unwrap();
    let catalog = Catalog::new(store, CatalogOptions::default());
    let h = chrono::Duration::hours;
    let d = chrono::Duration::days;

    publish(
        &js,
        &[
            (
                "api",
                vec![
                    aged("api", "info", "recent 1", h(2)),
                    aged("api", "info", "recent 2", h(2)),
                ],
            ),
            ("web", vec![aged("web", "error", "recent 3", h(2))]),
        ],
    )
    .await;
    p.wait_for_total(3, Duration::from_secs(20)).await;
    archive(&js, &catalog, spool.path(), 2, &[true, true]).await;
    // Older than Redis's counters (24 h): only the archive has them.
    archive_lines(
        &catalog,
        spool.path(),
        100,
        &[
            aged("api", "info", "3 days 1", d(3)),
            aged("api", "info", "3 days 2", d(3)),
            aged("api", "error", "3 days 3", d(3)),
        ],
    )
    .await;
    archive_lines(
        &catalog,
        spool.path(),
        200,
        &[aged("web", "warn", "10 days", d(10))],
    )
    .await;
    // Past the archive's retention (30 d): not counted.
    archive_lines(
        &catalog,
        spool.path(),
        300,
        &[aged("api", "info", "40 days", d(40))],
    )
    .await;

    let mut cfg = query_config(&p.nats.url(), &p.redis.url());
    cfg.archive.archive_url = format!("file://{}", dir.path().display());
    cfg.archive.retention_rules = "30d".into();
    cfg.archive_read.archive_refresh = Duration::from_millis(200);
    let q = start_query(cfg).await;

    // Until the catalog is loaded, counts reach back as far as Redis's.
    let started = std::time::Instant::now();
    let month = loop {
        let s = get(&q, "/stats/summary?from=30d").await;
        if s["total"] != 3 {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(month["total"], 7, "{month}");
    assert_eq!(month["by_level"]["info"], 4, "{month}");
    assert_eq!(month["by_level"]["error"], 2, "{month}");
    assert_eq!(month["by_level"]["warn"], 1, "{month}");
    assert_eq!(month["by_service"]["api"], 5, "{month}");
    assert_eq!(month["by_service_level"]["web"]["warn"], 1, "{month}");
    assert_eq!(month["by_service_level"]["web"]["error"], 1, "{month}");
    let since = chrono::DateTime::parse_from_rfc3339(month["since"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - since.with_timezone(&chrono::Utc)) > d(29));

    let week = get(&q, "/stats/summary?from=7d").await;
    assert_eq!(week["total"], 6, "{week}");
    // Without `from`, the summary is Redis's window, as before.
    assert_eq!(get(&q, "/stats/summary").await["total"], 3);
    // `from` beyond the archive's retention is clamped to it.
    assert_eq!(get(&q, "/stats/summary?from=60d").await["total"], 7);

    // Hourly points: the 3-day-old and 10-day-old ones from the archive, the recent one from
    // Redis only (the archive holds those events too).
    let ts = get(&q, "/stats/timeseries?from=30d&step=1h").await;
    let points = nonzero_points(&ts);
    assert_eq!(points.len(), 3, "{points:?}");
    assert!(matches!(points[0], (240..=241, 1, 0)), "{points:?}");
    assert!(matches!(points[1], (72..=73, 3, 1)), "{points:?}");
    assert!(matches!(points[2], (2..=3, 3, 1)), "{points:?}");
    let total: u64 = ts["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 7, "{ts}");
    let web = get(&q, "/stats/timeseries?from=30d&service=web").await;
    assert_eq!(web["step_secs"], 3600);
    let points = nonzero_points(&web);
    assert_eq!(points.len(), 2, "{points:?}");
    assert!(matches!(points[0], (240..=241, 1, 0)), "{points:?}");
    assert!(matches!(points[1], (2..=3, 1, 1)), "{points:?}");
}

/// A needle costs the row groups whose token filter may hold it, not its segment: 20,000 events
/// of one segment in row groups of 1,000, one of them a needle; the search decodes at most two
/// row groups (a false positive allowed), skips the others, says so in query's metrics, and
/// reports the archive's time in `tier_ms`.
#[tokio::test]
async fn a_needle_decodes_only_the_row_groups_whose_filter_may_hold_it() {
    let p = Platform::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let store = ArchiveStore::local(dir.path().to_path_buf()).unwrap();
    let catalog = Catalog::new(store, CatalogOptions::default());
    let opts = SegmentOptions {
        row_group_rows: 1_000,
        ..SegmentOptions::default()
    };
    let start = chrono::Utc::now() - chrono::Duration::hours(5);
    let mut w = SegmentWriter::create(spool.path(), "api", 1, opts).unwrap();
    for i in 0..20_000u64 {
        let message = if i == 12_345 {
            "payment declined rg-needle-77f1".to_string()
        } else {
            format!("request req-{i:06x}z served in {}ms", i % 97)
        };
        let ev = logjet_core::LogEvent {
            ts: start + chrono::Duration::milliseconds(i as i64),
            service: "api".into(),
            level: logjet_core::Level::Info,
            message,
            fields: Default::default(),
            trace_id: None,
            host: None,
        };
        w.append_event(1 + i / 100, (i % 100) as u32, &ev).unwrap();
    }
    catalog.publish(&w.finish().unwrap()).await.unwrap();

    let mut cfg = query_config(&p.nats.url(), &p.redis.url());
    cfg.archive.archive_url = format!("file://{}", dir.path().display());
    cfg.archive.retention_rules = "7d".into();
    let q = start_query(cfg).await;
    let started = std::time::Instant::now();
    let found = loop {
        let r = query(&q, json!({"contains": "rg-needle-77f1", "since": "1d"})).await;
        if r["events"].as_array().is_some_and(|e| e.len() == 1) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never found: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found["source"], "archive", "{found}");
    assert_eq!(
        found["events"][0]["message"],
        "payment declined rg-needle-77f1"
    );
    let scanned = found["scanned"].as_u64().unwrap();
    assert!(
        scanned <= 2_000,
        "decoded {scanned} events of 20,000 for one needle"
    );
    assert!(found["tier_ms"]["archive"].as_f64().is_some(), "{found}");
    let (http, base) = (logjet_tests::http_client(), q.url());
    let series = |s: &'static str| logjet_tests::platform::metric(&http, &base, s);
    let skipped = series("logjet_query_archive_row_groups_total{outcome=\"skipped\"}").await;
    assert!(skipped >= 18, "{skipped} row groups skipped");
    let read = series("logjet_query_archive_segments_total{outcome=\"read\"}").await;
    assert!(read >= 1, "{read} segments read");
}
