//! Binding a service's port and serving its router with a graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a service's HTTP side could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// Readiness shared between a service's probes and its shutdown: once draining, `/readyz` fails
/// so load balancers stop sending work while in-flight requests finish. It is also a token, for
/// what must end as soon as the drain starts (the dashboard's proxied live tails), and a second
/// one cancelled just before the drain deadline, when requests still waiting on a dependency are
/// answered 503 ([`answer_before_deadline`](super::routes::answer_before_deadline)).
#[derive(Clone, Debug, Default)]
pub struct Draining {
    started: CancellationToken,
    expired: CancellationToken,
}

impl Draining {
    pub fn start(&self) {
        self.started.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.started.is_cancelled()
    }

    /// A token cancelled when the drain starts.
    pub fn token(&self) -> CancellationToken {
        self.started.clone()
    }

    /// Requests still in progress are to be answered now: the drain deadline is near.
    pub fn expire(&self) {
        self.started.cancel();
        self.expired.cancel();
    }

    /// A token cancelled just before the drain deadline.
    pub fn expired(&self) -> CancellationToken {
        self.expired.clone()
    }
}

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// A client must send its request headers within this (slowloris protection).
    pub header_read_timeout: Duration,
    /// After shutdown, the service's own work and in-flight requests get this long in all
    /// (long streams such as live tails are cut after it); requests still waiting on a
    /// dependency are answered 503 shortly before ([`ServeOptions::answer_by`]).
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: crate::config::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

impl ServeOptions {
    /// The defaults with the service's `drain_timeout`.
    pub fn with_drain_timeout(drain_timeout: Duration) -> ServeOptions {
        ServeOptions {
            drain_timeout,
            ..ServeOptions::default()
        }
    }

    /// How long after shutdown requests still in progress are answered 503: a tenth of the drain
    /// timeout (at most a second) before its end, time enough to write the answers and close.
    pub fn answer_by(&self) -> Duration {
        let margin = (self.drain_timeout / 10).min(Duration::from_secs(1));
        self.drain_timeout - margin
    }
}

/// A bound listener, not yet serving: what a service's `build` makes first, so tests can bind
/// port 0 and read the address before the service runs.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    options: ServeOptions,
    draining: Draining,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr, options: ServeOptions) -> Result<HttpServer, ServerError> {
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(HttpServer {
            listener,
            local_addr,
            options,
            draining: Draining::default(),
        })
    }

    /// The address actually bound (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The drain flag this server sets on shutdown; the service's state keeps a clone for its
    /// `/readyz`.
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// Serves `router` until `shutdown`; then readiness fails, the listener closes and in-flight
    /// requests get up to the drain timeout to finish.
    pub async fn serve(
        self,
        router: Router,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        self.serve_then(router, shutdown, std::future::ready(()))
            .await
    }

    /// Like [`HttpServer::serve`], for a service with work of its own to finish on shutdown (the
    /// processor's batch in hand): after `shutdown`, readiness fails at once, `finish_work` runs
    /// while `/healthz`, `/readyz` and `/metrics` still answer, and only then does HTTP stop.
    ///
    /// The whole stop takes at most the drain timeout, whatever the service's dependencies do:
    /// `finish_work` is dropped where it is at the deadline (what it had not acknowledged is
    /// redelivered), requests still in progress are answered 503 just before it
    /// ([`ServeOptions::answer_by`]), and connections still open at the deadline are closed.
    pub async fn serve_then(
        self,
        router: Router,
        shutdown: CancellationToken,
        finish_work: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let HttpServer {
            listener,
            options,
            draining,
            ..
        } = self;
        let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
        let stop = async move {
            shutdown.cancelled().await;
            let started = Instant::now();
            draining.start();
            let expire = draining.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(started + options.answer_by()).await;
                expire.expire();
            });
            let deadline = started + options.drain_timeout;
            let _ = deadline_tx.send(deadline);
            if tokio::time::timeout_at(deadline, finish_work)
                .await
                .is_err()
            {
                tracing::warn!(
                    drain_timeout = ?options.drain_timeout,
                    "work still unfinished at the drain deadline; stopping without it (what it had not acknowledged is delivered again)"
                );
            }
        };
        serve_connections(listener, router, stop, deadline_rx, options)
            .await
            .map_err(ServerError::Serve)
    }
}

