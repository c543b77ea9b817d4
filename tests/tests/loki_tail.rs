//! Loki's live tail, `GET /loki/api/v1/tail` as a WebSocket, against real nats and redis, read
//! by a real WebSocket client.
//!
//! What Grafana sends, from its source, `pkg/tsdb/loki/streaming.go` (`RunStream`): it first
//! probes `GET /loki/api/v2alpha/tail` and uses v2 only if that answers 400; else it dials
//! `ws://…/loki/api/v1/tail?query=<expr>` (no other parameter) and reads each message as
//! `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"]]}]}`
//! (`pkg/tsdb/loki/frame.go`/`lokiBytesToLabeledFrame`, ns strings parsed with `ParseInt`).
//! Loki's own parameters and message shape: `pkg/loghttp/tail.go` (`delay_for` ≤ 5, `limit`,
//! `start`; `dropped_entries` with `labels` and a ns `timestamp`).

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting};
use logjet_tests::platform::{self, Platform, Svc};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const QUERY_KEY: &str = "lj_grafana_5be0c2d91a7e44";
const INGEST_KEY: &str = "lj_shipper_0c8f2e7a61d3b9";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn tail_url(query: &Svc, params: &[(&str, &str)]) -> String {
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!(
        "{}/loki/api/v1/tail?{}",
        query.url().replacen("http://", "ws://", 1),
        qs.join("&")
    )
}

