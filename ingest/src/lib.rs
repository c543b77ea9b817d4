//! logjet ingest: accepts logs over HTTP and answers 202 only after JetStream acknowledged them.
//!
//! `serve(config, shutdown)` runs the service; [`Ingest::build`] binds first (port 0 in tests)
//! and exposes the address. Handlers are thin: [`request::IngestRequest`] reads what every route
//! shares, [`prepare`] turns a request into events and rejects, [`publish::Publisher`] gets them
//! acknowledged. Serving, draining and the standard routes are `logjet_core::service`'s.

pub mod body;
pub mod budget;
pub mod buffers;
pub mod coalesce;
pub mod encode;
pub mod error;
pub mod metrics;
pub mod protocols;
pub mod publish;
pub mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use logjet_core::LogEvent;
use logjet_core::config::IngestConfig;
use logjet_core::http as lhttp;
use logjet_core::jetstream::{self as ljs, JetStreamError, Nats};
use logjet_core::outage::{OutageTracker, REMINDER_EVERY, Throttle};
use logjet_core::parse::{self, BodyFormat, ParseOptions, Reject};
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use coalesce::Coalescer;
pub use error::IngestError;
use metrics::IngestMetrics;
use publish::{PublishContext, PublishError, Publisher};
pub use request::{IngestRequest, LogsParams, idempotency_key, request_options, traceparent};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Nats(#[from] JetStreamError),
    #[error(transparent)]
    Config(#[from] logjet_core::config::ConfigError),
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<IngestConfig>,
    pub publisher: Publisher,
    /// Merges small concurrent requests into one publish.
    pub coalescer: Coalescer,
    pub metrics: IngestMetrics,
    pub registry: prometheus::Registry,
    pub draining: Draining,
    /// Set once the LOGS stream is known to exist with our config.
    pub stream_ready: Arc<AtomicBool>,
    /// Poked when a publish finds no stream, so it is re-created at once.
    pub recheck_stream: Arc<Notify>,
    /// Authentication and per-key rate limits of the API routes.
    pub guard: Arc<lhttp::Guard>,
    /// Publish failures while NATS is connected (timeouts) are logged at most once a minute;
    /// those of an outage are its tracker's to log.
    pub publish_failures_log: Arc<Throttle>,
    /// Bytes of request bodies held at once (docs/operations.md).
    pub budget: budget::MemoryBudget,
    /// Reused buffers for request bodies and their payloads.
    pub buffers: buffers::BufferPool,
}

impl ServiceState for AppState {
    fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    fn draining(&self) -> &Draining {
        &self.draining
    }

    async fn readiness(&self) -> Vec<Check> {
        vec![
            Check::when("nats", self.publisher.is_connected(), || {
                "not connected to NATS".into()
            }),
            Check::when("stream", self.stream_ready.load(Ordering::SeqCst), || {
                format!("stream {} not ready", self.cfg.stream.stream)
            }),
        ]
    }

    async fn before_scrape(&self) {
        self.metrics
            .nats_connected
            .set(self.publisher.is_connected() as i64);
    }
}

/// A bound, not yet running ingest service.
pub struct Ingest {
    server: HttpServer,
    state: AppState,
    router: Router,
    nats: Nats,
}

impl Ingest {
    /// Binds the listener and starts connecting to NATS (in the background: the service answers
    /// `/healthz` at once and `/readyz` once NATS and the stream are there).
    pub async fn build(cfg: IngestConfig) -> Result<Ingest, StartError> {
        let serve_options = ServeOptions {
            header_read_timeout: cfg.api.header_read_timeout,
            ..ServeOptions::with_drain_timeout(cfg.drain_timeout)
        };
        let server = HttpServer::bind(cfg.listen, serve_options).await?;
        let auth = cfg.api.load_auth()?;
        if matches!(auth, logjet_core::auth::Auth::Off) {
            tracing::warn!(
                "AUTHENTICATION IS OFF (LOGJET_AUTH=off): anyone who can reach this port can send logs. Local development only."
            );
        }
        let nats = ljs::connect(&cfg.nats_url, "logjet-ingest", true).await?;
        let registry = logjet_core::metrics::new_registry("ingest");
        let guard = lhttp::Guard::new(
            auth,
            logjet_core::auth::Scope::Ingest,
            cfg.api.rate_limit_per_second,
            cfg.api.rate_limit_burst,
            &registry,
        );
        let metrics = IngestMetrics::new(&registry);
        let limits = logjet_core::cgroup::MemoryLimits::detect();
        let resolved = cfg.memory.resolve(&limits, cfg.max_body_bytes)?;
        tracing::info!(
            budget_bytes = resolved.bytes,
            derived = %resolved.source.describe(),
            cgroup = ?limits.cgroup,
            "ingest memory budget"
        );
        metrics.memory_budget.set(resolved.bytes as i64);
        let budget = budget::MemoryBudget::new(resolved.bytes, Some(metrics.budget.clone()));
        let publisher = Publisher::new(&nats, cfg.publish_timeout, metrics.clone());
        let state = AppState {
            cfg: Arc::new(cfg),
            coalescer: Coalescer::spawn(publisher.clone()),
            buffers: buffers::BufferPool::default(),
            publisher,
            metrics,
            registry,
            draining: server.draining(),
            stream_ready: Arc::new(AtomicBool::new(false)),
            recheck_stream: Arc::new(Notify::new()),
            guard,
            publish_failures_log: Arc::new(Throttle::new(REMINDER_EVERY)),
            budget,
        };
        Ok(Ingest {
            server,
            router: app(state.clone()),
            state,
            nats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The router [`Ingest::run`] serves, for tests that drive it without a socket
    /// (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown`, then fails readiness and finishes in-flight requests, within
    /// the drain timeout whatever NATS does. Nothing is flushed after: every 202 was sent after
    /// JetStream's acknowledgement, and what is left in the client's buffer belongs to requests
    /// that were answered 503 (sending it now would only make their retries duplicates).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Ingest {
            server,
            state,
            router,
            nats,
        } = self;
        tracing::info!(
            listen = %server.local_addr(),
            config = ?logjet_core::config::describe(&*state.cfg),
            "ingest starting"
        );
        let stream_task = tokio::spawn(keep_stream(nats, state.clone(), shutdown.child_token()));
        let result = server.serve(router, shutdown).await;
        stream_task.abort();
        tracing::info!("ingest stopped");
        Ok(result?)
    }
}

/// Builds and runs ingest until `shutdown` is cancelled.
pub async fn serve(cfg: IngestConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Ingest::build(cfg).await?.run(shutdown).await
}

/// Makes sure the LOGS and dead-letter streams exist (or, without `manage_streams`, that LOGS
/// does: another service creates it): at start, whenever a publish finds no
/// stream (NATS restarted on an empty store), and every 30 s. Only while NATS is connected (a NATS
/// outage is NATS's tracker's to log); a stream that cannot be made is said once, with reminders.
async fn keep_stream(nats: Nats, state: AppState, shutdown: CancellationToken) {
    let js = ljs::context(nats.client.clone(), Duration::from_secs(5));
    let status = OutageTracker::describing("stream", format!("stream {}", state.cfg.stream.stream));
    // Right after start-up (or a reconnect) NATS is usually a few milliseconds away: look again
    // soon. A stream that cannot be made while NATS answers is retried less and less often.
    let poll = Duration::from_millis(25);
    let mut retry = poll;
    loop {
        let wait = if nats.is_connected() {
            let ensure = async {
                let settings = &state.cfg.stream;
                let manage = settings.manage_streams;
                ljs::ensure_or_find_stream(&js, ljs::logs_stream_config(settings), manage).await?;
                // Ingest never writes the dead-letter stream: it only creates it for the
                // processors, when it manages the streams.
                if manage {
                    ljs::ensure_stream(&js, ljs::dlq_stream_config(settings)).await?;
                }
                Ok::<_, JetStreamError>(())
            };
            let result = tokio::select! {
                r = ensure => r,
                _ = shutdown.cancelled() => return,
            };
            state.stream_ready.store(result.is_ok(), Ordering::SeqCst);
            match result {
                Ok(_) => {
                    status.succeeded();
                    retry = poll;
                    Duration::from_secs(30)
                }
                Err(e) => {
                    status.failed(&e);
                    retry = (retry * 2).min(Duration::from_secs(1));
                    retry
                }
            }
        } else {
            state.stream_ready.store(false, Ordering::SeqCst);
            poll
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = state.recheck_stream.notified() => {}
        }
    }
}

/// The router: pure function of the state, driven with `oneshot` in `tests/router.rs`. Registers
/// the HTTP metrics in the state's registry: once per state.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/logs", post(post_logs))
        .merge(protocols::routes())
        // The body limit, the memory budget and decompression are the IngestRequest
        // extractor's (request.rs, body.rs): it streams and counts decompressed bytes.
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.cfg.api.body_read_timeout,
        ));
    // Outermost first: shed load before doing any work, then check the key and its rate.
    let api = lhttp::guarded(api, state.guard.clone());
    let api = lhttp::shed_load(api, state.cfg.max_concurrent_requests, state.guard.clone());
    let own = api.route("/openapi.json", get(openapi));
    service::router(own, state)
}

