//! HTTP pieces every service shares: the JSON error shape, health and metrics endpoints,
//! per-route metrics, and serving with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    metrics
        .duration
        .with_label_values(&[&route, &method])
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, &method, resp.status().as_str()])
        .inc();
    resp
}

/// JSON 404 for unknown routes, so every error a client meets has the same shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Runs `fut` until it finishes or `shutdown` fires; `None` when cancelled.
pub async fn or_shutdown<F: Future>(shutdown: &CancellationToken, fut: F) -> Option<F::Output> {
    tokio::select! {
        out = fut => Some(out),
        _ = shutdown.cancelled() => None,
    }
}
