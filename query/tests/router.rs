//! The query router driven with `tower::ServiceExt::oneshot`, without a socket, NATS or Redis
//! (both on closed ports: the clients connect lazily): what a request meets before any search.

// A test's (or an example's) unwrap is its assertion; the workspace denies it in services.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting, QueryConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const QUERY_KEY: &str = "lj_router_query_3f7b";
const INGEST_KEY: &str = "lj_router_ingest_c20e";

/// Every API route, as a request without a key.
fn api_requests() -> Vec<Request<Body>> {
    let query = Request::post("/logs/query")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let mut out = vec![query];
    for path in [
        "/stats/summary",
        "/stats/timeseries",
        "/stats/pipeline",
        "/services",
        "/patterns",
        "/logs/tail",
    ] {
        out.push(Request::get(path).body(Body::empty()).unwrap());
    }
    out
}

struct Query {
    router: Router,
    _keys: tempfile::NamedTempFile,
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Query with API keys on and neither NATS nor Redis.
async fn query() -> Query {
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "{}", key_line("grafana", "query", QUERY_KEY)).unwrap();
    writeln!(keys, "{}", key_line("shipper", "ingest", INGEST_KEY)).unwrap();
    let cfg = QueryConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        nats_url: format!("nats://127.0.0.1:{}", closed_port()),
        redis_url: format!("redis://127.0.0.1:{}", closed_port()),
        api: ApiSettings {
            auth: AuthSetting::On,
            api_keys_file: Some(keys.path().to_path_buf()),
            rate_limit_per_second: 0,
            ..ApiSettings::default()
        },
        ..QueryConfig::default()
    };
    let svc = logjet_query::QueryService::build(cfg).await.unwrap();
    Query {
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

fn with_key(mut req: Request<Body>, key: &str) -> Request<Body> {
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    req
}

#[tokio::test]
async fn without_a_valid_key_every_api_route_answers_401_with_a_bearer_challenge() {
    let query = query().await;
    for req in api_requests() {
        let path = req.uri().path().to_string();
        let a = send(&query.router, req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            a.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"logjet\""
        );
        assert!(a.json()["error"].as_str().unwrap().contains("API key"));
    }
    let req = with_key(api_requests().remove(0), "lj_not_a_key");
    assert_eq!(
        send(&query.router, req).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_key_without_the_query_scope_answers_403() {
    let query = query().await;
    for req in api_requests() {
        let path = req.uri().path().to_string();
        let a = send(&query.router, with_key(req, INGEST_KEY)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            a.json(),
            json!({"error": "the API key \"shipper\" is not allowed to query"})
        );
    }
}

#[tokio::test]
async fn unknown_routes_answer_a_json_404() {
    let query = query().await;
    let req = Request::get("/logs/nope").body(Body::empty()).unwrap();
    for req in [
        with_key(req, QUERY_KEY),
        Request::get("/nope").body(Body::empty()).unwrap(),
    ] {
        let a = send(&query.router, req).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.json(), json!({"error": "no such endpoint"}));
    }
}

/// Query's own body limit (`max_body_bytes`, 1 MiB by default): over it, a 413 in the JSON error
/// shape naming the limit, before any search.
#[tokio::test]
async fn a_query_body_over_the_limit_is_refused_before_any_search() {
    let query = query().await;
    let post = |body: String| {
        let req = Request::post("/logs/query")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        with_key(req, QUERY_KEY)
    };
    let big = format!("{{\"contains\": \"{}\"}}", "x".repeat(1 << 20));
    let a = send(&query.router, post(big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        a.json(),
        json!({"error": "request body is larger than the limit of 1048576 bytes"})
    );
    // Under the limit, the same unreadable body is still a 400 naming the problem.
    let a = send(&query.router, post("{\"limit\": \"ten\"}".into())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body"),
        "{:?}",
        a.json()
    );
}

/// A query body that does not say it is JSON is refused before it is read, naming the header
/// (query answers 400 here where ingest answers 415: the query API has one body type).
#[tokio::test]
async fn a_query_body_not_declared_json_answers_400_naming_the_content_type() {
    let query = query().await;
    for content_type in [None, Some("text/plain"), Some("application/x-ndjson")] {
        let mut req = Request::post("/logs/query");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = with_key(req.body(Body::from("{}")).unwrap(), QUERY_KEY);
        let a = send(&query.router, req).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{content_type:?}");
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("Content-Type"), "{content_type:?}: {error}");
    }
}

#[tokio::test]
async fn readyz_names_redis_while_redis_is_not_there() {
    let query = query().await;
    let a = send(
        &query.router,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = a.json();
    assert_eq!(body["error"], "not ready");
    let details = body["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    assert_eq!(details[0]["check"], "redis");
    assert!(
        details[0]["error"].as_str().unwrap().starts_with("redis: "),
        "{body}"
    );

    let a = send(
        &query.router,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    let text = String::from_utf8(a.body.to_vec()).unwrap();
    for gauge in ["logjet_redis_up", "logjet_nats_connected"] {
        assert!(
            text.contains(&format!("{gauge}{{service=\"query\"}} 0")),
            "{gauge} should be 0:\n{text}"
        );
    }
}
