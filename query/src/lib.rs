//! logjet query: search, statistics and (later) live tail over what the processors wrote.
//!
//! Handlers are thin: [`search`] and [`stats`] hold the logic as plain functions.

pub mod alerts;
pub mod archive;
pub mod error;
pub mod filter;
mod handlers;
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
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post};
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
use search::{QueryRequest, QueryResponse};
use stats::{Summary, Timeseries};
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
        let archive_metrics = archive::ArchiveReadMetrics::new(&registry);
        let archive =
            match logjet_core::archive::ArchiveStore::open_reader(&cfg.archive.archive_url()?)? {
                None => None,
                Some(store) => Some(archive::ArchiveTier::new(
                    store,
                    cfg.archive.retention_rules()?,
                    cfg.archive_read.clone(),
                    archive_metrics,
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
        handlers::query_logs,
        handlers::summary,
        handlers::timeseries,
        handlers::get_patterns,
        handlers::tail_logs,
        handlers::pipeline_stats,
        handlers::services,
        handlers::whoami
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
        .route("/logs/query", post(handlers::query_logs))
        .route("/stats/summary", get(handlers::summary))
        .route("/stats/timeseries", get(handlers::timeseries))
        .route("/stats/pipeline", get(handlers::pipeline_stats))
        .route("/services", get(handlers::services))
        .route("/patterns", get(handlers::get_patterns))
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
            .route("/logs/tail", get(handlers::tail_logs))
            .route("/loki/api/v1/tail", get(loki::tail::tail)),
        state.guard.clone(),
    );
    // Any key may ask who it is (the dashboard's sign-in); it is not behind the query scope.
    let own = api
        .merge(tails)
        .merge(loki::api::ready_router())
        .route("/openapi.json", get(openapi))
        .route("/auth/whoami", get(handlers::whoami));
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
