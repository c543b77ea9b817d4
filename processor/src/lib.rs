//! logjet processor: replicas share one durable pull consumer on the LOGS stream and apply
//! every message to Redis exactly once in effect.
//!
//! - [`decode`]: message → event records (ingest batches and raw `nats pub` payloads alike)
//! - [`aggregate`]: the pure planner and the [`aggregate::Aggregator`] that runs it in Redis
//! - [`consume`]: the pull/apply/ack loop
//! - [`dlq`]: dead letters

pub mod aggregate;
pub mod consume;
pub mod decode;
pub mod dlq;
pub mod metrics;
pub mod rebuild;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State as NatsState;
use async_nats::jetstream::consumer::PullConsumer;
use axum::Router;
use logjet_core::config::ProcessorConfig;
use logjet_core::jetstream::{self as ljs, JetStreamError};
use logjet_core::service::{
    self, Check, Draining, HttpServer, ServeOptions, ServerError, ServiceState,
};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use aggregate::{Aggregator, PlanSettings};
use consume::{Worker, sleep_or_shutdown};
use dlq::DeadLetters;
use metrics::ProcessorMetrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Nats(#[from] JetStreamError),
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

#[derive(Clone)]
struct AppState {
    client: Client,
    redis: ConnectionManager,
    registry: prometheus::Registry,
    metrics: ProcessorMetrics,
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
        let nats = Check::when("nats", self.nats_connected(), || {
            "not connected to NATS".into()
        });
        let redis = logjet_core::store::ping(&self.redis)
            .await
            .map_err(|e| format!("redis: {e}"));
        let consumer = Check::when(
            "consumer",
            self.consumer_bound.load(Ordering::SeqCst),
            || "consumer not bound yet".into(),
        );
        vec![nats, Check::new("redis", redis), consumer]
    }

    async fn before_scrape(&self) {
        self.metrics
            .nats_connected
            .set(self.nats_connected() as i64);
    }
}

impl AppState {
    fn nats_connected(&self) -> bool {
        self.client.connection_state() == NatsState::Connected
    }
}

/// A bound, not yet running processor.
pub struct Processor {
    cfg: ProcessorConfig,
    server: HttpServer,
    state: AppState,
    router: Router,
}

impl Processor {
    pub async fn build(cfg: ProcessorConfig) -> Result<Processor, StartError> {
        let server = HttpServer::bind(cfg.listen, ServeOptions::default()).await?;
        let client = ljs::connect(&cfg.nats_url, "logjet-processor", true).await?;
        let redis = logjet_core::store::connect_lazy(&cfg.redis_url, Duration::from_secs(5))
            .map_err(|source| StartError::Redis {
                url: logjet_core::config::redact_url(&cfg.redis_url),
                source,
            })?;
        let registry = logjet_core::metrics::new_registry("processor");
        let metrics = ProcessorMetrics::new(&registry);
        let state = AppState {
            client,
            redis,
            registry,
            metrics,
            draining: server.draining(),
            consumer_bound: Arc::new(AtomicBool::new(false)),
        };
        Ok(Processor {
            cfg,
            server,
            // Only the standard routes: health, readiness, metrics.
            router: service::router(Router::new(), state.clone()),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Runs until `shutdown`: then readiness fails, fetching stops, the batch in hand is applied
    /// and acknowledged, buffered messages are handed back, and the process can exit.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let Processor {
            cfg,
            server,
            state,
            router,
        } = self;
        tracing::info!(config = ?logjet_core::config::describe(&cfg), "processor starting");
        let worker = tokio::spawn(run_worker(cfg, state.clone(), shutdown.child_token()));
        let finish_work = async move {
            tracing::info!("draining");
            let _ = worker.await;
            let _ = state.client.flush().await;
        };
        let result = server.serve_then(router, shutdown, finish_work).await;
        tracing::info!("processor stopped");
        Ok(result?)
    }
}

/// Builds and runs a processor until `shutdown` is cancelled.
pub async fn serve(cfg: ProcessorConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    Processor::build(cfg).await?.run(shutdown).await
}

/// Sets up the streams and the consumer (retrying until NATS answers), then consumes.
async fn run_worker(cfg: ProcessorConfig, state: AppState, shutdown: CancellationToken) {
    let js = ljs::context(state.client.clone(), Duration::from_secs(5));
    let mut delay = Duration::from_millis(20);
    let (consumer, stream_id) = loop {
        if state.client.connection_state() == NatsState::Connected {
            match bind(&js, &cfg).await {
                Ok(bound) => break bound,
                Err(e) => tracing::warn!(error = %e, "consumer not ready; retrying"),
            }
        }
        if !sleep_or_shutdown(&shutdown, delay).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    };
    state.consumer_bound.store(true, Ordering::SeqCst);
    tracing::info!(stream_id = %stream_id, consumer = %cfg.consumer, "consumer bound");

    let lag = tokio::spawn(watch_lag(
        consumer.clone(),
        state.metrics.clone(),
        cfg.lag_interval,
        shutdown.clone(),
    ));
    let worker = Arc::new(Worker {
        consumer,
        aggregator: Aggregator::new(state.redis.clone()),
        dead_letters: DeadLetters::new(js.clone(), stream_id.clone(), state.metrics.clone()),
        metrics: state.metrics.clone(),
        settings: PlanSettings {
            stream_id,
            retention: cfg.stream.stream_max_age,
            recent_retention: cfg.recent_retention,
        },
        fetch_batch: cfg.fetch_batch,
        fetch_max_bytes: cfg.fetch_max_bytes,
        fetch_expires: cfg.fetch_expires,
        linger: cfg.batch_linger,
        nak_delay: cfg.nak_delay,
        max_deliver: cfg.max_deliver,
        max_age: cfg.stream.stream_max_age,
    });
    worker.run(shutdown).await;
    lag.abort();
}

async fn bind(
    js: &async_nats::jetstream::Context,
    cfg: &ProcessorConfig,
) -> Result<(PullConsumer, String), JetStreamError> {
    let info = ljs::ensure_stream(js, ljs::logs_stream_config(&cfg.stream)).await?;
    ljs::ensure_stream(js, ljs::dlq_stream_config(&cfg.stream)).await?;
    let consumer = ljs::ensure_processor_consumer(js, cfg).await?;
    Ok((consumer, ljs::stream_incarnation(&info)))
}

/// Reads the consumer's lag the way KEDA's `nats-jetstream` scaler does.
async fn watch_lag(
    mut consumer: PullConsumer,
    metrics: ProcessorMetrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match consumer.info().await {
            Ok(info) => metrics
                .consumer_lag
                .set((info.num_pending + info.num_ack_pending as u64) as i64),
            Err(e) => tracing::debug!(error = %e, "consumer info failed"),
        }
        if !sleep_or_shutdown(&shutdown, every).await {
            return;
        }
    }
}
