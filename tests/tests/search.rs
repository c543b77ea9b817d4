//! Search: the needle in 200,000 events, field filters, regex, levels, trace ids.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::platform::Platform;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unique_id_among_200k_events_is_found_without_scanning_them_all() {
    let p = Platform::start(1).await;
    const TOTAL: usize = 200_000;
    const PLANT: usize = 123_456;
    let mut i = 0;
    while i < TOTAL {
        let mut body = String::with_capacity(2000 * 220);
        for _ in 0..2000 {
            let level = ["info", "info", "warn", "error"][i % 4];
            let msg = if i == PLANT {
                "payment declined for req-needle-7f3a9c".to_string()
            } else {
                format!("GET /api/items/{} took {}ms req-{i:08x}", i % 1000, i % 300)
            };
            let order = if i == PLANT + 1 {
                "A-17".to_string()
            } else {
                format!("B-{}", i % 50_000)
            };
            body.push_str(
                &json!({"service": if i % 2 == 0 { "api" } else { "web" }, "level": level, "message": msg,
                        "order_id": order, "http": {"status": 200 + (i % 5) * 100}, "trace_id": format!("trace{i:010}")})
                .to_string(),
            );
            body.push('\n');
            i += 1;
        }
        assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    }
    p.wait_for_total(TOTAL as u64, Duration::from_secs(120))
        .await;

    // The needle: found, and only the chunks whose token filter says "maybe" were decoded.
    let r = p.query(json!({"contains": "REQ-NEEDLE-7F3A9C"})).await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(
        r["events"][0]["message"],
        "payment declined for req-needle-7f3a9c"
    );
    let scanned = r["scanned"].as_u64().unwrap();
    assert!(
        scanned <= 10_000,
        "scanned {scanned} of {TOTAL} events for one id"
    );
    assert!(r["next_cursor"].is_null());

    // An id that is nowhere: no chunk needs decoding beyond the filters' false positives.
    let r = p.query(json!({"contains": "req-does-not-exist-42"})).await;
    assert!(r["events"].as_array().unwrap().is_empty());
    assert!(r["scanned"].as_u64().unwrap() <= 10_000, "{}", r["scanned"]);

    // Field equality (by the filter language and by the `fields` shorthand), also index-backed.
    for body in [
        json!({"filter": "fields.order_id = \"A-17\""}),
        json!({"fields": {"order_id": "A-17"}}),
    ] {
        let r = p.query(body).await;
        let evs = r["events"].as_array().unwrap();
        assert_eq!(evs.len(), 1, "{r}");
        assert_eq!(evs[0]["fields"]["order_id"], "A-17");
        assert!(r["scanned"].as_u64().unwrap() <= 10_000);
    }

    // Trace id.
    let r = p
        .query(json!({"trace_id": format!("trace{:010}", 777)}))
        .await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1);
    assert!(r["scanned"].as_u64().unwrap() <= 10_000);

    // Numeric comparisons, min_level and regex together, newest first, limit respected.
    let r = p
        .query(json!({"service": "api", "min_level": "warn", "filter": "http.status >= 500", "regex": "^GET /api/items/9\\d\\d ", "limit": 20}))
        .await;
    let evs = r["events"].as_array().unwrap();
    assert_eq!(evs.len(), 20);
    let mut last = String::from("~");
    for e in evs {
        assert_eq!(e["service"], "api");
        assert!(e["level"] == "warn" || e["level"] == "error");
        assert!(e["fields"]["http.status"].as_u64().unwrap() >= 500);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("GET /api/items/9")
        );
        let ts = e["ts"].as_str().unwrap().to_string();
        assert!(ts <= last);
        last = ts;
    }
    assert!(r["next_cursor"].is_string());

    // Identifier needles match whole tokens only: a prefix of an id is not the id.
    let r = p.query(json!({"contains": "req-needle-7f3a"})).await;
    assert!(r["events"].as_array().unwrap().is_empty());
    // Plain words are substrings.
    let r = p.query(json!({"contains": "DECLINED", "limit": 5})).await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1);
}
