//! logjet archiver: replicas share the durable pull consumer `archiver` on the LOGS stream and
//! write every message's events to Parquet segments in object storage, exactly once
//! (docs/archive.md is the format and its contract).
//!
//! - [`route`]: a message → the events of each of its services
//! - [`segments`]: open segments, held messages, the cut rules
//! - [`worker`]: the fetch / write / upload / commit / ack loop
//! - [`sweep`]: retention and orphans
//! - [`reindex`]: rebuilding the index objects from the segments

pub mod metrics;
pub mod reindex;
pub mod route;
pub mod segments;
pub mod sweep;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, consumer::PullConsumer};
use axum::Router;
use logjet_core::archive::{ArchiveError, ArchiveStore, Catalog, CatalogOptions};
use logjet_core::config::ArchiverConfig;
use logjet_core::jetstream::{self as ljs, JetStreamError, Nats};
use logjet_core::outage::{OutageTracker, REMINDER_EVERY, Throttle};
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use tokio_util::sync::CancellationToken;

use metrics::ArchiverMetrics;
use worker::{Worker, sleep_or_shutdown};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Nats(#[from] JetStreamError),
    #[error("archive: {0}")]
    Archive(#[from] ArchiveError),
    #[error("archive_url: the archiver needs an archive, not `off`")]
    NoArchive,
    #[error("invalid configuration: {0}")]
    Config(#[from] logjet_core::config::ConfigError),
}

/// Opens the object store of `cfg`.
pub fn open_store(cfg: &ArchiverConfig) -> Result<ArchiveStore, StartError> {
    ArchiveStore::open(&cfg.archive.archive_url()?)?.ok_or(StartError::NoArchive)
}

#[derive(Clone)]
struct AppState {
    nats: Nats,
    store_status: OutageTracker,
    registry: prometheus::Registry,
    metrics: ArchiverMetrics,
    draining: Draining,
    consumer_bound: Arc<AtomicBool>,
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
            Check::when("nats", self.nats.is_connected(), || {
                "not connected to NATS".into()
            }),
            Check::when(
                "consumer",
                self.consumer_bound.load(Ordering::SeqCst),
                || "consumer not bound yet".into(),
            ),
            Check::when("object_store", self.store_status.is_up(), || {
                "the object store does not answer (uploads are retried)".into()
            }),
        ]
    }

    async fn before_scrape(&self) {
        self.metrics
            .nats_connected
            .set(self.nats.is_connected() as i64);
    }
}

/// A bound, not yet running archiver.
pub struct Archiver {
    cfg: ArchiverConfig,
    server: HttpServer,
    state: AppState,
    router: Router,
    catalog: Catalog,
}

