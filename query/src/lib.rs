//! logjet query: search, statistics and (later) live tail over what the processors wrote.
//!
//! Handlers are thin: [`search`] and [`stats`] hold the logic as plain functions.

pub mod alerts;
pub mod archive;
pub mod error;
pub mod filter;
pub mod history;
pub mod loki;
pub mod patterns;
pub mod pipeline;
pub mod search;
pub mod stats;
pub mod tail;
mod timeseries;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use logjet_core::config::QueryConfig;
use logjet_core::http as lhttp;
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use logjet_core::store::Redis;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use error::QueryError;
pub use logjet_api::TimeseriesParams;
use search::{Budget, EventQuery, QueryRequest, QueryResponse};
use stats::{Summary, SummaryParams, Timeseries};
pub use timeseries::{TimeseriesPlan, plan_timeseries};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error(transparent)]
    Nats(logjet_core::jetstream::JetStreamError),
    #[error(transparent)]
    Config(#[from] logjet_core::config::ConfigError),
    #[error("archive: {0}")]
    Archive(#[from] logjet_core::archive::ArchiveError),
    #[error(transparent)]
    Alerts(#[from] alerts::AlertsError),
}

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<QueryConfig>,
    /// The connection and its outage tracker: every read's result feeds it.
    pub redis: Redis,
    pub tails: tail::Tails,
    pub tiers: search::Tiers,
    pub gauges: ScrapeGauges,
    pub guard: Arc<lhttp::Guard>,
    pub registry: prometheus::Registry,
    pub draining: Draining,
    /// Alert rules, when `alert_rules` names some.
    pub alerts: Option<Arc<alerts::Alerting>>,
}

impl ServiceState for AppState {
    fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    fn draining(&self) -> &Draining {
        &self.draining
    }

    async fn readiness(&self) -> Vec<Check> {
        let redis = self.redis.ping().await.map_err(|e| format!("redis: {e}"));
        vec![Check::new("redis", redis)]
    }

    /// Dependencies' health and the pipeline's lag are read at scrape time. The lag is exported
    /// here (not only by processors) so "pipeline stalled" is visible when no processor is left
    /// to say so.
    async fn before_scrape(&self) {
        let m = &self.gauges;
        let nats_up =
            self.tails.client.connection_state() == async_nats::connection::State::Connected;
        m.nats_connected.set(nats_up as i64);
        let redis_up = tokio::time::timeout(Duration::from_secs(1), self.redis.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        m.redis_up.set(redis_up as i64);
        if nats_up
            && let Ok(Ok(p)) = tokio::time::timeout(
                Duration::from_secs(1),
                pipeline::pipeline(&self.tails.client, &self.cfg.stream, &self.cfg.consumer),
            )
            .await
            && let Some(c) = p.consumer
        {
            m.consumer_lag.set(c.lag as i64);
        }
    }
}

pub struct QueryService {
    server: HttpServer,
    router: Router,
    cfg: Arc<QueryConfig>,
    redis: Redis,
    tiers: search::Tiers,
    state: AppState,
}

impl QueryService {
    pub async fn build(cfg: QueryConfig) -> Result<QueryService, StartError> {
        let serve_options = ServeOptions {
            header_read_timeout: cfg.api.header_read_timeout,
            ..ServeOptions::with_drain_timeout(cfg.drain_timeout)
        };
        let server = HttpServer::bind(cfg.listen, serve_options).await?;
        let redis = Redis::connect(&cfg.redis_url, &cfg.redis_sentinel, cfg.query_timeout)
            .map_err(|source| StartError::Redis {
                url: logjet_core::config::redact_url(&cfg.redis_url),
                source,
            })?;
        let auth = cfg.api.load_auth()?;
        if matches!(auth, logjet_core::auth::Auth::Off) {
            tracing::warn!(
                "AUTHENTICATION IS OFF (LOGJET_AUTH=off): anyone who can reach this port can read every log. Local development only."
            );
        }
        let registry = logjet_core::metrics::new_registry("query");
        let guard = lhttp::Guard::new(
            auth,
            logjet_core::auth::Scope::Query,
            cfg.api.rate_limit_per_second,
            cfg.api.rate_limit_burst,
            &registry,
        );
        let nats = logjet_core::jetstream::connect(&cfg.nats_url, "logjet-query", true)
            .await
            .map_err(StartError::Nats)?;
        let nats = nats.client;
        let history = history::History {
            client: nats.clone(),
            stream: cfg.stream.clone(),
            max_age: cfg.retention,
        };
        let archive =
            match logjet_core::archive::ArchiveStore::open_reader(&cfg.archive.archive_url()?)? {
                None => None,
                Some(store) => Some(archive::ArchiveTier::new(
                    store,
                    cfg.archive.retention_rules()?,
                    cfg.archive_read.clone(),
                )),
            };
        let tiers = search::Tiers {
            history,
            archive,
            stream_retention: cfg.retention,
        };
        let tails = tail::Tails {
            client: nats,
            stream: cfg.stream.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(cfg.max_tails)),
            buffer: cfg.tail_buffer,
            max_age: cfg.retention,
            metrics: tail::TailMetrics::new(&registry),
        };
        let alerts = alerts::Alerting::load(
            &cfg.alerts,
            server.local_addr(),
            alerts::AlertMetrics::new(&registry),
        )?;
        let cfg = Arc::new(cfg);
        let state = AppState {
            cfg: cfg.clone(),
            redis: redis.clone(),
            tails,
            tiers: tiers.clone(),
            gauges: ScrapeGauges::new(&registry),
            guard,
            registry,
            draining: server.draining(),
            alerts,
        };
        Ok(QueryService {
            server,
            router: app(state.clone()),
            cfg,
            redis,
            tiers,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The router [`QueryService::run`] serves, for tests that drive it without a socket
    /// (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let QueryService {
            server,
            router,
            cfg,
            redis,
            tiers,
            state,
        } = self;
        tracing::info!(config = ?logjet_core::config::describe(&*cfg), "query starting");
        // Redis is pinged now and then so its outages are noticed (and logged once) between
        // requests too.
        redis.spawn_watch(REDIS_WATCH_EVERY, shutdown.child_token());
        if let Some(a) = tiers.archive {
            tokio::spawn(a.refresh_loop(tiers.history, shutdown.child_token()));
        }
        if let Some(a) = state.alerts.clone() {
            a.spawn(state, shutdown.child_token());
        }
        let result = server.serve(router, shutdown).await;
        tracing::info!("query stopped");
        Ok(result?)
    }
}

pub async fn serve(cfg: QueryConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    QueryService::build(cfg).await?.run(shutdown).await
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "logjet query API",
        description = "Search, statistics and live tail over logjet's recent events."
    ),
    paths(
        query_logs,
        summary,
        timeseries,
        get_patterns,
        tail_logs,
        pipeline_stats,
        services,
        whoami
    ),
    components(schemas(
        QueryRequest,
        QueryResponse,
        Summary,
        Timeseries,
        stats::Point,
        patterns::PatternsResponse,
        patterns::Pattern,
        logjet_api::WhoAmI
    ))
)]
pub struct ApiDoc;