/// Accepts connections until `stop` completes, then stops accepting and lets in-flight requests
/// finish until the deadline `stop` sent (`drain_timeout` after the stop began).
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()>,
    deadline: tokio::sync::oneshot::Receiver<Instant>,
    opts: ServeOptions,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or a connection reset during accept: keep serving.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let deadline = deadline
        .await
        .unwrap_or_else(|_| Instant::now() + opts.drain_timeout);
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::{Notify, oneshot};

    use super::*;
    use crate::service::{Check, ServiceState, router};

    #[derive(Clone)]
    struct State {
        registry: prometheus::Registry,
        draining: Draining,
    }

    impl ServiceState for State {
        fn registry(&self) -> &prometheus::Registry {
            &self.registry
        }
        fn draining(&self) -> &Draining {
            &self.draining
        }
        async fn readiness(&self) -> Vec<Check> {
            Vec::new()
        }
    }

    /// Sends `GET path` on a new connection; the status code, or `None` when refused.
    async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        send_get(&mut conn, path).await;
        Some(read_status(&mut conn).await)
    }

    async fn send_get(conn: &mut TcpStream, path: &str) {
        let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
    }

    async fn read_status(conn: &mut TcpStream) -> u16 {
        let mut resp = String::new();
        conn.read_to_string(&mut resp).await.unwrap();
        resp[9..12].parse().unwrap()
    }

    #[tokio::test]
    async fn bind_errors_name_the_address() {
        let taken = HttpServer::bind("127.0.0.1:0".parse().unwrap(), ServeOptions::default())
            .await
            .unwrap();
        let err = HttpServer::bind(taken.local_addr(), ServeOptions::default())
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("binding {}: ", taken.local_addr())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn shutdown_fails_readiness_finishes_work_then_drains_in_flight_requests() {
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), ServeOptions::default())
            .await
            .unwrap();
        let addr = server.local_addr();
        let state = State {
            registry: crate::metrics::new_registry("test"),
            draining: server.draining(),
        };
        let slow_started = Arc::new(Notify::new());
        let slow_release = Arc::new(Notify::new());
        let slow = {
            let (started, release) = (slow_started.clone(), slow_release.clone());
            get(move || async move {
                started.notify_one();
                release.notified().await;
                "done"
            })
        };
        let app = router(axum::Router::new().route("/slow", slow), state.clone());
        let shutdown = CancellationToken::new();
        let (work_done_tx, work_done) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve_then(app, shutdown.clone(), async move {
            let _ = work_done.await;
        }));

        assert_eq!(status_of(addr, "/readyz").await, Some(200));
        let mut in_flight = TcpStream::connect(addr).await.unwrap();
        send_get(&mut in_flight, "/slow").await;
        slow_started.notified().await;

        shutdown.cancel();
        // The service's own work is still finishing: probes answer, readiness fails.
        assert_eq!(status_of(addr, "/readyz").await, Some(503));
        assert_eq!(status_of(addr, "/healthz").await, Some(200));
        assert!(state.draining.is_draining());

        // Work done: the listener closes, the request in flight still gets its answer.
        work_done_tx.send(()).unwrap();
        let mut refused = false;
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(refused, "still accepting after the drain started");
        assert!(
            !serving.is_finished(),
            "returned before the request in flight ended"
        );
        slow_release.notify_one();
        assert_eq!(read_status(&mut in_flight).await, 200);
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_stop_takes_at_most_the_drain_timeout_and_stuck_requests_get_503() {
        let options = ServeOptions::with_drain_timeout(Duration::from_millis(600));
        assert_eq!(options.answer_by(), Duration::from_millis(540));
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), options)
            .await
            .unwrap();
        let addr = server.local_addr();
        let state = State {
            registry: crate::metrics::new_registry("test"),
            draining: server.draining(),
        };
        let stuck_started = Arc::new(Notify::new());
        let stuck = {
            let started = stuck_started.clone();
            get(move || async move {
                started.notify_one();
                std::future::pending::<&str>().await
            })
        };
        let app = router(axum::Router::new().route("/stuck", stuck), state);
        let shutdown = CancellationToken::new();
        // Work that never finishes, like a flush to a NATS that is gone.
        let serving =
            tokio::spawn(server.serve_then(app, shutdown.clone(), std::future::pending::<()>()));
        let mut in_flight = TcpStream::connect(addr).await.unwrap();
        send_get(&mut in_flight, "/stuck").await;
        stuck_started.notified().await;

        let t = std::time::Instant::now();
        shutdown.cancel();
        let mut resp = String::new();
        in_flight.read_to_string(&mut resp).await.unwrap();
        let answered = t.elapsed();
        assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("retry-after: 1"),
            "{resp}"
        );
        assert!(resp.contains("shutting down"), "{resp}");
        assert!(
            answered >= Duration::from_millis(530) && answered < Duration::from_secs(1),
            "answered after {answered:?}"
        );
        tokio::time::timeout(Duration::from_millis(900), serving)
            .await
            .expect("serve returns at the drain deadline")
            .unwrap()
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(600));
    }
}
