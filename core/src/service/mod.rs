//! The skeleton every service shares, written once: bind, serve with a graceful drain, the
//! standard `/healthz`, `/readyz` and `/metrics`, the JSON 404, per-route HTTP metrics, and the
//! `main` of every binary.
//!
//! A service keeps only what is its own: its state, its routes, its readiness checks, its
//! scrape-time gauges and its background work. A new one (say an archiver with health and
//! metrics on 9101 and a JetStream consumer) is written like this:
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::Router;
//! use logjet_core::service::{self, Check, Draining, HttpServer, ServeOptions, ServerError};
//! use logjet_core::service::ServiceState;
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(Clone)]
//! struct State { registry: prometheus::Registry, draining: Draining, /* clients… */ }
//!
//! impl ServiceState for State {
//!     fn registry(&self) -> &prometheus::Registry { &self.registry }
//!     fn draining(&self) -> &Draining { &self.draining }
//!     async fn readiness(&self) -> Vec<Check> {
//!         vec![Check::when("nats", true, || "not connected to NATS".into())]
//!     }
//! }
//!
//! async fn serve(listen: SocketAddr, shutdown: CancellationToken) -> Result<(), ServerError> {
//!     let server = HttpServer::bind(listen, ServeOptions::default()).await?;
//!     let registry = logjet_core::metrics::new_registry("archiver");
//!     let state = State { registry, draining: server.draining() };
//!     let work = tokio::spawn(async move { /* consume until shutdown */ });
//!     let router = service::router(Router::new(), state);
//!     // Readiness fails at shutdown; probes answer until the batch in hand is written.
//!     server.serve_then(router, shutdown, async { let _ = work.await; }).await
//! }
//! ```
//!
//! and its `main.rs` is its allocator, its clap `Args` with a flattened [`ConfigFlag`], and
//! `fn main() -> ExitCode { service::run(|| Args::parse().config, logjet_archiver::serve) }`.
//!
//! Stopping is bounded the same way for every service: its config's `drain_timeout`
//! (`ServiceConfig::drain_timeout`, `LOGJET_DRAIN_TIMEOUT`) goes into
//! [`ServeOptions::with_drain_timeout`]; after SIGTERM, `finish_work` and in-flight requests get
//! that long in all (requests still waiting are answered 503 just before), and [`run`] returns
//! shortly after it whatever is still awaited. Its NATS connection comes from
//! `crate::jetstream::connect` and its Redis from `crate::store::Redis`, whose outages are logged
//! once by `crate::outage::OutageTracker`; on the way out, wait on them only with a bound
//! (`Nats::flush_within`).
//! The `#[global_allocator]` stays in each binary, not here: a library declaring one would impose
//! it on everything linking `logjet-core` (the tests, the benches), and two declarations do not
//! link.
//!
//! - [`server`]: [`HttpServer`] (bind, [`HttpServer::serve`], [`HttpServer::serve_then`]),
//!   [`Draining`], [`ServerError`];
//! - [`routes`]: [`ServiceState`] and [`Check`], [`router`] (or [`standard_routes`] then
//!   [`finish`] for a service with its own fallback);
//! - [`binary`]: [`run`] and [`run_command`] for `main`.

pub mod binary;
pub mod routes;
pub mod server;

pub use binary::{ConfigFlag, run, run_command, serve_until_signal, serve_with_config};
pub use routes::{
    Check, ServiceState, finish, healthz, metrics_response, not_found, readiness, router,
    standard_routes,
};
pub use server::{Draining, HttpServer, ServeOptions, ServerError};
