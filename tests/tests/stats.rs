//! Pipeline statistics (consumer lag) and the services list.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_is_what_keda_would_read_and_services_are_listed() {
    let mut p = Platform::start(1).await;
    let body: String = (0..10)
        .map(|i| json!({"service": if i < 7 { "api" } else { "web" }, "level": if i % 2 == 0 { "error" } else { "info" }, "message": format!("m{i}")}).to_string() + "\n")
        .collect();
    assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    p.wait_for_total(10, Duration::from_secs(10)).await;
    let s = get(&p, "/stats/pipeline").await;
    assert_eq!(s["consumer"]["name"], "processor");
    assert_eq!(s["consumer"]["lag"], 0, "{s}");
    assert!(s["stream"]["messages"].as_u64().unwrap() >= 1);

    // With the processors gone, every published message is lag.
    for svc in p.processors.drain(..) {
        svc.stop().await;
    }
    for i in 0..5 {
        let r = p
            .http
            .post(format!("{}/logs", p.ingest_url()))
            .header("content-type", "text/plain")
            .header("idempotency-key", format!("lag-{i}"))
            .body(format!("line {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let s = get(&p, "/stats/pipeline").await;
    assert_eq!(s["consumer"]["lag"], 5, "{s}");
    assert_eq!(
        s["consumer"]["num_pending"].as_u64().unwrap()
            + s["consumer"]["num_ack_pending"].as_u64().unwrap(),
        5
    );

    let services = get(&p, "/services").await;
    let list = services["services"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{services}");
    let api = list.iter().find(|s| s["name"] == "api").unwrap();
    assert_eq!(api["total"], 7);
    assert_eq!(api["by_level"]["error"], 4);
    assert!((api["error_rate"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-9);
    assert!(api["last_seen"].as_str().unwrap().starts_with("20"));
}
