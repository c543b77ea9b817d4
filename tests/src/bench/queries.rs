//! The query latencies of the pipeline bench, with the data loaded: `/stats/summary`,
//! `/stats/timeseries`, `/patterns` and a needle search (one unique id), and their table rows.

use serde_json::{Value, json};

use crate::bench::latency::latencies;
use crate::bench::phases::pct;
use crate::bench::report::{Row, row};
use crate::bench::stack::wait_counted;

/// Query latencies with the data loaded, and the needle search's result.
pub struct Queries {
    summary: Vec<f64>,
    timeseries: Vec<f64>,
    patterns: Vec<f64>,
    needle: Vec<f64>,
    /// Events the needle search decoded.
    needle_scanned: u64,
    /// Each tier's time in one needle search (`tier_ms`), e.g. `redis 1.2 / stream 3.4`.
    needle_tiers: String,
}

/// Posts one needle event (so `loaded + 1` are counted), then measures the queries.
pub async fn query_phase(
    http: &reqwest::Client,
    ingest: &str,
    query: &str,
    loaded: u64,
    samples: usize,
) -> Queries {
    let needle = format!("needle-{:x}", std::process::id() as u64 * 7919 + 17);
    let r = http
        .post(format!("{ingest}/logs"))
        .header("content-type", "application/json")
        .body(json!({"service": "svc-1", "level": "error", "message": format!("payment failed for {needle}")}).to_string())
        .send()
        .await
        .expect("needle");
    assert_eq!(r.status(), 202);
    let _ = wait_counted(http, query, loaded + 1).await;
    let get = async |path: &str| {
        latencies(
            http,
            reqwest::Method::GET,
            &format!("{query}{path}"),
            None,
            samples,
        )
        .await
    };
    let summary = get("/stats/summary").await;
    let timeseries = get("/stats/timeseries?from=1h&step=10s").await;
    let patterns = get("/patterns?since=1h").await;
    let needle_body = json!({"contains": needle}).to_string();
    let needle_latency = latencies(
        http,
        reqwest::Method::POST,
        &format!("{query}/logs/query"),
        Some(&needle_body),
        samples,
    )
    .await;
    let found: Value = http
        .post(format!("{query}/logs/query"))
        .header("content-type", "application/json")
        .body(needle_body.clone())
        .send()
        .await
        .expect("needle query")
        .json()
        .await
        .expect("needle json");
    assert_eq!(
        found["events"].as_array().map(Vec::len),
        Some(1),
        "needle not found: {found}"
    );
    Queries {
        summary,
        timeseries,
        patterns,
        needle: needle_latency,
        needle_scanned: found["scanned"].as_u64().unwrap_or(0),
        needle_tiers: found["tier_ms"].as_object().map_or_else(String::new, |t| {
            t.iter()
                .map(|(tier, ms)| format!("{tier} {:.1}", ms.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(" / ")
        }),
    }
}

pub fn query_rows(q: &Queries, loaded: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, lat, target) in [
        ("/stats/summary", &q.summary, "<= 20"),
        ("/stats/timeseries 1 h at 10 s", &q.timeseries, "<= 20"),
        ("/patterns 1 h", &q.patterns, "<= 50"),
        ("needle search (one id)", &q.needle, "<= 50"),
    ] {
        rows.push(row(
            &format!("{name} p50 (ms)"),
            format!("{:.2}", pct(lat, 0.5)),
            "",
        ));
        rows.push(row(
            &format!("{name} p99 (ms)"),
            format!("{:.2}", pct(lat, 0.99)),
            target,
        ));
    }
    rows.push(row(
        "events loaded for the query latencies",
        format!("{loaded}"),
        ">= 1000000",
    ));
    rows.push(row(
        "needle search: events decoded",
        format!("{}", q.needle_scanned),
        "",
    ));
    rows.push(row(
        "needle search: ms per tier",
        q.needle_tiers.clone(),
        "",
    ));
    rows
}