/// The router: pure function of the state. Registers the HTTP metrics in the state's registry:
/// once per state.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/logs/query", post(query_logs))
        .route("/stats/summary", get(summary))
        .route("/stats/timeseries", get(timeseries))
        .route("/stats/pipeline", get(pipeline_stats))
        .route("/services", get(services))
        .route("/patterns", get(get_patterns))
        .merge(loki::api::router())
        .merge(alerts::api::router())
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.cfg.api.body_read_timeout,
        ));
    let api = lhttp::guarded(api, state.guard.clone());
    let api = lhttp::shed_load(api, state.cfg.max_concurrent_requests, state.guard.clone());
    // Tails are long-lived: they have their own limit (`max_tails`), not the request limit.
    let tails = lhttp::guarded(
        Router::new()
            .route("/logs/tail", get(tail_logs))
            .route("/loki/api/v1/tail", get(loki::tail::tail)),
        state.guard.clone(),
    );
    // Any key may ask who it is (the dashboard's sign-in); it is not behind the query scope.
    let own = api
        .merge(tails)
        .merge(loki::api::ready_router())
        .route("/openapi.json", get(openapi))
        .route("/auth/whoami", get(whoami));
    service::router(own, state)
}

/// How often Redis is pinged while no request uses it.
const REDIS_WATCH_EVERY: Duration = Duration::from_secs(2);