/// The 202 body.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub rejected: Vec<RejectOut>,
    /// Events JetStream already had from an earlier try of the same idempotent request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicates: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A refused line: its 1-based number (array position for a JSON array) and why.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RejectOut {
    pub line: usize,
    pub error: String,
}

impl From<Reject> for RejectOut {
    fn from(r: Reject) -> Self {
        RejectOut {
            line: r.line,
            error: r.error,
        }
    }
}

/// One event as JSON. Every key is optional; aliases are accepted (`ts|timestamp|time|@timestamp|date`,
/// `level|severity|lvl|log.level`, `message|msg|log|body|text`, `service|app|service.name|application`),
/// nested objects are flattened into `fields`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct IncomingEvent {
    /// RFC 3339 or epoch s/ms/µs/ns.
    ts: Option<String>,
    service: Option<String>,
    /// A level name (any case) or a syslog/OpenTelemetry number.
    level: Option<String>,
    message: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "logjet ingest API",
        description = "Accepts logs over HTTP; answers 202 once JetStream has them."
    ),
    paths(
        post_logs,
        protocols::loki::push,
        protocols::otlp::export,
        protocols::elasticsearch::bulk,
        protocols::elasticsearch::bulk_index,
        protocols::elasticsearch::info,
        protocols::elasticsearch::license
    ),
    components(schemas(
        IngestResponse,
        RejectOut,
        IncomingEvent,
        logjet_core::http::ErrorBody,
        protocols::otlp::OtlpExportResponse,
        protocols::otlp::OtlpPartialSuccess,
        protocols::otlp::OtlpStatus,
        protocols::otlp::Protobuf,
        protocols::elasticsearch::BulkResponse,
        protocols::elasticsearch::BulkItem,
        protocols::elasticsearch::EsErrorResponse,
        protocols::elasticsearch::EsInfo,
        protocols::elasticsearch::EsLicenseResponse
    ))
)]
pub struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<ApiDoc as utoipa::OpenApi>::openapi())
}

