//! History beyond Redis, and late events.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::platform::Platform;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_older_than_redis_holds_are_found_in_the_stream() {
    let mut p = Platform::start(0).await;
    let mut cfg = p.processor_config();
    cfg.recent_retention = Duration::from_secs(2);
    p.add_processor_with(cfg).await;

    let r = p.post("application/json", json!({"service": "api", "level": "error", "message": "old failure history-needle-42a", "order": 7}).to_string()).await;
    assert_eq!(r.status(), 202);
    p.wait_for_total(1, Duration::from_secs(10)).await;
    let found = p.query(json!({"contains": "history-needle-42a"})).await;
    assert_eq!(
        found["events"].as_array().unwrap().len(),
        1,
        "fresh: from Redis"
    );
    assert_eq!(found["source"], "redis");

    // Let it age out of Redis' window; newer events trim the index.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let body: String = (0..100)
        .map(|i| json!({"service": "api", "message": format!("newer {i}")}).to_string() + "\n")
        .collect();
    assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    p.wait_for_total(101, Duration::from_secs(10)).await;

    let r = p.query(json!({"contains": "history-needle-42a"})).await;
    assert!(
        r["events"].as_array().unwrap().is_empty(),
        "no longer in Redis: {r}"
    );

    // With `since` further back than Redis holds, the stream answers, and says so.
    let r = p
        .query(json!({"contains": "history-needle-42a", "since": "10m"}))
        .await;
    let evs = r["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1, "{r}");
    assert_eq!(evs[0]["fields"]["order"], 7);
    assert_eq!(evs[0]["level"], "error");
    assert_eq!(r["source"], "stream");
    assert_eq!(r["truncated"], false);

    // A page that spans both: the newer events from Redis first, then the old one.
    let r = p
        .query(json!({"service": "api", "since": "10m", "limit": 150}))
        .await;
    let evs = r["events"].as_array().unwrap();
    assert_eq!(evs.len(), 101, "{}", r["source"]);
    assert_eq!(r["source"], "redis+stream");
    assert_eq!(
        evs.last().unwrap()["message"],
        "old failure history-needle-42a"
    );
    assert!(r["next_cursor"].is_null());

    // Paging with a cursor crosses from Redis into the stream without losing or repeating.
    let mut cursor = Value::Null;
    let mut seen = 0;
    let mut messages = std::collections::HashSet::new();
    loop {
        let r = p
            .query(json!({"service": "api", "since": "10m", "limit": 30, "cursor": cursor}))
            .await;
        for e in r["events"].as_array().unwrap() {
            assert!(
                messages.insert(e["message"].as_str().unwrap().to_string()),
                "repeated {e}"
            );
            seen += 1;
        }
        cursor = r["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, 101);

    // A scan budget that runs out is reported, with a cursor to continue. A page always reads
    // its first slice of the stream (16 messages), so more messages than that are needed.
    for i in 0..20 {
        let body = json!({"service": "api", "message": format!("later {i}")}).to_string();
        assert_eq!(p.post("application/json", body).await.status(), 202);
    }
    p.wait_for_total(121, Duration::from_secs(10)).await;
    let mut qcfg = logjet_tests::platform::query_config(&p.nats.url(), &p.redis.url());
    qcfg.max_scan_events = 20;
    let small = logjet_tests::platform::start_query(qcfg).await;
    let r: Value = p
        .http
        .post(format!("{}/logs/query", small.url()))
        .json(&json!({"service": "api", "since": "10m", "contains": "failure"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["truncated"], true, "{r}");
    assert!(r["next_cursor"].is_string(), "{r}");
    let (found, _) = follow(
        &small.url(),
        json!({"service": "api", "since": "10m", "contains": "failure"}),
        50,
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_events_count_in_their_own_minute_and_too_old_ones_are_refused() {
    let p = Platform::start(1).await;
    let now = chrono::Utc::now();
    let late = now - chrono::Duration::minutes(30);
    let body = format!(
        "{}\n{}\n{}\n",
        json!({"service": "late", "message": "late by 30 minutes", "ts": late.to_rfc3339()}),
        json!({"service": "late", "message": "on time"}),
        json!({"service": "late", "message": "two days late", "ts": (now - chrono::Duration::days(2)).to_rfc3339()}),
    );
    let r = p.post("application/x-ndjson", body).await;
    assert_eq!(r.status(), 202);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["accepted"], 2);
    assert_eq!(b["rejected"][0]["line"], 3);
    assert!(
        b["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("older than the retention"),
        "{b}"
    );
    p.wait_for_total(2, Duration::from_secs(10)).await;

    let ts: Value = p
        .http
        .get(format!(
            "{}/stats/timeseries?service=late&step=1m&from=1h",
            p.query_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = ts["points"].as_array().unwrap();
    let minute = |t: chrono::DateTime<chrono::Utc>| {
        logjet_core::event::format_ts(
            &chrono::DateTime::from_timestamp(t.timestamp() / 60 * 60, 0).unwrap(),
        )
    };
    let at = |m: String| {
        points
            .iter()
            .find(|p| p["ts"] == m.as_str())
            .map(|p| p["total"].as_u64().unwrap())
    };
    assert_eq!(at(minute(late)), Some(1), "late event in its own minute");
    assert_eq!(at(minute(now)), Some(1));
    assert_eq!(
        points
            .iter()
            .map(|p| p["total"].as_u64().unwrap())
            .sum::<u64>(),
        2
    );
}

/// The cursor of `body`'s pages, checked to move on every page. Returns the events and pages.
async fn follow(query: &str, body: Value, max_pages: usize) -> (Vec<Value>, usize) {
    let http = logjet_tests::http_client();
    let mut events = Vec::new();
    let mut cursor: Option<logjet_query::search::Cursor> = None;
    let mut raw = Value::Null;
    for page in 1..=max_pages {
        let mut b = body.clone();
        b["cursor"] = raw.clone();
        let r: Value = http
            .post(format!("{query}/logs/query"))
            .json(&b)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        events.extend(r["events"].as_array().expect("events").iter().cloned());
        raw = r["next_cursor"].clone();
        let Some(s) = raw.as_str() else {
            return (events, page);
        };
        let next = logjet_query::search::Cursor::decode(s).expect("a cursor");
        if let Some(prev) = &cursor {
            assert!(
                next.advanced_from(prev),
                "page {page}: cursor {next:?} did not advance from {prev:?}"
            );
        }
        cursor = Some(next);
    }
    panic!("still not at the end after {max_pages} pages");
}

/// Issue 14: a truncated history page used to hand back a cursor at the same place, so past a
/// busy minute history search never progressed. Now every page moves down the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_needle_behind_many_newer_events_is_reached_by_following_cursors() {
    // No processor: Redis holds nothing, so everything older than now is history.
    let p = Platform::start(0).await;
    let js = async_nats::jetstream::new(p.nats_client().await);
    let now = chrono::Utc::now();
    let needle = json!({"service": "api", "level": "error", "message": "lost order hist-needle-77q",
        "ts": (now - chrono::Duration::seconds(90)).to_rfc3339()});
    js.publish("logs.api", needle.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    const MESSAGES: usize = 200;
    const PER_MESSAGE: usize = 1000;
    let busy_ts = (now - chrono::Duration::seconds(60)).to_rfc3339();
    let mut acks = Vec::new();
    for m in 0..MESSAGES {
        let body: String = (0..PER_MESSAGE)
            .map(|i| {
                json!({"service": "api", "message": format!("busy {m}-{i}"), "ts": busy_ts})
                    .to_string()
                    + "\n"
            })
            .collect();
        acks.push(js.publish("logs.api", body.into()).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }

    // A budget of 20,000 decoded events per page: ten pages' worth of busy events above the needle.
    let mut cfg = logjet_tests::platform::query_config(&p.nats.url(), &p.redis.url());
    cfg.max_scan_events = 20_000;
    let q = logjet_tests::platform::start_query(cfg).await;
    let started = std::time::Instant::now();
    let (found, pages) = follow(
        &q.url(),
        json!({"service": "api", "contains": "hist-needle-77q", "since": "10m"}),
        60,
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["message"], "lost order hist-needle-77q");
    assert!(
        pages > 2,
        "the budget should have cut it into pages: {pages}"
    );
    eprintln!("needle after {pages} pages, {:?}", started.elapsed());

    // Every event exactly once, newest message first, by following the cursor; pages of 250
    // from messages of 100 events end inside messages.
    let mut acks = Vec::new();
    for m in 0..30 {
        let body: String = (0..100)
            .map(|i| {
                json!({"service": "web", "message": format!("web {m}-{i}"), "ts": busy_ts})
                    .to_string()
                    + "\n"
            })
            .collect();
        acks.push(js.publish("logs.web", body.into()).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    let (all, pages) = follow(
        &q.url(),
        json!({"service": "web", "since": "10m", "limit": 250}),
        20,
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        assert!(
            seen.insert(e["message"].as_str().unwrap().to_string()),
            "twice: {e}"
        );
    }
    assert_eq!(all.len(), 3000, "in {pages} pages");
    assert!((12..=13).contains(&pages), "{pages} pages");
    let messages: Vec<&str> = all.iter().map(|e| e["message"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..30)
        .rev()
        .flat_map(|m| (0..100).rev().map(move |i| format!("web {m}-{i}")))
        .collect();
    assert_eq!(messages, expected);
    eprintln!("all in {:?}", started.elapsed());
}