/// Every Redis read goes through here. Reads are safe to repeat: after Redis restarted, the first
/// command on the old connection fails while the connection manager reconnects, and one retry
/// turns that into a normal answer. The final result feeds Redis's outage tracker (an outage is
/// logged there once, not per request).
async fn retry_once<T, F, Fut>(redis: &Redis, f: F) -> Result<T, QueryError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let result = match f().await {
        Err(QueryError::Redis(e)) if e.is_io_error() || e.is_connection_dropped() => f().await,
        other => other,
    };
    match &result {
        Ok(_) => redis.status.succeeded(),
        Err(QueryError::Redis(e)) if logjet_core::store::is_unavailable(e) => {
            redis.status.failed(e)
        }
        Err(_) => {}
    }
    result
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Gauges set at scrape time.
#[derive(Clone)]
pub struct ScrapeGauges {
    pub nats_connected: prometheus::IntGauge,
    pub redis_up: prometheus::IntGauge,
    pub consumer_lag: prometheus::IntGauge,
}

impl ScrapeGauges {
    fn new(registry: &prometheus::Registry) -> ScrapeGauges {
        use logjet_core::metrics::gauge;
        ScrapeGauges {
            nats_connected: gauge(
                registry,
                "logjet_nats_connected",
                "1 while the NATS connection is up.",
            ),
            redis_up: gauge(
                registry,
                "logjet_redis_up",
                "1 when Redis answered PING at the last scrape.",
            ),
            consumer_lag: gauge(
                registry,
                "logjet_pipeline_consumer_lag_messages",
                "Lag of the processors' consumer (num_pending + num_ack_pending), read from NATS at scrape time.",
            ),
        }
    }
}

/// Search recent events, newest first.
#[utoipa::path(
    post,
    path = "/logs/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "A page of events", body = QueryResponse),
        (status = 400, description = "Invalid request; the error names the field", body = logjet_core::http::ErrorBody),
        (status = 413, description = "Body over `max_body_bytes`", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis or NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn query_logs(
    State(st): State<AppState>,
    body: Result<axum::Json<QueryRequest>, JsonRejection>,
) -> Result<axum::Json<QueryResponse>, QueryError> {
    let axum::Json(req) = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            QueryError::TooLarge {
                limit: st.cfg.max_body_bytes,
            }
        } else {
            QueryError::BadBody(e.body_text())
        }
    })?;
    let now = Utc::now();
    let q = EventQuery::from_request(&req, now)?;
    let budget = Budget {
        max_events: st.cfg.max_scan_events as u64,
        max_time: st.cfg.query_timeout / 2,
    };
    let resp = retry_once(&st.redis, || {
        search::search_all(&st.redis.conn, &st.tiers, &q, budget, now)
    })
    .await?;
    Ok(axum::Json(resp))
}

/// Totals over the retained window (or from `from`), and the current rate.
#[utoipa::path(
    get,
    path = "/stats/summary",
    params(SummaryParams),
    responses(
        (status = 200, body = Summary),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn summary(
    State(st): State<AppState>,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<axum::Json<Summary>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let now = Utc::now();
    let counts = StatsTiers::of(&st, None);
    let from = match &p.from {
        Some(f) => search::parse_time("from", f, now)?,
        None => now - chrono::Duration::from_std(st.cfg.retention).unwrap_or_default(),
    }
    .max(now - chrono::Duration::from_std(counts.keep).unwrap_or_default());
    let s = retry_once(&st.redis, || async {
        Ok(stats::summary(
            &st.redis.conn,
            now,
            from,
            st.cfg.retention,
            logjet_core::parse::DEFAULT_MAX_FUTURE,
            counts.catalog,
        )
        .await?)
    })
    .await?;
    Ok(axum::Json(s))
}

/// What the statistics can read: Redis's counters for `retention`, and the archive's catalog
/// (once loaded) for as long as it keeps the service's events.
struct StatsTiers<'a> {
    catalog: Option<&'a logjet_core::archive::Catalog>,
    /// How far back counts reach.
    keep: Duration,
}