async fn connect(url: &str, key: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP answer that refused an upgrade: status and JSON body.
fn refusal(e: tungstenite::Error) -> (u16, Value) {
    match e {
        tungstenite::Error::Http(r) => {
            let body = r.body().clone().unwrap_or_default();
            (
                r.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// One entry as the client saw it.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    labels: Value,
    ts: i64,
    line: String,
    at: Instant,
}

/// Reads messages until `until` holds for what arrived, or `timeout`.
async fn read_until(ws: &mut Ws, timeout: Duration, until: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while !until(&got) {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("tail ended or timed out after {got:?}: {other:?}"),
        };
        let Message::Text(text) = msg else { continue };
        let m: Value = serde_json::from_str(&text).expect("JSON message");
        assert!(m.get("dropped_entries").is_none(), "{m}");
        for s in m["streams"].as_array().expect("streams") {
            for v in s["values"].as_array().expect("values") {
                got.push(Got {
                    labels: s["stream"].clone(),
                    ts: v[0]
                        .as_str()
                        .expect("ns timestamps are strings")
                        .parse()
                        .expect("ns integer"),
                    line: v[1].as_str().unwrap().to_string(),
                    at: Instant::now(),
                });
            }
        }
    }
    got
}

fn ndjson(events: &[(i64, &str, &str, &str)]) -> String {
    events
        .iter()
        .map(|(ts, service, level, msg)| {
            let ts = chrono::DateTime::from_timestamp_nanos(*ts)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            json!({"ts": ts, "service": service, "level": level, "message": msg}).to_string() + "\n"
        })
        .collect()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grafana_live_tails_logjet_as_loki() {
    let p = Platform::start(1).await;
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "{}", key_line("grafana", "query", QUERY_KEY)).unwrap();
    writeln!(keys, "{}", key_line("shipper", "ingest", INGEST_KEY)).unwrap();
    let mut cfg = platform::query_config(&p.nats.url(), &p.redis.url());
    cfg.api = ApiSettings {
        auth: AuthSetting::On,
        api_keys_file: Some(keys.path().to_path_buf()),
        rate_limit_per_second: 0,
        ..ApiSettings::default()
    };
    let query = platform::start_query(cfg).await;
    p.wait_ready(&query.url()).await;
    let q = r#"{service="checkout", level=~"info|error"} |= "paid""#;

    // History: what `start`/`limit` select is sent first, oldest first.
    let t0 = now_ns() - 120 * 1_000_000_000;
    let history = [
        (t0 + 1, "checkout", "info", "paid order-1 (history)"),
        (t0 + 2, "checkout", "info", "refund order-2 (history)"),
        (t0 + 3, "checkout", "error", "paid order-3 failed (history)"),
        (t0 + 4, "auth", "info", "paid? no, a login (history)"),
    ];
    assert_eq!(
        p.post("application/x-ndjson", ndjson(&history))
            .await
            .status(),
        202
    );
    p.wait_for_total(history.len() as u64, Duration::from_secs(30))
        .await;

    // Without a key, or with a key without the query scope: refused before the upgrade.
    let url = tail_url(&query, &[("query", q)]);
    let (status, _) = refusal(connect(&url, None).await.unwrap_err());
    assert_eq!(status, 401);
    let (status, _) = refusal(connect(&url, Some(INGEST_KEY)).await.unwrap_err());
    assert_eq!(status, 403);
    // A bad query, a metric query, a delay over Loki's limit: 400 in Loki's error shape.
    for (params, says) in [
        (
            vec![("query", r#"{service="checkout" |= "x""#)],
            "parse error",
        ),
        (
            vec![("query", r#"count_over_time({service="checkout"}[1m])"#)],
            "log query",
        ),
        (vec![("query", q), ("delay_for", "6")], "delay_for"),
    ] {
        let (status, body) = refusal(
            connect(&tail_url(&query, &params), Some(QUERY_KEY))
                .await
                .unwrap_err(),
        );
        assert_eq!(status, 400, "{params:?}: {body}");
        assert_eq!(
            (body["code"].as_u64(), body["status"].as_str()),
            (Some(400), Some("error"))
        );
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    // Grafana's probe for the v2alpha endpoint must not answer 400, or Grafana would use v2.
    let probe = p
        .http
        .get(format!("{}/loki/api/v2alpha/tail", query.url()))
        .bearer_auth(QUERY_KEY)
        .send()
        .await
        .unwrap();
    assert_ne!(probe.status().as_u16(), 400);

    // Grafana dials with `query` only; a second client asks for `delay_for=1` and 1 entry.
    let mut ws = connect(&url, Some(QUERY_KEY)).await.expect("upgrade");
    let start = (t0 - 1_000_000_000).to_string();
    let mut delayed = connect(
        &tail_url(
            &query,
            &[
                ("query", q),
                ("delay_for", "1"),
                ("limit", "1"),
                ("start", &start),
            ],
        ),
        Some(QUERY_KEY),
    )
    .await
    .expect("upgrade");
    let first = read_until(&mut ws, Duration::from_secs(20), |g| g.len() >= 2).await;
    let label = |service: &str, level: &str| json!({"service": service, "level": level});
    assert_eq!(
        first
            .iter()
            .map(|g| (g.labels.clone(), g.ts, g.line.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (label("checkout", "info"), t0 + 1, "paid order-1 (history)"),
            (
                label("checkout", "error"),
                t0 + 3,
                "paid order-3 failed (history)"
            ),
        ]
    );
    let first_delayed = read_until(&mut delayed, Duration::from_secs(20), |g| !g.is_empty()).await;
    assert_eq!(first_delayed.len(), 1);
    assert_eq!(first_delayed[0].line, "paid order-3 failed (history)");

    // Live: only matching lines arrive, with their labels and ns timestamps; a marker that
    // matches, posted last, shows the others had their chance.
    let t1 = now_ns();
    let live = [
        (t1 + 11, "checkout", "info", "paid order-11"),
        (t1 + 12, "checkout", "info", "refund order-12"),
        (t1 + 13, "auth", "info", "paid order-13 (other service)"),
        (
            t1 + 14,
            "checkout",
            "warn",
            "paid order-14 (level not selected)",
        ),
        (t1 + 15, "checkout", "error", "paid order-15"),
    ];
    let posted_at = Instant::now();
    assert_eq!(
        p.post("application/x-ndjson", ndjson(&live)).await.status(),
        202
    );
    let marker = [(t1 + 99, "checkout", "info", "paid marker")];
    assert_eq!(
        p.post("application/x-ndjson", ndjson(&marker))
            .await
            .status(),
        202
    );
    let done = |g: &[Got]| g.iter().any(|g| g.line == "paid marker");
    let got = read_until(&mut ws, Duration::from_secs(20), done).await;
    assert_eq!(
        got.iter()
            .map(|g| (g.labels.clone(), g.ts, g.line.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (label("checkout", "info"), t1 + 11, "paid order-11"),
            (label("checkout", "error"), t1 + 15, "paid order-15"),
            (label("checkout", "info"), t1 + 99, "paid marker"),
        ]
    );
    // `delay_for=1`: the same entries, none sooner than a second after they were posted.
    let got = read_until(&mut delayed, Duration::from_secs(20), done).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .all(|g| g.at.duration_since(posted_at) >= Duration::from_secs(1)),
        "{:?}",
        got.iter()
            .map(|g| g.at.duration_since(posted_at))
            .collect::<Vec<_>>()
    );

    // The client closes; the service frees the tail (the gauge of open tails drops to 0).
    ws.close(None).await.unwrap();
    delayed.send(Message::Close(None)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = platform::metric(&p.http, &query.url(), "logjet_query_open_tails").await;
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} tails still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
