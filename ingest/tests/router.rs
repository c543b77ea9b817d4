//! The ingest router driven with `tower::ServiceExt::oneshot`, without a socket and without NATS
//! (its URL is a closed port: the client keeps connecting in the background): what a request
//! meets before any event is published, and the error shape of each protocol.

// A test's (or an example's) unwrap is its assertion; the workspace denies it in services.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting, IngestConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const INGEST_KEY: &str = "lj_router_ingest_5e0c";
const QUERY_KEY: &str = "lj_router_query_91ad";
const LIMIT: usize = 1024;

/// Every route that takes logs, with a content type each accepts.
const ROUTES: &[(&str, &str)] = &[
    ("/logs", "text/plain"),
    ("/loki/api/v1/push", "application/json"),
    ("/v1/logs", "application/json"),
    ("/_bulk", "application/x-ndjson"),
    ("/web/_bulk", "application/x-ndjson"),
];

struct Ingest {
    router: Router,
    _keys: tempfile::NamedTempFile,
}

/// Ingest with API keys on, a body limit of [`LIMIT`], and no NATS.
async fn ingest() -> Ingest {
    ingest_with(|_| {}).await
}

/// [`ingest`] with some settings changed.
async fn ingest_with(change: impl FnOnce(&mut IngestConfig)) -> Ingest {
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "{}", key_line("shipper", "ingest", INGEST_KEY)).unwrap();
    writeln!(keys, "{}", key_line("grafana", "query", QUERY_KEY)).unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        nats_url: format!("nats://127.0.0.1:{closed_port}"),
        api: ApiSettings {
            auth: AuthSetting::On,
            api_keys_file: Some(keys.path().to_path_buf()),
            rate_limit_per_second: 0,
            ..ApiSettings::default()
        },
        max_body_bytes: LIMIT,
        max_line_bytes: LIMIT / 2,
        ..IngestConfig::default()
    };
    let mut cfg = cfg;
    change(&mut cfg);
    let svc = logjet_ingest::Ingest::build(cfg).await.unwrap();
    Ingest {
        router: svc.router(),
        _keys: keys,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(router: &Router, req: Request<Body>) -> Answer {
    let resp = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: axum::body::to_bytes(body, 1 << 20).await.unwrap(),
    }
}

fn post(path: &str, key: Option<&str>, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, content_type);
    if let Some(key) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    req.body(body.into()).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn without_a_valid_key_every_log_route_answers_401_with_a_bearer_challenge() {
    let ingest = ingest().await;
    for (path, content_type) in ROUTES {
        for key in [None, Some("lj_not_a_key")] {
            let a = send(&ingest.router, post(path, key, content_type, "x")).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} {key:?}");
            assert_eq!(
                a.headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"logjet\""
            );
            assert!(a.json()["error"].as_str().unwrap().contains("API key"));
        }
    }
}

#[tokio::test]
async fn a_key_without_the_ingest_scope_answers_403() {
    let ingest = ingest().await;
    for (path, content_type) in ROUTES {
        let a = send(
            &ingest.router,
            post(path, Some(QUERY_KEY), content_type, "x"),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            a.json(),
            json!({"error": "the API key \"grafana\" is not allowed to ingest"})
        );
    }
}

