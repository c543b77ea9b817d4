//! The routes every service answers, and the per-route HTTP metrics around all of them.

use std::future::Future;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::server::Draining;
use crate::http::ApiError;
use crate::metrics::HttpMetrics;

/// What the standard routes need from a service's state.
pub trait ServiceState: Clone + Send + Sync + 'static {
    /// The registry `/metrics` exports; the HTTP metrics are registered in it too.
    fn registry(&self) -> &Registry;

    /// The flag the service's [`HttpServer`](super::HttpServer) sets on shutdown.
    fn draining(&self) -> &Draining;

    /// The service's own readiness checks, in the order `/readyz` reports them. The `shutdown`
    /// check is added after them.
    fn readiness(&self) -> impl Future<Output = Vec<Check>> + Send;

    /// Sets the gauges read at scrape time; `/metrics` calls it before encoding the registry.
    fn before_scrape(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// One named readiness check: `Err` says what is missing, for the 503's `details`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

impl Check {
    pub fn new(name: &'static str, result: Result<(), String>) -> Check {
        Check { name, result }
    }

    /// Passes when `ok`; otherwise fails with `error()`.
    pub fn when(name: &'static str, ok: bool, error: impl FnOnce() -> String) -> Check {
        Check::new(name, if ok { Ok(()) } else { Err(error()) })
    }
}

/// A service's own routes with `/healthz`, `/readyz`, `/metrics` added and the JSON 404 as the
/// fallback (a service may replace it afterwards with `.fallback(...)`, as the dashboard does
/// with its static files).
pub fn standard_routes<S: ServiceState>(own: Router<S>) -> Router<S> {
    own.route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .fallback(not_found)
}

/// The router a service serves: its routes with the state applied, every request answered by
/// the drain deadline ([`answer_before_deadline`]), and every route counted in
/// `logjet_http_requests_total` and `logjet_http_request_duration_seconds`. Registers those
/// metrics in the state's registry, so call it once per state.
pub fn finish<S: ServiceState>(routes: Router<S>, state: S) -> Router {
    let http_metrics = HttpMetrics::new(state.registry());
    let expired = state.draining().expired();
    let routes = routes.layer(middleware::from_fn_with_state(
        expired,
        answer_before_deadline,
    ));
    instrument(routes.with_state(state), http_metrics)
}

/// A request still in progress when the drain deadline is near (its handler waiting on a
/// dependency that does not answer) is answered 503 with `Retry-After` instead of being cut off
/// with its connection: the handler is dropped where it waits, before it answered anything, so
/// the client retries (an ingest publish whose acknowledgement never came is the same as a
/// publish timeout; with an `Idempotency-Key` the retry is deduplicated).
pub async fn answer_before_deadline(
    State(expired): State<CancellationToken>,
    req: Request,
    next: Next,
) -> Response {
    tokio::select! {
        biased;
        resp = next.run(req) => resp,
        _ = expired.cancelled() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down and this request did not finish in time: retry",
        )
        .retry_after(1)
        .into_response(),
    }
}

/// [`standard_routes`] then [`finish`]: the whole router of a service with the JSON 404.
pub fn router<S: ServiceState>(own: Router<S>, state: S) -> Router {
    finish(standard_routes(own), state)
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the service's checks, then `shutdown`.
async fn readyz<S: ServiceState>(State(st): State<S>) -> Response {
    let mut checks = st.readiness().await;
    checks.push(Check::when(
        "shutdown",
        !st.draining().is_draining(),
        || "shutting down".into(),
    ));
    readiness(&checks)
}

/// A `/readyz` answer from a list of named checks: 200 `ready`, or 503 naming each failed check.
pub fn readiness(checks: &[Check]) -> Response {
    let failed: Vec<serde_json::Value> = checks
        .iter()
        .filter_map(|c| {
            c.result
                .as_ref()
                .err()
                .map(|e| serde_json::json!({"check": c.name, "error": e}))
        })
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready");
        err.body.details = failed;
        err.into_response()
    }
}

