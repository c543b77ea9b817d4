//! HTTP pieces the APIs share: the JSON error shape, and guarding (authentication, per-key rate
//! limits, load shedding). Serving, the standard routes and the HTTP metrics are in
//! [`crate::service`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, AuthFailure, Scope};

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
        // A keys file is followed for as long as this guard (and so its keys) lives.
        let key_metrics = crate::auth::KeyMetrics::register(registry, &auth);
        if let Auth::Keys(keys) = &auth {
            keys.spawn_reload(crate::auth::RELOAD_EVERY, key_metrics);
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
