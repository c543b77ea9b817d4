//! logjet dashboard server: one origin and one port for the browser.
//!
//! - `/api/*` is proxied to the query service (`query_url`) with the `/api` prefix stripped;
//!   responses stream through, so the live tail's Server-Sent Events arrive as they are sent.
//!   When `query_api_key` is set it is added as `Authorization: Bearer …` on the way to the
//!   query service and never appears in anything sent to the browser.
//! - Everything else is the app bundle from `static_dir` ([`assets`]): precompressed `.gz`
//!   siblings when the browser accepts gzip, `immutable` caching for content-hashed names,
//!   `no-cache` for `index.html`.
//! - `/healthz`, `/readyz`, `/metrics` as on every service.

pub mod assets;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use logjet_core::config::DashboardConfig;
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<DashboardConfig>,
    pub proxy: proxy::Proxy,
    pub registry: prometheus::Registry,
    pub draining: Draining,
}

impl ServiceState for AppState {
    fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    fn draining(&self) -> &Draining {
        &self.draining
    }

    /// Ready when the bundle is there (and the server is not shutting down).
    ///
    /// The query service is deliberately not a check: while it is down the dashboard must stay
    /// in the Service's endpoints so the browser gets the page and its "query service
    /// unavailable" banner (and recovers by itself), rather than a connection error from the load
    /// balancer. Whether the query service answers is exported as
    /// `logjet_dashboard_upstream_up`.
    async fn readiness(&self) -> Vec<Check> {
        let index = self.cfg.static_dir.join("index.html");
        let present = tokio::fs::metadata(&index).await.is_ok_and(|m| m.is_file());
        vec![Check::when("bundle", present, || {
            format!(
                "{} missing: run scripts/build-dashboard.sh",
                index.display()
            )
        })]
    }
}

pub struct Dashboard {
    server: HttpServer,
    router: Router,
    cfg: Arc<DashboardConfig>,
}

impl Dashboard {
    pub async fn build(cfg: DashboardConfig) -> Result<Dashboard, StartError> {
        let server = HttpServer::bind(
            cfg.listen,
            ServeOptions::with_drain_timeout(cfg.drain_timeout),
        )
        .await?;
        let registry = logjet_core::metrics::new_registry("dashboard");
        // Proxied streams (the live tail) end when the drain starts, so shutdown never waits on
        // a browser that keeps a tail open.
        let streams = server.draining().token();
        let proxy = proxy::Proxy::new(&cfg, &registry, streams).map_err(StartError::Client)?;
        if !cfg.static_dir.join("index.html").is_file() {
            tracing::warn!(
                static_dir = %cfg.static_dir.display(),
                "no index.html in static_dir: build the bundle with scripts/build-dashboard.sh"
            );
        }
        let cfg = Arc::new(cfg);
        let state = AppState {
            cfg: cfg.clone(),
            proxy,
            registry,
            draining: server.draining(),
        };
        Ok(Dashboard {
            server,
            router: app(state),
            cfg,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The router [`Dashboard::run`] serves, for tests that drive it without a socket.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Dashboard {
            server,
            router,
            cfg,
        } = self;
        tracing::info!(config = ?cfg.describe(), addr = %server.local_addr(), "dashboard starting");
        let result = server.serve(router, shutdown).await;
        tracing::info!("dashboard stopped");
        Ok(result?)
    }
}

pub async fn serve(cfg: DashboardConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Dashboard::build(cfg).await?.run(shutdown).await
}

/// The router: pure function of the state. Registers the HTTP metrics in the state's registry:
/// once per state.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/{*path}", any(proxy::forward))
        // JSON is compressed on the way out; SSE is left alone (tower-http's default predicate).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    // The app bundle, not the JSON 404, answers every other path.
    let routes = service::standard_routes(api).fallback(assets::serve);
    service::finish(routes, state)
}