/// `GET /metrics`: the scrape-time gauges, then the registry in Prometheus text.
async fn metrics<S: ServiceState>(State(st): State<S>) -> Response {
    st.before_scrape().await;
    metrics_response(st.registry())
}

/// The Prometheus text exposition of `registry` as a response.
pub fn metrics_response(registry: &Registry) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::encode(registry),
    )
        .into_response()
}

/// JSON 404 for unknown routes, so every error a client meets has the same shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Adds per-route request counts and latency to every route of `router`. The route label is the
/// matched template (`/logs/{id}`), never the raw path, so cardinality stays bounded.
pub fn instrument<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    metrics: HttpMetrics,
) -> Router<S> {
    router.layer(middleware::from_fn_with_state(metrics, track))
}

async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // MatchedPath and Method clone cheaply (shared strings): no allocation per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    let method = req.method().clone();
    let resp = next.run(req).await;
    metrics
        .duration
        .with_label_values(&[route, method.as_str()])
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[route, method.as_str(), resp.status().as_str()])
        .inc();
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[derive(Clone)]
    struct TestState {
        registry: Registry,
        draining: Draining,
        redis_up: Arc<AtomicBool>,
        scraped: prometheus::IntGauge,
    }

    impl ServiceState for TestState {
        fn registry(&self) -> &Registry {
            &self.registry
        }
        fn draining(&self) -> &Draining {
            &self.draining
        }
        async fn readiness(&self) -> Vec<Check> {
            vec![
                Check::when("nats", true, || unreachable!()),
                Check::when("redis", self.redis_up.load(Ordering::SeqCst), || {
                    "redis: connection refused".into()
                }),
            ]
        }
        async fn before_scrape(&self) {
            self.scraped.inc();
        }
    }

    fn state() -> TestState {
        let registry = crate::metrics::new_registry("test");
        TestState {
            scraped: crate::metrics::gauge(&registry, "test_scrapes", "Scrapes so far."),
            registry,
            draining: Draining::default(),
            redis_up: Arc::new(AtomicBool::new(true)),
        }
    }

    async fn fetch(router: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let resp = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            String::from_utf8(body.to_vec()).unwrap(),
            content_type,
        )
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn readyz_names_each_failing_check_then_shutdown() {
        let st = state();
        let router = router(Router::new(), st.clone());
        assert_eq!(
            fetch(&router, "/healthz").await,
            (
                StatusCode::OK,
                "ok\n".into(),
                Some("text/plain; charset=utf-8".into())
            )
        );
        let (status, body, _) = fetch(&router, "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));

        st.redis_up.store(false, Ordering::SeqCst);
        let (status, body, _) = fetch(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "not ready", "details": [
                {"check": "redis", "error": "redis: connection refused"}
            ]})
        );

        st.redis_up.store(true, Ordering::SeqCst);
        st.draining.start();
        let (status, body, _) = fetch(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            json(&body)["details"],
            serde_json::json!([{"check": "shutdown", "error": "shutting down"}])
        );
        // Draining is not dying: the process still answers as alive.
        assert_eq!(fetch(&router, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_sets_scrape_time_gauges_and_counts_routes_by_template() {
        let st = state();
        let own = Router::new().route("/items/{id}", get(|| async { "item" }));
        let router = router(own, st.clone());
        assert_eq!(fetch(&router, "/items/7").await.0, StatusCode::OK);
        let (status, body, _) = fetch(&router, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "no such endpoint"})
        );

        let (status, text, content_type) = fetch(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type.as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(
            text.contains("test_scrapes{service=\"test\"} 1\n"),
            "{text}"
        );
        for series in [
            "logjet_http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\",service=\"test\"} 1",
            "logjet_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\",service=\"test\"} 1",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        fetch(&router, "/metrics").await;
        assert_eq!(st.scraped.get(), 2);
    }

    #[tokio::test]
    async fn a_service_may_replace_the_json_404() {
        let st = state();
        let routes = standard_routes(Router::new()).fallback(|| async { "index.html" });
        let router = finish(routes, st);
        let (status, body, _) = fetch(&router, "/some/page").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "index.html"));
        assert_eq!(fetch(&router, "/readyz").await.0, StatusCode::OK);
    }
}
