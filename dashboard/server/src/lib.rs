//! logjet dashboard server: one origin and one port for the browser.
//!
//! - Who is using it ([`identity`], [`signin`]): by default a signed-in user (an API key of
//!   query scope exchanged for a server-side session cookie), or the user an authenticating
//!   proxy names from a trusted address, or nobody (`dashboard_auth = off`, development only).
//!   Everything but `/signin`, `/signout` and the health endpoints needs that user.
//! - `/api/*` is proxied to the query service (`query_url`) with the `/api` prefix stripped,
//!   with the user's key (or the proxied users' `query_api_key`) as `Authorization: Bearer …`,
//!   which never appears in anything sent to the browser; responses stream through, so the
//!   live tail's Server-Sent Events arrive as they are sent.
//! - Everything else is the app bundle from `static_dir` ([`assets`]): precompressed `.gz`
//!   siblings when the browser accepts gzip, `immutable` caching for content-hashed names,
//!   `no-cache` for `index.html`.
//! - `/healthz`, `/readyz`, `/metrics` as on every service.

pub mod assets;
pub mod identity;
pub mod proxy;
pub mod session;
pub mod signin;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
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
    #[error(transparent)]
    Config(#[from] logjet_core::config::ConfigError),
}

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<DashboardConfig>,
    pub proxy: proxy::Proxy,
    pub gate: identity::Gate,
    /// `logjet_dashboard_signins_total{result}`.
    pub signins: prometheus::IntCounterVec,
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
        let gate = identity::Gate::from_config(&cfg)?;
        match &gate {
            identity::Gate::Off { .. } => tracing::warn!(
                "DASHBOARD SIGN-IN IS OFF (LOGJET_DASHBOARD_AUTH=off): anyone who can reach this port reads every log. Local development only."
            ),
            identity::Gate::Proxy { cidrs, .. } => tracing::info!(
                trusted = ?cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "users are named by the authenticating proxy"
            ),
            identity::Gate::SignIn(_) => {}
        }
        let signins = logjet_core::metrics::counter_vec(
            &registry,
            "logjet_dashboard_signins_total",
            "Sign-in attempts by result (ok, refused, unavailable, cross_site).",
            &["result"],
        );
        for r in ["ok", "refused", "unavailable", "cross_site"] {
            signins.with_label_values(&[r]);
        }
        let cfg = Arc::new(cfg);
        let state = AppState {
            cfg: cfg.clone(),
            proxy,
            gate,
            signins,
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
    let gated = axum::middleware::from_fn_with_state(state.clone(), signin::require_user);
    let api = Router::new()
        .route("/api/{*path}", any(proxy::forward))
        // JSON is compressed on the way out; SSE is left alone (tower-http's default predicate).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .route("/auth/me", get(signin::me))
        .layer(gated);
    let open = Router::new()
        .route("/signin", get(signin::signin_page).post(signin::signin))
        .route("/signout", post(signin::signout));
    // The app bundle, not the JSON 404, answers every other path: to signed-in users only.
    let routes = service::standard_routes(api.merge(open)).fallback(signin::bundle);
    service::finish(routes, state)
}
