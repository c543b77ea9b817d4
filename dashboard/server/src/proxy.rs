//! `/api/*` → the query service, streaming both ways it matters: response bodies are passed on
//! chunk by chunk (the live tail is an endless SSE response).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use logjet_core::config::DashboardConfig;
use logjet_core::http::ApiError;
use logjet_core::outage::OutageTracker;
use prometheus::{IntCounterVec, IntGauge, Registry};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::identity::{Gate, User};

/// Largest request body passed on (queries are small JSON documents).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Time allowed for an ordinary API call (the query service's own timeout is 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers the query service may care about; everything else stays here.
const FORWARD_REQUEST: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::CACHE_CONTROL,
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
];

/// Response headers passed back to the browser.
const FORWARD_RESPONSE: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::RETRY_AFTER,
    header::LINK,
];

#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    base: String,
    streams: CancellationToken,
    errors: IntCounterVec,
    up: IntGauge,
    /// The query service's availability: an outage is logged once there, not per request.
    upstream: OutageTracker,
}

impl Proxy {
    pub fn new(
        cfg: &DashboardConfig,
        registry: &Registry,
        streams: CancellationToken,
    ) -> Result<Proxy, reqwest::Error> {
        // A build that includes query links a reqwest that needs a TLS provider first.
        logjet_core::archive::install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        let errors = logjet_core::metrics::counter_vec(
            registry,
            "logjet_dashboard_upstream_errors_total",
            "Proxied API requests that got no answer from the query service, by kind (connect, timeout, other).",
            &["kind"],
        );
        // Every kind exported from the start (at 0), so rate() and alerts see the series.
        for kind in ["connect", "timeout", "other"] {
            errors.with_label_values(&[kind]);
        }
        let up = logjet_core::metrics::gauge(
            registry,
            "logjet_dashboard_upstream_up",
            "Whether the last proxied request reached the query service (1) or not (0).",
        );
        let base = cfg.query_url.trim_end_matches('/').to_string();
        Ok(Proxy {
            client,
            upstream: OutageTracker::new("query", "query service", &base),
            base,
            streams,
            errors,
            up,
        })
    }
}

impl Proxy {
    /// `GET /auth/whoami` on the query service with `key`: its status and body, or why there
    /// was no answer.
    pub async fn whoami(&self, key: &str) -> Result<(StatusCode, bytes::Bytes), String> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the key is not a valid header value".to_string())?;
        auth.set_sensitive(true);
        let resp = self
            .client
            .get(format!("{}/auth/whoami", self.base))
            .header(header::AUTHORIZATION, auth)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| root_cause(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| root_cause(&e))?;
        Ok((status, body))
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than reqwest's
/// "error sending request for url (…)".
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub async fn forward(State(st): State<AppState>, req: Request) -> Response {
    let p = &st.proxy;
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix("/api")
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let mut url = format!("{}{path}", p.base);
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let streaming = path == "/logs/tail";

    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_REQUEST_BYTES} bytes"),
            )
            .into_response();
        }
    };
    let mut out = p.client.request(parts.method.clone(), &url);
    let mut headers = HeaderMap::new();
    for name in FORWARD_REQUEST {
        if let Some(v) = parts.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    // The signed-in user's key (sign-in), the proxied users' key (proxy), the configured key
    // (off). Only with auth off and no key configured does the browser's own header go on.
    let user = parts.extensions.get::<User>().cloned();
    match user.as_ref().and_then(|u| u.authorization.clone()) {
        Some(key) => {
            headers.insert(header::AUTHORIZATION, key);
        }
        None => {
            if matches!(st.gate, Gate::Off { .. })
                && let Some(v) = parts.headers.get(header::AUTHORIZATION)
            {
                headers.insert(header::AUTHORIZATION, v.clone());
            }
        }
    }
    out = out.headers(headers);
    if !body.is_empty() {
        out = out.body(body);
    }
    if !streaming {
        out = out.timeout(REQUEST_TIMEOUT);
    }

    let upstream = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            p.up.set(0);
            let (kind, status) = if e.is_timeout() {
                ("timeout", StatusCode::GATEWAY_TIMEOUT)
            } else if e.is_connect() {
                ("connect", StatusCode::BAD_GATEWAY)
            } else {
                ("other", StatusCode::BAD_GATEWAY)
            };
            p.errors.with_label_values(&[kind]).inc();
            let cause = root_cause(&e);
            p.upstream.failed(&cause);
            tracing::debug!(url = %url, error = %cause, kind, "query service did not answer");
            let what = match kind {
                "timeout" => format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
                _ => cause,
            };
            return ApiError::new(
                status,
                format!("query service at {} did not answer: {what}", p.base),
            )
            .retry_after(2)
            .into_response();
        }
    };
    p.up.set(1);
    p.upstream.succeeded();

    let status = upstream.status();
    let mut resp_headers = HeaderMap::new();
    // The user's key was revoked (or rotated away): the session is over, the app goes back to
    // the sign-in page.
    if status == StatusCode::UNAUTHORIZED
        && let (Some(store), Some(id)) = (
            st.gate.sessions(),
            user.as_ref().and_then(|u| u.session.as_deref()),
        )
    {
        store.remove(id);
        resp_headers.insert(header::SET_COOKIE, crate::session::clear_cookie());
        tracing::info!(user = ?user.as_ref().and_then(|u| u.name.as_deref()), "key refused by the query service: session ended");
    }
    for name in FORWARD_RESPONSE {
        if let Some(v) = upstream.headers().get(&name) {
            resp_headers.insert(name, v.clone());
        }
    }
    let is_sse = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_sse {
        // Reverse proxies in front of us must not buffer the stream either.
        resp_headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        resp_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    let stop = p.streams.clone();
    let stream = upstream
        .bytes_stream()
        .take_until(async move { stop.cancelled().await });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    *resp.headers_mut() = resp_headers;
    resp
}