/// Send logs: a JSON object, a JSON array, NDJSON, plain-text lines, or Fluent Bit's MessagePack
/// events (`application/msgpack`, its `http` output's default); gzip allowed.
#[utoipa::path(
    post,
    path = "/logs",
    params(
        LogsParams,
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key is counted once (within 2 minutes)."),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, carried to the processor's logs."),
    ),
    request_body(
        description = "One event (object), many (array or NDJSON), or text lines.",
        content(
            (IncomingEvent = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/plain"),
            (protocols::otlp::Protobuf = "application/msgpack")
        )
    ),
    responses(
        (status = 202, description = "Accepted: JetStream acknowledged every accepted event", body = IngestResponse),
        (status = 400, description = "Nothing valid, or a bad parameter or header", body = logjet_core::http::ErrorBody),
        (status = 413, description = "Body over the limit (after decompression)", body = logjet_core::http::ErrorBody),
        (status = 415, description = "Unsupported content type or encoding", body = logjet_core::http::ErrorBody),
        (status = 503, description = "JetStream unavailable; retry after the given seconds", body = logjet_core::http::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
async fn post_logs(
    State(st): State<AppState>,
    req: IngestRequest,
) -> Result<Response, IngestError> {
    let prepared = prepare(
        &req.body,
        req.content_type(),
        &req.options,
        st.publisher.max_payload(),
        &st.buffers,
    );
    // The body is encoded: its buffer is free for the next request now, not after JetStream's
    // acknowledgement (the reservation still counts it, so the budget stays on the safe side).
    let IngestRequest {
        body,
        headers,
        received_at,
        reservation: _reservation,
        ..
    } = req;
    st.buffers.recycle(body);
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            if let IngestError::NothingValid(rejects) = &e {
                count_rejects(&st.metrics, rejects);
            }
            return Err(e);
        }
    };
    let rejects = prepared.rejects;
    let outcome = publish_encoded(&st, prepared.encoded, &rejects, &headers, received_at).await?;
    let resp = IngestResponse {
        accepted: outcome.accepted + outcome.duplicates,
        rejected: rejects.into_iter().map(RejectOut::from).collect(),
        duplicates: outcome.duplicates,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(resp)).into_response())
}

