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
use axum::extract::State;
use axum::response::Response;
use axum::routing::{any, get};
use logjet_core::config::DashboardConfig;
use logjet_core::http::{self as lhttp, Draining};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<DashboardConfig>,
    pub proxy: proxy::Proxy,
    pub registry: prometheus::Registry,
    pub draining: Draining,
}

pub struct Dashboard {
    listener: TcpListener,
    state: AppState,
    /// Ends proxied streams (the live tail) when the server stops, so shutdown never waits on
    /// a browser that keeps a tail open.
    streams: CancellationToken,
}

impl Dashboard {
    pub async fn build(cfg: DashboardConfig) -> Result<Dashboard, StartError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let registry = logjet_core::metrics::new_registry("dashboard");
        let streams = CancellationToken::new();
        let proxy =
            proxy::Proxy::new(&cfg, &registry, streams.clone()).map_err(StartError::Client)?;
        if !cfg.static_dir.join("index.html").is_file() {
            tracing::warn!(
                static_dir = %cfg.static_dir.display(),
                "no index.html in static_dir: build the bundle with scripts/build-dashboard.sh"
            );
        }
        Ok(Dashboard {
            listener,
            state: AppState {
                cfg: Arc::new(cfg),
                proxy,
                registry,
                draining: Draining::default(),
            },
            streams,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Dashboard {
            listener,
            state,
            streams,
        } = self;
        tracing::info!(config = ?state.cfg.describe(), addr = %listener.local_addr().map_err(StartError::Serve)?, "dashboard starting");
        let draining = state.draining.clone();
        let http_stop = CancellationToken::new();
        let trigger = http_stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            draining.start();
            streams.cancel();
            trigger.cancel();
        });
        let result = lhttp::serve(listener, app(state), http_stop)
            .await
            .map_err(StartError::Serve);
        tracing::info!("dashboard stopped");
        result
    }
}

pub async fn serve(cfg: DashboardConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Dashboard::build(cfg).await?.run(shutdown).await
}

pub fn app(state: AppState) -> Router {
    let http_metrics = logjet_core::metrics::HttpMetrics::new(&state.registry);
    let api = Router::new()
        .route("/api/{*path}", any(proxy::forward))
        // JSON is compressed on the way out; SSE is left alone (tower-http's default predicate).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true));
    let router = Router::new()
        .merge(api)
        .route("/healthz", get(lhttp::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(assets::serve)
        .with_state(state);
    lhttp::instrument(router, http_metrics)
}

/// Ready when the bundle is there and the server is not shutting down.
///
/// The query service is deliberately not a check: while it is down the dashboard must stay in
/// the Service's endpoints so the browser gets the page and its "query service unavailable"
/// banner (and recovers by itself), rather than a connection error from the load balancer.
/// Whether the query service answers is exported as `logjet_dashboard_upstream_up`.
async fn readyz(State(st): State<AppState>) -> Response {
    let index = st.cfg.static_dir.join("index.html");
    let bundle = if tokio::fs::metadata(&index).await.is_ok_and(|m| m.is_file()) {
        Ok(())
    } else {
        Err(format!(
            "{} missing: run scripts/build-dashboard.sh",
            index.display()
        ))
    };
    let draining = if st.draining.is_draining() {
        Err("shutting down".into())
    } else {
        Ok(())
    };
    lhttp::readiness(&[("bundle", bundle), ("shutdown", draining)])
}

async fn metrics(State(st): State<AppState>) -> Response {
    lhttp::metrics_handler(State(st.registry.clone())).await
}