impl<'a> StatsTiers<'a> {
    fn of(st: &'a AppState, service: Option<&str>) -> StatsTiers<'a> {
        let archive = st.tiers.archive.as_ref();
        let catalog = archive.and_then(|a| a.loaded_catalog());
        let keep = match (archive, catalog) {
            (Some(a), Some(_)) => a.keeps(service).max(st.cfg.retention),
            _ => st.cfg.retention,
        };
        StatsTiers { catalog, keep }
    }
}

/// Live tail as Server-Sent Events: `event: log` with a canonical event per message, and a final
/// `event: dropped` if the client does not keep up.
#[utoipa::path(
    get,
    path = "/logs/tail",
    params(tail::TailParams),
    responses(
        (status = 200, description = "An SSE stream of events", content_type = "text/event-stream"),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Too many tails, or NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn tail_logs(
    State(st): State<AppState>,
    params: Result<Query<tail::TailParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    Ok(st.tails.open(p, Utc::now()).await?.into_response())
}

/// The API key presented as `Authorization: Bearer`: its name and scopes (never the key), so
/// the dashboard can check a key at sign-in. Answers any valid key, whatever its scopes.
#[utoipa::path(
    get,
    path = "/auth/whoami",
    responses(
        (status = 200, body = logjet_api::WhoAmI),
        (status = 401, description = "no key, or an unknown one", body = logjet_core::http::ErrorBody)
    )
)]
async fn whoami(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match st.guard.auth.identify(authorization) {
        Some(id) => axum::Json(logjet_api::WhoAmI {
            name: id.name,
            scopes: id.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            authentication: id.authentication,
        })
        .into_response(),
        None => {
            let mut resp = lhttp::ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing or unknown API key: send `Authorization: Bearer <key>`",
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"logjet\""),
            );
            resp
        }
    }
}

/// The stream and the processors' consumer: lag (as KEDA computes it), pending, redelivered.
#[utoipa::path(
    get,
    path = "/stats/pipeline",
    responses(
        (status = 200, body = pipeline::PipelineStats),
        (status = 503, description = "NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn pipeline_stats(
    State(st): State<AppState>,
) -> Result<axum::Json<pipeline::PipelineStats>, QueryError> {
    Ok(axum::Json(
        pipeline::pipeline(&st.tails.client, &st.cfg.stream, &st.cfg.consumer).await?,
    ))
}

/// Services seen, most recently active first, with volume, levels and error rate.
#[utoipa::path(
    get,
    path = "/services",
    responses(
        (status = 200, body = stats::ServicesResponse),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn services(
    State(st): State<AppState>,
) -> Result<axum::Json<stats::ServicesResponse>, QueryError> {
    Ok(axum::Json(
        retry_once(&st.redis, || async {
            Ok(stats::services(
                &st.redis.conn,
                Utc::now(),
                st.cfg.retention,
                logjet_core::parse::DEFAULT_MAX_FUTURE,
            )
            .await?)
        })
        .await?,
    ))
}

/// Message patterns: templates with counts, a sample, first/last seen and a per-minute series.
#[utoipa::path(
    get,
    path = "/patterns",
    params(patterns::PatternParams),
    responses(
        (status = 200, body = patterns::PatternsResponse),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn get_patterns(
    State(st): State<AppState>,
    params: Result<Query<patterns::PatternParams>, QueryRejection>,
) -> Result<axum::Json<patterns::PatternsResponse>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let q = patterns::PatternQuery::from_params(&p, Utc::now())?;
    Ok(axum::Json(
        retry_once(&st.redis, || async {
            Ok(patterns::patterns(&st.redis.conn, &q).await?)
        })
        .await?,
    ))
}

/// Event counts per time bucket and level.
#[utoipa::path(
    get,
    path = "/stats/timeseries",
    params(TimeseriesParams),
    responses(
        (status = 200, body = Timeseries),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
async fn timeseries(
    State(st): State<AppState>,
    params: Result<Query<TimeseriesParams>, QueryRejection>,
) -> Result<axum::Json<Timeseries>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let now = Utc::now();
    let counts = StatsTiers::of(&st, p.service.as_deref().filter(|s| !s.is_empty()));
    let plan = plan_timeseries(&p, now, counts.keep)?;
    let archive = counts.catalog.map(|catalog| stats::ArchiveCounts {
        catalog,
        horizon: now.timestamp() - st.cfg.retention.as_secs() as i64,
    });
    let ts = retry_once(&st.redis, || async {
        Ok(stats::timeseries(
            &st.redis.conn,
            plan.step,
            plan.from,
            plan.to,
            plan.service.as_ref().map(|s| s.as_str()),
            archive,
        )
        .await?)
    })
    .await?;
    Ok(axum::Json(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_the_routes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/logs/query",
            "/stats/summary",
            "/stats/timeseries",
            "/patterns",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