#[tokio::test]
async fn unknown_routes_answer_a_json_404_and_probes_need_no_key() {
    let ingest = ingest().await;
    for key in [None, Some(INGEST_KEY)] {
        let a = send(&ingest.router, post("/nope", key, "text/plain", "x")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.json(), json!({"error": "no such endpoint"}));
    }
    assert_eq!(
        send(&ingest.router, get("/healthz")).await.status,
        StatusCode::OK
    );
    let metrics = send(&ingest.router, get("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(
        text.contains("logjet_nats_connected{service=\"ingest\"} 0"),
        "the scrape-time gauge says NATS is not there:\n{text}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413_in_each_protocols_shape() {
    let ingest = ingest().await;
    let big = "x".repeat(LIMIT + 1);
    let too_large =
        format!("request body is larger than the limit of {LIMIT} bytes (after decompression)");
    let over =
        |path: &str, content_type: &str| post(path, Some(INGEST_KEY), content_type, big.clone());

    let a = send(&ingest.router, over("/logs", "text/plain")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json(), json!({"error": too_large}));

    let a = send(
        &ingest.router,
        over("/loki/api/v1/push", "application/json"),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json(), json!({"error": too_large}));

    let a = send(&ingest.router, over("/v1/logs", "application/json")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json(), json!({"code": 8, "message": too_large}));

    let a = send(&ingest.router, over("/_bulk", "application/x-ndjson")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.headers["x-elastic-product"], "Elasticsearch");
    let kind = "content_too_long_exception";
    assert_eq!(
        a.json(),
        json!({
            "error": {"root_cause": [{"type": kind, "reason": too_large}], "type": kind, "reason": too_large},
            "status": 413
        })
    );

    // The limit counts decompressed bytes: a small gzip body that inflates past it is refused.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(big.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < LIMIT);
    let mut req = post("/logs", Some(INGEST_KEY), "text/plain", gz);
    req.headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    let a = send(&ingest.router, req).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json(), json!({"error": too_large}));
}

#[tokio::test]
async fn unsupported_content_types_answer_415_in_each_protocols_shape() {
    let ingest = ingest().await;
    let form = "application/x-www-form-urlencoded";
    for path in ["/logs", "/loki/api/v1/push"] {
        let a = send(&ingest.router, post(path, Some(INGEST_KEY), form, "a=b")).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(form), "{path}: {error}");
    }
    let a = send(
        &ingest.router,
        post("/v1/logs", Some(INGEST_KEY), "text/plain", "x"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        a.json(),
        json!({"code": 3, "message": "unsupported content type \"text/plain\": send application/x-protobuf or application/json"})
    );
}

#[tokio::test]
async fn an_unusable_service_parameter_answers_400_in_each_protocols_shape() {
    let ingest = ingest().await;
    let error =
        "query parameter `service`: \"***\" has no usable characters (allowed: a-z 0-9 _ -)";
    let bad = |path: &str, content_type: &str| {
        post(
            &format!("{path}?service=***"),
            Some(INGEST_KEY),
            content_type,
            "{}",
        )
    };
    for (path, content_type) in [
        ("/logs", "text/plain"),
        ("/loki/api/v1/push", "application/json"),
    ] {
        let a = send(&ingest.router, bad(path, content_type)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(a.json(), json!({"error": error}), "{path}");
    }
    let a = send(&ingest.router, bad("/v1/logs", "application/json")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json(), json!({"code": 3, "message": error}));
    let a = send(&ingest.router, bad("/_bulk", "application/x-ndjson")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["type"], "illegal_argument_exception");
    assert_eq!(a.json()["error"]["reason"], error);
}

#[tokio::test]
async fn readyz_names_nats_and_the_stream_while_nats_is_not_there() {
    let ingest = ingest().await;
    let a = send(&ingest.router, get("/readyz")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.json(),
        json!({"error": "not ready", "details": [
            {"check": "nats", "error": "not connected to NATS"},
            {"check": "stream", "error": "stream LOGS not ready"},
        ]})
    );
}

/// A body that never ends: its request holds its reservation until dropped.
fn endless() -> Body {
    Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
}

/// A body that records whether anyone read it.
fn watched(read: Arc<AtomicBool>) -> Body {
    Body::from_stream(futures::stream::poll_fn(move |_| {
        read.store(true, Ordering::SeqCst);
        std::task::Poll::Ready(None::<Result<Bytes, std::io::Error>>)
    }))
}

#[tokio::test]
async fn a_full_memory_budget_answers_503_with_retry_after_before_reading_the_body() {
    // A budget of 64 KiB: one request of unknown length takes all of it.
    let ingest = ingest_with(|c| c.memory.ingest_memory_budget = "64KiB".into()).await;
    let holder = tokio::spawn(ingest.router.clone().oneshot(post(
        "/logs",
        Some(INGEST_KEY),
        "text/plain",
        endless(),
    )));
    // Until the first request has its reservation.
    let in_flight = "logjet_ingest_memory_in_flight_bytes";
    for _ in 0..200 {
        if metric(&ingest.router, in_flight).await == 65536.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(metric(&ingest.router, in_flight).await, 65536.0);
    assert_eq!(
        metric(&ingest.router, "logjet_ingest_memory_budget_bytes").await,
        65536.0
    );

    for (path, content_type) in ROUTES {
        let read = Arc::new(AtomicBool::new(false));
        // A client that waits for `100 Continue` is never asked for its body.
        let mut req = post(path, Some(INGEST_KEY), content_type, watched(read.clone()));
        req.headers_mut()
            .insert(header::EXPECT, "100-continue".parse().unwrap());
        let a = send(&ingest.router, req).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(a.headers[header::RETRY_AFTER], "2", "{path}");
        assert!(!read.load(Ordering::SeqCst), "{path}: the body was read");
        let text = String::from_utf8_lossy(&a.body).to_string();
        assert!(text.contains("memory budget is full"), "{path}: {text}");
        // Each protocol's own shape.
        let json = a.json();
        match *path {
            "/v1/logs" => assert_eq!(json["code"], 14),
            "/_bulk" | "/web/_bulk" => {
                assert_eq!(json["error"]["type"], "es_rejected_execution_exception")
            }
            _ => assert!(json["error"].is_string(), "{path}: {json}"),
        }
    }
    // One that sends it at once gets the 503 too: its body is read only to be dropped, so
    // that it is not met by a reset connection.
    let read = Arc::new(AtomicBool::new(false));
    let req = post(
        "/logs",
        Some(INGEST_KEY),
        "text/plain",
        watched(read.clone()),
    );
    let a = send(&ingest.router, req).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(read.load(Ordering::SeqCst));
    assert_eq!(
        metric(
            &ingest.router,
            "logjet_ingest_memory_rejected_total{stage=\"admission\"}"
        )
        .await,
        ROUTES.len() as f64 + 1.0
    );

    // Once the first request is gone, its bytes are free again.
    holder.abort();
    let _ = holder.await;
    assert_eq!(metric(&ingest.router, in_flight).await, 0.0);
    let a = send(
        &ingest.router,
        post("/logs", Some(INGEST_KEY), "text/plain", "x"),
    )
    .await;
    // Past the budget (no NATS here: JetStream's 503, not the budget's).
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("JetStream"), "{error}");
}

#[tokio::test]
async fn a_budget_smaller_than_one_body_stops_start_up_naming_the_key() {
    let mut cfg = IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1 << 20,
        ..IngestConfig::default()
    };
    cfg.memory.ingest_memory_budget = "512KiB".into();
    cfg.api.auth = AuthSetting::Off;
    let e = logjet_ingest::Ingest::build(cfg)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("LOGJET_INGEST_MEMORY_BUDGET") && e.contains("max_body_bytes"),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_content_encodings_answer_415() {
    let ingest = ingest().await;
    let mut req = post("/logs", Some(INGEST_KEY), "text/plain", "x");
    req.headers_mut()
        .insert(header::CONTENT_ENCODING, "br".parse().unwrap());
    let a = send(&ingest.router, req).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(a.json()["error"].as_str().unwrap().contains("\"br\""));
}

/// A sample of the router's /metrics.
async fn metric(router: &Router, series: &str) -> f64 {
    let a = send(router, get("/metrics")).await;
    let text = String::from_utf8_lossy(&a.body).to_string();
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name
                .replace(",service=\"ingest\"", "")
                .replace("{service=\"ingest\"}", "")
                .replace("service=\"ingest\",", "");
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}