fn count_rejects(metrics: &IngestMetrics, rejects: &[Reject]) {
    if rejects.is_empty() {
        return;
    }
    metrics
        .events
        .with_label_values(&["rejected"])
        .inc_by(rejects.len() as u64);
    for r in rejects {
        metrics.rejected.with_label_values(&[r.reason]).inc();
    }
}

/// The one way events reach JetStream, for every route and protocol: counts the rejects, then
/// publishes (merged with other small requests by the coalescer, or on its own when the request
/// carries an `Idempotency-Key` or a `traceparent`) and counts what JetStream acknowledged.
/// Nothing to publish is a success with nothing accepted.
pub(crate) async fn publish_events(
    st: &AppState,
    events: Vec<LogEvent>,
    rejects: &[Reject],
    headers: &HeaderMap,
    received_at: DateTime<Utc>,
) -> Result<publish::PublishOutcome, IngestError> {
    let encoded = encode::encode_events(&events, st.publisher.max_payload());
    drop(events);
    publish_encoded(st, encoded, rejects, headers, received_at).await
}

/// [`publish_events`] of events already encoded.
pub(crate) async fn publish_encoded(
    st: &AppState,
    encoded: encode::Encoded,
    rejects: &[Reject],
    headers: &HeaderMap,
    received_at: DateTime<Utc>,
) -> Result<publish::PublishOutcome, IngestError> {
    count_rejects(&st.metrics, rejects);
    let ctx = PublishContext {
        idempotency_key: idempotency_key(headers)?,
        received_at_nanos: received_at.timestamp_nanos_opt().unwrap_or_default(),
        traceparent: traceparent(headers),
    };
    if encoded.events == 0 {
        return Ok(publish::PublishOutcome::default());
    }
    let result = if ctx.idempotency_key.is_none() && ctx.traceparent.is_none() {
        st.coalescer.publish(encoded, ctx.received_at_nanos).await
    } else {
        st.publisher.publish(&encoded.batches, &ctx).await
    };
    let outcome = result.map_err(|e| {
        if matches!(e, PublishError::NoStream) {
            st.stream_ready.store(false, Ordering::SeqCst);
            st.recheck_stream.notify_one();
        }
        if st.publisher.in_outage() {
            tracing::debug!(error = %e, "publish failed during a NATS outage");
        } else if let Some(suppressed) = st.publish_failures_log.allow() {
            tracing::warn!(error = %e, suppressed, "publish failed");
        }
        IngestError::Unavailable {
            reason: e.to_string(),
            retry_after: st.cfg.retry_after_secs,
        }
    })?;
    st.metrics
        .events
        .with_label_values(&["accepted"])
        .inc_by(outcome.accepted as u64);
    st.metrics
        .events
        .with_label_values(&["duplicate"])
        .inc_by(outcome.duplicates as u64);
    Ok(outcome)
}

/// Events (encoded for JetStream) and rejects of one request.
#[derive(Debug)]
pub struct Prepared {
    pub encoded: encode::Encoded,
    pub rejects: Vec<Reject>,
}

