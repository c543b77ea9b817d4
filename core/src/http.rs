//! HTTP pieces every service shares: the JSON error shape, health and metrics endpoints,
//! per-route metrics, and serving with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, AuthFailure, Scope};
use crate::metrics::HttpMetrics;

/// The body of every error response: `{"error": "...", "details": [...]}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field, line or header at fault.
    pub error: String,
    /// Per-line or per-check details, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<serde_json::Value>,
}

/// An error ready to be sent: status, JSON body, and an optional `Retry-After`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                details: Vec::new(),
            },
            retry_after_secs: None,
        }
    }

    pub fn with_details<T: Serialize>(mut self, details: &[T]) -> ApiError {
        self.body.details = details
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect();
        self
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Readiness shared between a service's probes and its shutdown: once draining, `/readyz` fails
/// so load balancers stop sending work while in-flight requests finish.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// A `/readyz` answer from a list of named checks.
pub fn readiness(checks: &[(&str, Result<(), String>)]) -> Response {
    let failed: Vec<serde_json::Value> = checks
        .iter()
        .filter_map(|(name, r)| {
            r.as_ref()
                .err()
                .map(|e| serde_json::json!({"check": name, "error": e}))
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

/// `GET /metrics` handler over a registry.
pub async fn metrics_handler(State(registry): State<prometheus::Registry>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::encode(&registry),
    )
        .into_response()
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

/// JSON 404 for unknown routes, so every error a client meets has the same shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// A client must send its request headers within this (slowloris protection).
    pub header_read_timeout: Duration,
    /// After shutdown, in-flight requests get this long to finish (long streams such as live
    /// tails are cut after it).
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and lets
/// in-flight requests finish (up to `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    opts: ServeOptions,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or a connection reset during accept: keep serving.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Guarding APIs: authentication, per-key rate limits, load shedding.

type KeyedLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Checks every request to an API: a key with the right scope, within its rate limit.
pub struct Guard {
    pub auth: Auth,
    pub scope: Scope,
    limiter: Option<KeyedLimiter>,
    rejected: prometheus::IntCounterVec,
}

impl Guard {
    /// `per_second == 0` disables rate limiting.
    pub fn new(
        auth: Auth,
        scope: Scope,
        per_second: u32,
        burst: u32,
        registry: &prometheus::Registry,
    ) -> Arc<Guard> {
        let limiter = std::num::NonZeroU32::new(per_second).map(|rate| {
            let burst = std::num::NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        let rejected = crate::metrics::counter_vec(
            registry,
            "logjet_http_rejected_total",
            "Requests refused before reaching a handler, by reason: unauthenticated (401), forbidden (403), rate_limited (429), overloaded (503).",
            &["reason"],
        );
        for r in ["unauthenticated", "forbidden", "rate_limited", "overloaded"] {
            rejected.with_label_values(&[r]);
        }
        Arc::new(Guard {
            auth,
            scope,
            limiter,
            rejected,
        })
    }

    fn reject(&self, reason: &str, err: ApiError) -> Response {
        self.rejected.with_label_values(&[reason]).inc();
        err.into_response()
    }
}

/// Middleware: authenticate, then rate-limit by key. The caller (its key's name, never the key)
/// is put in the request's extensions.
pub async fn guard(State(g): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match g.auth.check(authorization, g.scope) {
        Ok(c) => c,
        Err(AuthFailure::Unauthenticated) => {
            let mut resp = g.reject(
                "unauthenticated",
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing or unknown API key: send `Authorization: Bearer <key>`",
                ),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"logjet\""),
            );
            return resp;
        }
        Err(AuthFailure::Forbidden { key, scope }) => {
            return g.reject(
                "forbidden",
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("the API key {key:?} is not allowed to {scope}"),
                ),
            );
        }
    };
    if let Some(limiter) = &g.limiter
        && let Err(not_until) = limiter.check_key(&caller.name)
    {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return g.reject(
            "rate_limited",
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit of the API key {:?} reached", caller.name),
            )
            .retry_after(secs.max(1)),
        );
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Adds the guard to every route of `router`.
pub fn guarded<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    guard_state: Arc<Guard>,
) -> Router<S> {
    router.layer(middleware::from_fn_with_state(guard_state, guard))
}

/// At most `max` requests in handlers at once; beyond that, 503 at once instead of a growing
/// queue (and growing memory).
pub fn shed_load<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    max: usize,
    guard_state: Arc<Guard>,
) -> Router<S> {
    use axum::error_handling::HandleErrorLayer;
    use tower::ServiceBuilder;
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
                let g = guard_state.clone();
                async move {
                    g.reject(
                        "overloaded",
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many requests in progress, retry later",
                        )
                        .retry_after(1),
                    )
                }
            }))
            .load_shed()
            .concurrency_limit(max),
    )
}

/// Runs `fut` until it finishes or `shutdown` fires; `None` when cancelled.
pub async fn or_shutdown<F: Future>(shutdown: &CancellationToken, fut: F) -> Option<F::Output> {
    tokio::select! {
        out = fut => Some(out),
        _ = shutdown.cancelled() => None,
    }
}
