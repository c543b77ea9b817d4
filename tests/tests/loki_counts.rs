//! Loki metric queries answered from the per-minute counters (query/src/loki/counts.rs), against
//! real nats and redis: a second query service with `LOGJET_LOKI_COUNTED_ABOVE=0` answers every
//! selector-only `count_over_time`/`rate` at whole-minute steps from the counters. Expected values
//! are computed here from the events sent, by the counters' documented convention (a window
//! `(t - range, t]` is the minutes `[t - range, t)`), and a line-filter query over the same events
//! is still read event by event, with Loki's convention.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::loki::matrix;
use logjet_tests::platform::{Platform, query_config, start_query};
use serde_json::{Value, json};

const SEC: i64 = 1_000_000_000;

async fn range(http: &reqwest::Client, base: &str, q: &str, start: i64, end: i64) -> Value {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/loki/api/v1/query_range"),
        [
            ("query", q.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "60000ms".to_string()),
        ],
    )
    .unwrap();
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selector_counts_come_from_the_minute_counters() {
    let p = Platform::start(1).await;
    let now = chrono::Utc::now().timestamp();
    // Whole minutes, 30 minutes ago; one event a second, so every 60th is stamped on a minute.
    let t0 = (now - 1800) / 60 * 60 * SEC;
    let sent: Vec<(i64, &str, &str)> = (0..600)
        .map(|i| {
            let service = if i % 3 == 1 { "auth" } else { "checkout" };
            (
                t0 + i * SEC,
                service,
                ["info", "warn", "error"][(i / 7) as usize % 3],
            )
        })
        .collect();
    let body: String = sent
        .iter()
        .map(|(ts, service, level)| {
            json!({"ts": chrono::DateTime::from_timestamp_nanos(*ts).to_rfc3339(),
                   "service": service, "level": level, "message": format!("ord-{ts} done")})
            .to_string()
                + "\n"
        })
        .collect();
    assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    p.wait_for_total(sent.len() as u64, Duration::from_secs(60))
        .await;
    let mut cfg = query_config(&p.nats.url(), &p.redis.url());
    cfg.loki.loki_counted_above = 0;
    let counted = start_query(cfg).await;
    p.wait_ready(&counted.url()).await;
    let (start, end) = (t0 - 60 * SEC, t0 + 660 * SEC);
    let count = |level: &str, t: i64, counters: bool| {
        sent.iter()
            .filter(|(ts, s, l)| {
                let inside = if counters {
                    *ts >= t - 60 * SEC && *ts < t
                } else {
                    *ts > t - 60 * SEC && *ts <= t
                };
                *s == "checkout" && *l == level && inside
            })
            .count() as f64
    };

    for (q, counters) in [
        (
            r#"sum by (level) (count_over_time({service="checkout"}[1m]))"#,
            true,
        ),
        (
            r#"sum by (level) (count_over_time({service="checkout"} |= "ord-" [1m]))"#,
            false,
        ),
    ] {
        let r = range(&p.http, &counted.url(), q, start, end).await;
        let m = matrix(&r);
        assert_eq!(m.len(), 3, "one series per level: {r}");
        let mut differs = false;
        for (labels, pts) in &m {
            let level = labels["level"].as_str().unwrap();
            for (t, v) in pts {
                assert_eq!(*v, count(level, t * SEC, counters), "{q}: {level} at {t}");
                differs |= count(level, t * SEC, true) != count(level, t * SEC, false);
            }
            let total: f64 = pts.iter().map(|p| p.1).sum();
            let want = sent
                .iter()
                .filter(|(_, s, l)| *s == "checkout" && *l == level)
                .count() as f64;
            assert_eq!(
                total, want,
                "{q}: {level}: every event in exactly one window"
            );
        }
        // The two conventions disagree on the events stamped on a minute: this run tells them apart.
        assert!(differs, "{q}: no point where the conventions differ");
    }
    // Few events: the default threshold reads them, exactly as Loki windows them.
    let r = range(
        &p.http,
        &p.query_url(),
        r#"sum by (level) (count_over_time({service="checkout"}[1m]))"#,
        start,
        end,
    )
    .await;
    for (labels, pts) in &matrix(&r) {
        let level = labels["level"].as_str().unwrap();
        for (t, v) in pts {
            assert_eq!(*v, count(level, t * SEC, false), "default: {level} at {t}");
        }
    }
    counted.stop().await;
}