/// Everything ingest decides about a request before publishing, as a plain function: the body
/// parsed and encoded into payloads of at most `max_payload` bytes.
pub fn prepare(
    body: &[u8],
    content_type: Option<&str>,
    opts: &ParseOptions,
    max_payload: usize,
    buffers: &buffers::BufferPool,
) -> Result<Prepared, IngestError> {
    // Fluent Bit's `http` output sends MessagePack by default.
    let msgpack = protocols::msgpack::is_msgpack(content_type);
    let format = if msgpack {
        BodyFormat::Auto
    } else {
        BodyFormat::from_content_type(content_type)?
    };
    if body.trim_ascii().is_empty() {
        return Err(IngestError::EmptyBody);
    }
    let (encoded, rejects) = if msgpack {
        let (events, rejects) = protocols::msgpack::parse(body, opts);
        (encode::encode_events(&events, max_payload), rejects)
    } else {
        // Borrowed from the body and written straight into the payloads.
        let mut b = encode::BatchBuilder::pooled(max_payload, body.len() + body.len() / 4, buffers);
        let rejects = parse::parse_body_each(body, format, opts, |ev| {
            // Writing into memory cannot fail.
            let _ = encode::push_event(&mut b, ev);
        });
        (b.finish(), rejects)
    };
    if encoded.events == 0 {
        return Err(IngestError::NothingValid(rejects));
    }
    Ok(Prepared { encoded, rejects })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(service: Option<&str>) -> ParseOptions {
        let service = request::sanitize_service(service).unwrap();
        request_options(service, Utc::now(), &IngestConfig::default())
    }

    #[test]
    fn prepare_keeps_valid_lines_and_reports_bad_ones() {
        let body = b"{\"message\":\"a\"}\nnot json at all\n{\"message\":\"c\"}";
        let p = prepare(
            body,
            Some("application/x-ndjson"),
            &opts(Some("web")),
            1 << 20,
            &buffers::BufferPool::default(),
        )
        .unwrap();
        assert_eq!(p.encoded.events, 2);
        assert_eq!(p.encoded.batches.len(), 1);
        assert_eq!(p.encoded.batches[0].service, "web");
        let first: LogEvent = serde_json::from_slice(
            p.encoded.batches[0]
                .payload
                .split(|&c| c == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first.message, "a");
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line, 2);
    }

    #[test]
    fn prepare_errors() {
        let opts = opts(None);
        assert!(matches!(
            prepare(
                b"x",
                Some("application/x-www-form-urlencoded"),
                &opts,
                1 << 20,
                &Default::default()
            ),
            Err(IngestError::UnsupportedContentType(_))
        ));
        assert!(matches!(
            prepare(
                b"  \n",
                Some("text/plain"),
                &opts,
                1 << 20,
                &Default::default()
            ),
            Err(IngestError::EmptyBody)
        ));
        assert!(matches!(
            prepare(b"{bad", Some("application/json"), &opts, 1 << 20, &Default::default()),
            Err(IngestError::NothingValid(r)) if r.len() == 1
        ));
    }

    #[test]
    fn statuses() {
        assert_eq!(IngestError::EmptyBody.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            IngestError::TooLarge { limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            IngestError::Unavailable {
                reason: String::new(),
                retry_after: 1
            }
            .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn openapi_documents_post_logs() {
        let doc = serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let op = &doc["paths"]["/logs"]["post"];
        for status in ["202", "400", "413", "415", "503"] {
            assert!(op["responses"].get(status).is_some(), "{status}");
        }
        assert!(
            op["requestBody"]["content"]
                .get("application/x-ndjson")
                .is_some()
        );
        assert!(
            op["requestBody"]["content"]
                .get("application/msgpack")
                .is_some()
        );
    }

    #[test]
    fn openapi_documents_the_shippers_routes() {
        let doc = serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let paths = &doc["paths"];
        for (path, method, statuses) in [
            (
                "/loki/api/v1/push",
                "post",
                &["204", "400", "413", "415", "503"][..],
            ),
            ("/v1/logs", "post", &["200", "400", "413", "415", "503"]),
            ("/_bulk", "post", &["200", "400", "413", "415", "503"]),
            (
                "/{index}/_bulk",
                "post",
                &["200", "400", "413", "415", "503"],
            ),
            ("/", "get", &["200"]),
            ("/_license", "get", &["200"]),
        ] {
            let op = &paths[path][method];
            for status in statuses {
                assert!(op["responses"].get(*status).is_some(), "{path} {status}");
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["Protobuf"],
            serde_json::json!({"type": "string", "format": "binary", "description": "Binary protobuf, for the OpenAPI document."})
        );
    }
}