impl Archiver {
    pub async fn build(cfg: ArchiverConfig) -> Result<Archiver, StartError> {
        logjet_core::archive::install_tls_provider();
        let store = open_store(&cfg)?;
        std::fs::create_dir_all(cfg.spool_dir()).map_err(ArchiveError::Io)?;
        let server = HttpServer::bind(
            cfg.listen,
            ServeOptions::with_drain_timeout(cfg.drain_timeout),
        )
        .await?;
        let nats = ljs::connect(&cfg.nats_url, "logjet-archiver", true).await?;
        let registry = logjet_core::metrics::new_registry("archiver");
        let metrics = ArchiverMetrics::new(&registry);
        let store_status = OutageTracker::new("object_store", "object store", &store.to_string());
        let state = AppState {
            nats,
            store_status,
            registry,
            metrics,
            draining: server.draining(),
            consumer_bound: Arc::new(AtomicBool::new(false)),
        };
        Ok(Archiver {
            catalog: Catalog::new(store, CatalogOptions::default()),
            router: service::router(Router::new(), state.clone()),
            cfg,
            server,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Runs until `shutdown`: then fetching stops, open segments get one upload attempt, what
    /// is not committed is handed back, all within the drain timeout.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Archiver {
            cfg,
            server,
            state,
            router,
            catalog,
        } = self;
        tracing::info!(config = ?logjet_core::config::describe(&cfg), "archiver starting");
        let drain_timeout = cfg.drain_timeout;
        let sweep = tokio::spawn(sweep::run(
            catalog.clone(),
            cfg.clone(),
            state.metrics.clone(),
            state.store_status.clone(),
            shutdown.child_token(),
        ));
        let worker = tokio::spawn(run_worker(
            cfg,
            state.clone(),
            catalog,
            shutdown.child_token(),
        ));
        let finish_work = async move {
            tracing::info!("draining");
            let _ = worker.await;
            sweep.abort();
            state.nats.flush_within(drain_timeout).await;
        };
        let result = server.serve_then(router, shutdown, finish_work).await;
        tracing::info!("archiver stopped");
        Ok(result?)
    }
}

/// Builds and runs an archiver until `shutdown` is cancelled.
pub async fn serve(cfg: ArchiverConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Archiver::build(cfg).await?.run(shutdown).await
}

/// The archivers' durable pull consumer: explicit acks, unlimited deliveries by default (a
/// message waits while the store is down, it is never dropped).
pub fn consumer_config(cfg: &ArchiverConfig) -> consumer::pull::Config {
    ljs::logs_consumer_config(
        &cfg.consumer,
        "logjet archivers: Parquet segments in object storage",
        cfg.ack_wait,
        cfg.max_deliver,
        cfg.max_ack_pending,
    )
}

/// Creates the stream if needed and the consumer (or brings it to this config); returns it
/// with the stream's incarnation (creation time in ms).
async fn bind(
    js: &jetstream::Context,
    cfg: &ArchiverConfig,
) -> Result<(PullConsumer, u64), JetStreamError> {
    let manage = cfg.stream.manage_streams;
    let info = ljs::ensure_or_find_stream(js, ljs::logs_stream_config(&cfg.stream), manage).await?;
    let consumer = ljs::ensure_consumer(js, &cfg.stream.stream, consumer_config(cfg)).await?;
    let incarnation = u64::try_from(info.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Ok((consumer, incarnation))
}

async fn run_worker(
    cfg: ArchiverConfig,
    state: AppState,
    catalog: Catalog,
    shutdown: CancellationToken,
) {
    let js = ljs::context(state.nats.client.clone(), Duration::from_secs(5));
    let what = format!("consumer {} on stream {}", cfg.consumer, cfg.stream.stream);
    let Some((consumer, incarnation)) =
        ljs::bind_until_ready(&state.nats, &shutdown, what, || bind(&js, &cfg)).await
    else {
        return;
    };
    state.consumer_bound.store(true, Ordering::SeqCst);
    tracing::info!(incarnation, consumer = %cfg.consumer, "consumer bound");
    let pending = Arc::new(AtomicU64::new(0));
    let lag = tokio::spawn(watch_lag(
        consumer.clone(),
        state.nats.clone(),
        state.metrics.clone(),
        pending.clone(),
        shutdown.clone(),
    ));
    let worker = Arc::new(Worker {
        consumer,
        nats: state.nats.clone(),
        catalog,
        store_status: state.store_status.clone(),
        metrics: state.metrics.clone(),
        cfg,
        incarnation,
        pending,
        failures_log: Throttle::new(REMINDER_EVERY),
    });
    worker.run(shutdown).await;
    lag.abort();
}

/// How often the consumer's lag is read.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Reads the consumer's lag as KEDA's `nats-jetstream` scaler does.
async fn watch_lag(
    mut consumer: PullConsumer,
    nats: Nats,
    metrics: ArchiverMetrics,
    pending: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    loop {
        if nats.is_connected() {
            let info = tokio::select! {
                r = consumer.info() => r.map(|i| (i.num_pending, i.num_ack_pending)),
                _ = shutdown.cancelled() => return,
            };
            match info {
                Ok((p, a)) => {
                    pending.store(p, Ordering::Relaxed);
                    metrics.consumer_lag.set((p + a as u64) as i64);
                }
                Err(e) => tracing::debug!(error = %e, "consumer info failed"),
            }
        }
        if !sleep_or_shutdown(&shutdown, LAG_EVERY).await {
            return;
        }
    }
}
