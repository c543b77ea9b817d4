//! Runbook operations: rebuilding Redis from the stream, replaying dead letters.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::platform::Platform;
use serde_json::{Value, json};

async fn get(p: &Platform, path: &str) -> Value {
    let r = p
        .http
        .get(format!("{}{path}", p.query_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// Everything the query API derives from Redis, minus what depends on the wall clock.
async fn snapshot(p: &Platform) -> Value {
    let mut summary = get(p, "/stats/summary").await;
    for k in ["events_per_sec", "since", "until"] {
        summary.as_object_mut().unwrap().remove(k);
    }
    let ts = get(p, "/stats/timeseries?step=1m&from=2h").await;
    let points: Vec<Value> = ts["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["total"] != 0)
        .cloned()
        .collect();
    let mut patterns = get(p, "/patterns?since=2h&limit=1000").await;
    let pats: Vec<Value> = patterns["patterns"]
        .as_array_mut()
        .unwrap()
        .iter()
        .map(|p| json!({"template": p["template"], "count": p["count"], "first": p["first_seen"], "last": p["last_seen"]}))
        .collect();
    let services = get(p, "/services").await;
    let search = p.query(json!({"service": "api", "limit": 1000})).await;
    let messages: Vec<Value> = search["events"].as_array().unwrap().to_vec();
    json!({"summary": summary, "timeseries": points, "patterns": pats, "services": services, "api_events": messages})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_from_the_stream_reproduces_the_aggregates_exactly() {
    let mut p = Platform::start(2).await;
    let now = chrono::Utc::now();
    let mut body = String::new();
    for i in 0..3000 {
        let svc = ["api", "web", "billing"][i % 3];
        let level = ["info", "warn", "error", "debug"][(i / 3) % 4];
        let mut ev = json!({"service": svc, "level": level, "message": format!("request {} took {}ms for user u-{}", i, i % 700, i % 13), "n": i});
        if i % 10 == 0 {
            // Late events land in their own (older) minutes.
            ev["ts"] = json!((now - chrono::Duration::minutes(40 + (i % 30) as i64)).to_rfc3339());
        }
        body.push_str(&ev.to_string());
        body.push('\n');
    }
    assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    let nc = p.nats_client().await;
    for i in 0..300 {
        nc.publish(
            format!("logs.{}", ["api", "cron"][i % 2]),
            format!("WARN disk {}% full on node-{}", 80 + i % 20, i % 7).into(),
        )
        .await
        .unwrap();
    }
    nc.publish("logs.api", "{\"broken".into()).await.unwrap();
    nc.flush().await.unwrap();
    p.wait_for_total(3300, Duration::from_secs(30)).await;
    let before = snapshot(&p).await;
    assert_eq!(before["summary"]["total"], 3300);

    // Redis loses everything.
    p.redis.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&p, "/stats/summary").await["total"], 0);

    // Rebuild, with the processors still running beside it.
    let cfg = p.processor_config();
    let report = logjet_processor::rebuild::rebuild(&cfg, |_| {})
        .await
        .unwrap();
    assert_eq!(report.events_applied, 3300);
    assert_eq!(report.rejected_lines, 1);
    let after = snapshot(&p).await;
    assert_eq!(after, before, "the rebuilt aggregates differ");

    // Running it again changes nothing.
    let again = logjet_processor::rebuild::rebuild(&cfg, |_| {})
        .await
        .unwrap();
    assert_eq!(again.events_applied, 0);
    assert_eq!(
        again.already_applied,
        again.messages - 1,
        "every message but the dead letter"
    );
    assert_eq!(snapshot(&p).await, before);
    p.processors.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_replayed_once_to_their_original_subject() {
    let p = Platform::start(1).await;
    let nc = p.nats_client().await;
    // A payload a previous version could not read, dead-lettered with its original subject.
    let js = async_nats::jetstream::new(nc.clone());
    let mut hdrs = async_nats::HeaderMap::new();
    hdrs.insert("Logjet-Dlq-Subject", "logs.billing");
    hdrs.insert(
        "Logjet-Dlq-Reason",
        "line 1: a reason from an older version",
    );
    for i in 0..3 {
        js.publish_with_headers(
            "deadletter.logs.billing",
            hdrs.clone(),
            format!("recovered line {i}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // And one that is still bad: it goes back to the DLQ after replay.
    nc.publish("logs.billing", "{\"still broken".into())
        .await
        .unwrap();
    nc.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cfg = p.processor_config();
    let dry = logjet_processor::dlq::replay(&cfg, true, None)
        .await
        .unwrap();
    assert_eq!(dry.replayed, 4);
    let report = logjet_processor::dlq::replay(&cfg, false, None)
        .await
        .unwrap();
    assert_eq!(report.replayed, 4);
    p.wait_for_total(3, Duration::from_secs(10)).await;
    let r = p
        .query(json!({"service": "billing", "contains": "recovered line"}))
        .await;
    assert_eq!(r["events"].as_array().unwrap().len(), 3);
    // The DLQ holds only the still-broken payload again (dead-lettered anew), and a second replay
    // does not duplicate the recovered ones.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut dlq = js.get_stream("LOGS_DLQ").await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    let second = logjet_processor::dlq::replay(&cfg, false, None)
        .await
        .unwrap();
    assert_eq!(second.replayed, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(p.summary().await["total"], 3);
}
